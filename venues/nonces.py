"""Nonces that increase per API key across every process that shares the database."""

from __future__ import annotations

import hashlib
import time

from django.db import IntegrityError, connection, transaction

from .models import ApiNonce


def nonce_scope(kind: str, api_key: str) -> str:
    # The key itself is not secret, but there is no reason to store it twice in clear.
    return f"{kind}:{hashlib.sha256(api_key.encode()).hexdigest()[:32]}"


def _advance_sql() -> str:
    # One statement instead of lock, read, write: every signed call pays for it. The UPDATE
    # takes the row lock itself, so two processes still get distinct, increasing values.
    greatest = "MAX" if connection.vendor == "sqlite" else "GREATEST"
    table = connection.ops.quote_name(ApiNonce._meta.db_table)
    return f"UPDATE {table} SET value = {greatest}(%s, value + 1) WHERE scope = %s RETURNING value"  # noqa: S608 (names ours, values bound)


class DatabaseNonceSource:
    """``max(now in ns, last + 1)`` under a row lock: strictly increasing for one key."""

    def next(self, scope: str) -> int:
        for _ in range(3):
            with connection.cursor() as cursor:
                cursor.execute(_advance_sql(), [time.time_ns(), scope])
                row = cursor.fetchone()
            if row is not None:
                return row[0]
            try:
                with transaction.atomic():
                    return ApiNonce.objects.create(scope=scope, value=time.time_ns()).value
            except IntegrityError:  # two processes created the row at once; take the next one
                continue
        raise RuntimeError(f"could not allocate a nonce for {scope}")
