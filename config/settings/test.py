"""Test settings: the base profile, with fast hashing and tasks run on commit in-process."""

import secrets
import tempfile

from cryptography.fernet import Fernet

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
VENUE_SANDBOX_SETTLE_SECONDS = 0.0
VENUE_HTTP_TIMEOUT = 2.0
RECONCILE_GRACE_SECONDS = 0.0
# Per-process, so no test run inherits a cached venue token from an earlier run.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Strong keys of this process only, so that production processes started by the integration
# tests (which are handed these keys) pass the production key checks. Never the demo's.
SECRET_KEY = secrets.token_urlsafe(48)
CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
CREDENTIALS_KEY = CREDENTIALS_KEYS[0]
AUDIT_HMAC_KEY = secrets.token_urlsafe(48)
# Checkpoints of this test process only, never the demo's var/ directory.
AUDIT_CHECKPOINT_DIR = tempfile.mkdtemp(prefix="countersign-checkpoints-")
# Factory venues switch the sandbox's Kraken call counter off, so ours counts nothing either
# (tests/venues/kraken and the integration suite set the starter tier where they mean it).
VENUE_KRAKEN_RATE_TIER = ""
