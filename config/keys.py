"""Is a secret from the environment good enough for production?

The demo's keys are public (they are in this repository), and people paste placeholders such
as ``x`` or ``changeme``. Production settings run every secret through these checks and refuse
to start, naming the variable, rather than protect real money with a key anyone can read.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import Counter

# Published in config/settings/base.py and the README: they protect nothing.
DEMO_SECRETS = frozenset(
    {
        "demo-only-secret-key-change-me-in-production-0123456789",
        "ZGVtby1vbmx5LWNyZWRlbnRpYWxzLWtleS0wMDAwMDA=",
        "demo-only-audit-chain-key",
    }
)
# Estimated from the characters actually used; 128 bits is what a key of this kind must carry.
MIN_BITS = 128
# Below this many bits per character the value is mostly repetition ("xxxx…-suffix").
MIN_BITS_PER_CHAR = 3.0
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
GENERATE_FERNET_HINT = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def estimated_bits(value: str) -> float:
    """Shannon entropy of the value's own characters, times its length: an upper bound on the
    strength of anything typed by hand, and close to the truth for generated keys."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return n * -sum(c / n * math.log2(c / n) for c in counts.values())


def secret_weakness(value: str) -> str:
    """Why ``value`` is not fit to be a production secret, or '' when it is."""
    if value in DEMO_SECRETS:
        return "is the demo's public default"
    bits = estimated_bits(value)
    if bits < MIN_BITS or bits / len(value) < MIN_BITS_PER_CHAR:
        return f"is too weak (about {bits:.0f} bits of entropy; at least {MIN_BITS} needed)"
    return ""


def fernet_key_weakness(value: str) -> str:
    """Why ``value`` is not a usable, random Fernet key, or '' when it is."""
    if value in DEMO_SECRETS:
        return "is the demo's public default"
    try:
        raw = base64.urlsafe_b64decode(value.encode())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        return "is not a Fernet key (32 bytes, url-safe base64)"
    # Random bytes are almost never all printable and rarely repeat; a passphrase encoded to
    # look like a key ("demo-only-credentials-key-000000") is and does.
    if all(32 <= b < 127 for b in raw) or len(set(raw)) < 20:
        return "is not random: it encodes text or a pattern, not 32 random bytes"
    return ""


def production_key_errors(
    *, secret_key: str, credentials_keys: list[str], audit_key: str, credentials_var: str
) -> list[str]:
    """One line per weak secret, each naming its environment variable and how to make one."""
    errors = []
    if why := secret_weakness(secret_key):
        errors.append(f"SECRET_KEY {why}; generate one with: {GENERATE_HINT}")
    for position, key in enumerate(credentials_keys, start=1):
        if why := fernet_key_weakness(key):
            which = (
                f" (key {position} of {len(credentials_keys)})" if len(credentials_keys) > 1 else ""
            )
            errors.append(
                f"{credentials_var}{which} {why}; generate one with: {GENERATE_FERNET_HINT}"
            )
    if why := secret_weakness(audit_key):
        errors.append(f"COUNTERSIGN_AUDIT_KEY {why}; generate one with: {GENERATE_HINT}")
    return errors
