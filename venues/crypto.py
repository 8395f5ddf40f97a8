"""Encryption at rest for venue credentials (Fernet, key from the environment)."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> Fernet:
    raw = settings.CREDENTIALS_KEY.encode()
    try:
        return Fernet(raw)
    except ValueError:
        # Accept any passphrase-like key by deriving a proper 32-byte Fernet key from it.
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))


def encrypt_json(data: dict[str, str]) -> str:
    return _fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "Venue credentials cannot be decrypted: COUNTERSIGN_CREDENTIALS_KEY has changed."
        ) from exc
