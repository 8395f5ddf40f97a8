from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from audit.models import AuditEvent

        from .signals import audit_event_notify

        # Every event is written in the transaction of the change it records, so a
        # notification written here commits or rolls back with that change.
        post_save.connect(audit_event_notify, sender=AuditEvent, dispatch_uid="notifications.audit")
