from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from .signals import login_failed_record, login_succeeded_record

        user_logged_in.connect(login_succeeded_record, dispatch_uid="audit.login_succeeded")
        user_login_failed.connect(login_failed_record, dispatch_uid="audit.login_failed")
