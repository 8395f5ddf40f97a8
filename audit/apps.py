from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from django.db.models.signals import post_migrate

        from .db_roles import grant_after_migrate
        from .signals import login_failed_record, login_succeeded_record

        user_logged_in.connect(login_succeeded_record, dispatch_uid="audit.login_succeeded")
        user_login_failed.connect(login_failed_record, dispatch_uid="audit.login_failed")
        # Once per migrate (sender: this app), after every app's migrations have run.
        post_migrate.connect(grant_after_migrate, sender=self, dispatch_uid="audit.app_role")
