from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from audit.models import AuditEvent
        from audit.services import event_appending

        from .signals import audit_event_notify

        # Every event is written in the transaction of the change it records, so a
        # notification written here commits or rolls back with that change.
        event_appending.connect(
            audit_event_notify, sender=AuditEvent, dispatch_uid="notifications.audit"
        )
