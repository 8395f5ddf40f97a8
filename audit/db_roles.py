"""Two database roles on PostgreSQL: the owner migrates, the application only appends.

A role that owns the audit tables can delete events, rewrite them with the append-only trigger
turned off, or truncate the table. So production runs migrations as an owner role and the web
and worker processes as an application role that owns nothing: after every ``migrate`` (run as
the owner with ``COUNTERSIGN_DB_APP_ROLE`` set) the application role is granted what it needs,
and on the audit tables no UPDATE, DELETE, TRUNCATE or TRIGGER. ALTER TABLE (and so disabling a
trigger) is the owner's alone and cannot be granted.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connections, models

from .models import AuditChainHead


def append_only_models() -> list[type[models.Model]]:
    """Models whose rows are written once and never changed by the application. A model says so
    itself (``append_only_for_app_role = True``), so an app above this floor (a withdrawal's
    venue evidence) is protected without the trail importing it."""
    return [m for m in apps.get_models() if getattr(m, "append_only_for_app_role", False)]


def app_role_statements(role: str, *, quote: Any) -> list[str]:
    """The grants for ``role``; ``quote`` quotes an identifier for this connection."""
    who = quote(role)
    append_only = ", ".join(quote(m._meta.db_table) for m in append_only_models())
    head = quote(AuditChainHead._meta.db_table)
    return [
        f"GRANT USAGE ON SCHEMA public TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {who}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {who}",
        f"REVOKE TRUNCATE, TRIGGER, REFERENCES ON ALL TABLES IN SCHEMA public FROM {who}",
        f"REVOKE UPDATE, DELETE ON {append_only} FROM {who}",
        # The head row moves forward with every append (and a rewound head is caught by the
        # walk, since the events beyond it cannot be deleted); it is never deleted.
        f"REVOKE DELETE ON {head} FROM {who}",
    ]


def app_role_grant(*, using: str = "default") -> bool:
    """Apply the grants for settings.DATABASE_APP_ROLE on PostgreSQL. Returns whether it did."""
    role = settings.DATABASE_APP_ROLE
    connection = connections[using]
    if not role or connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        for statement in app_role_statements(role, quote=connection.ops.quote_name):
            cursor.execute(statement)
    return True


def grant_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """post_migrate: every table exists now, the new ones included."""
    app_role_grant(using=using)
