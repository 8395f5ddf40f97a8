"""Nonces that increase per API key across every process that shares the database."""

from __future__ import annotations

import hashlib
import time

from django.db import IntegrityError, transaction

from .models import ApiNonce


def nonce_scope(kind: str, api_key: str) -> str:
    # The key itself is not secret, but there is no reason to store it twice in clear.
    return f"{kind}:{hashlib.sha256(api_key.encode()).hexdigest()[:32]}"


class DatabaseNonceSource:
    """``max(now in ns, last + 1)`` under a row lock: strictly increasing for one key."""

    def next(self, scope: str) -> int:
        for _ in range(3):
            try:
                with transaction.atomic():
                    row = ApiNonce.objects.select_for_update().filter(scope=scope).first()
                    if row is None:
                        row = ApiNonce.objects.create(scope=scope, value=time.time_ns())
                        return row.value
                    row.value = max(time.time_ns(), row.value + 1)
                    row.save(update_fields=["value"])
                    return row.value
            except IntegrityError:  # two processes created the row at once; take the next one
                continue
        raise RuntimeError(f"could not allocate a nonce for {scope}")
