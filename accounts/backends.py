"""The signed-in person as every request loads them."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.db import connection
from django_otp.plugins.otp_totp.models import TOTPDevice

from .roles import roles_remember


@cache
def _user_sql(vendor: str) -> str:
    """The person, their role names and their confirmed authenticator apps' ids, in one query.
    Written out: compiling it through the ORM cost more than the two queries it replaces."""
    joined = "string_agg" if vendor == "postgresql" else "group_concat"
    user = get_user_model()._meta
    groups = user.get_field("groups").remote_field.through._meta
    q = connection.ops.quote_name
    columns = ", ".join(f"u.{q(f.column)}" for f in user.concrete_fields)
    user_id = f"u.{q(user.pk.column)}"
    # Each aggregate is over the one person's rows, so it is one row, even of no rows (NULL).
    return (
        f"SELECT {columns}, r.names AS role_names, d.ids AS totp_ids"  # noqa: S608 (names from the models, the id bound)
        f" FROM {q(user.db_table)} u"
        f" LEFT JOIN (SELECT {joined}(g.{q('name')}, ',') AS names"
        f" FROM {q(groups.db_table)} ug JOIN {q(Group._meta.db_table)} g"
        f" ON g.{q('id')} = ug.{q('group_id')} WHERE ug.{q('user_id')} = %s) r ON 1 = 1"
        f" LEFT JOIN (SELECT {joined}(CAST(t.{q('id')} AS text), ',') AS ids"
        f" FROM {q(TOTPDevice._meta.db_table)} t"
        f" WHERE t.{q('user_id')} = %s AND t.{q('confirmed')}) d ON 1 = 1"
        f" WHERE {user_id} = %s"
    )


class SessionUserBackend(ModelBackend):
    """Django's model backend, whose ``get_user`` (once per request, from the session) also
    reads the person's roles and confirmed authenticator ids: the role checks and the
    second-factor check (accounts.middleware.SessionDeviceMiddleware) each took a query of their
    own on every request."""

    def get_user(self, user_id: Any) -> Any:
        # Django has already read the id from the session as the primary key's type.
        users = get_user_model()._default_manager.raw(_user_sql(connection.vendor), [user_id] * 3)
        user = next(iter(users), None)
        if user is None:
            return None
        roles_remember(user, (user.role_names or "").split(","))
        user.confirmed_totp_ids = frozenset(int(i) for i in (user.totp_ids or "").split(",") if i)
        return user if self.user_can_authenticate(user) else None
