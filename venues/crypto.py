"""Encryption at rest for venue credentials (Fernet, keys from the environment).

``settings.CREDENTIALS_KEYS`` lists the keys newest first: the newest encrypts, any of them
decrypts, and ``manage.py rotate_credentials`` re-encrypts what an older one still protects.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _one(key: str) -> Fernet:
    raw = key.encode()
    try:
        return Fernet(raw)
    except ValueError:
        # The demo accepts any passphrase-like key by deriving a 32-byte Fernet key from it;
        # production settings refuse anything but a random Fernet key before we get here.
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))


def _fernet() -> MultiFernet:
    return MultiFernet([_one(key) for key in settings.CREDENTIALS_KEYS])


def encrypt_json(data: dict[str, str]) -> str:
    return _fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "Venue credentials cannot be decrypted with any key in COUNTERSIGN_CREDENTIALS_KEYS: "
            "the key that encrypted them is missing."
        ) from exc


def reencrypt(token: str) -> str:
    """The same secret under the newest key ('' stays ''). Raises like decrypt_json."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "Venue credentials cannot be decrypted with any key in COUNTERSIGN_CREDENTIALS_KEYS: "
            "the key that encrypted them is missing."
        ) from exc
