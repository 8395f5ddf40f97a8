from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from .signals import ensure_role_groups

        # After every migrate, so the groups exist in any fresh database (tests included).
        post_migrate.connect(ensure_role_groups, dispatch_uid="accounts.ensure_role_groups")
