"""Production: PostgreSQL, Redis (broker and cache), a Celery worker and beat, gunicorn.

Every secret and every address comes from the environment, with no default: a missing one
stops start-up with a message naming the variable, rather than running on a demo key.
"""

from __future__ import annotations

import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.keys import production_key_errors

from .base import *  # noqa: F403
from .base import env_bool

REQUIRED = (
    "SECRET_KEY",
    # Several keys for rotation (newest first), or one; either variable will do.
    ("COUNTERSIGN_CREDENTIALS_KEYS", "COUNTERSIGN_CREDENTIALS_KEY"),
    "COUNTERSIGN_AUDIT_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
)
# Name every missing variable at once, so one failed start tells the operator everything.
_missing = [
    " or ".join(names) if isinstance(names, tuple) else names
    for names in REQUIRED
    if not any(
        os.environ.get(n, "").strip() for n in (names if isinstance(names, tuple) else (names,))
    )
]
if _missing:
    raise ImproperlyConfigured(
        "Production settings need these environment variables, which are not set: "
        + ", ".join(_missing)
    )


def required(name: str) -> str:
    return os.environ[name].strip()


def required_list(name: str) -> list[str]:
    return [item.strip() for item in required(name).split(",") if item.strip()]


# The demo app creates users with public passwords and serves sandboxes: never in production.
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "demo"]  # noqa: F405

SECRET_KEY = required("SECRET_KEY")
_credentials_var = (
    "COUNTERSIGN_CREDENTIALS_KEYS"
    if os.environ.get("COUNTERSIGN_CREDENTIALS_KEYS", "").strip()
    else "COUNTERSIGN_CREDENTIALS_KEY"
)
CREDENTIALS_KEYS = required_list(_credentials_var)
CREDENTIALS_KEY = CREDENTIALS_KEYS[0]
AUDIT_HMAC_KEY = required("COUNTERSIGN_AUDIT_KEY")
# Public demo keys and placeholders ("x", "changeme") stop start-up, each named.
_weak = production_key_errors(
    secret_key=SECRET_KEY,
    credentials_keys=CREDENTIALS_KEYS,
    audit_key=AUDIT_HMAC_KEY,
    credentials_var=_credentials_var,
)
if _weak:
    raise ImproperlyConfigured("Production refuses weak or public secrets: " + " | ".join(_weak))
DEBUG = False
# Log shippers read JSON lines; LOG_FORMAT=plain still gives readable lines when wanted.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")
LOGGING["handlers"]["console"]["formatter"] = "plain" if LOG_FORMAT == "plain" else "json"  # noqa: F405
ALLOWED_HOSTS = required_list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = required_list("CSRF_TRUSTED_ORIGINS")

DATABASES = {
    "default": dj_database_url.parse(
        required("DATABASE_URL"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...).")
# DATABASE_URL is the application role (no DELETE on evidence); the owner role's URL serves only
# the evidence compaction task (docs/operations.md). Without it that task is refused and says so.
if OWNER_DATABASE_URL:  # noqa: F405
    DATABASES["owner"] = dj_database_url.parse(OWNER_DATABASE_URL, conn_health_checks=True)  # noqa: F405
    if DATABASES["owner"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("COUNTERSIGN_OWNER_DATABASE_URL must point at PostgreSQL.")

REDIS_URL = required("REDIS_URL")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # The cache holds nothing that cannot be rebuilt: fail fast rather than stall a page.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

# --- Celery: for money -------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
# A message is acknowledged only after its task returns, and requeued if the worker dies, so a
# crash never loses a submission; the services' state guards make the redelivery harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis hands an unacknowledged message to another worker after this many seconds. It must be
# longer than the longest task (a few venue calls of VENUE_HTTP_TIMEOUT each), or a slow task
# would run twice at once. Tests shorten it to see a killed worker's message come back.
CELERY_VISIBILITY_TIMEOUT = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
# Publishing happens after the approval committed; with Redis down it must fail fast (the outbox
# row already holds the intent and the sweeper re-enqueues it) instead of holding the request.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# The worker itself keeps trying to reach a broker that went away, for as long as it takes.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None

# --- venues: no sandboxes, https on documented hosts only ----------------------------------------
VENUE_SANDBOXES_ENABLED = False
VENUE_HOSTS_RESTRICTED = True

# --- notifications: SMTP and https webhooks ------------------------------------------------------
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": os.environ.get("EMAIL_HOST", "localhost"),
            "port": int(os.environ.get("EMAIL_PORT", "587")),
            "username": os.environ.get("EMAIL_HOST_USER", ""),
            "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
            "use_tls": env_bool("EMAIL_USE_TLS", True),
            "use_ssl": env_bool("EMAIL_USE_SSL", False),
            "timeout": 10,
        },
    }
}
_unsafe_hooks = [
    hook["name"]
    for hook in NOTIFY_WEBHOOKS  # noqa: F405
    if not hook["url"].startswith("https://") or not hook["secret"]
]
if _unsafe_hooks:
    raise ImproperlyConfigured(
        "Notification webhooks need an https:// URL and a signing secret: "
        + ", ".join(_unsafe_hooks)
    )
# Links in messages: the site's public address, by default the first allowed host.
SITE_URL = (os.environ.get("COUNTERSIGN_SITE_URL") or f"https://{ALLOWED_HOSTS[0]}").rstrip("/")

# --- HTTPS and cookies -------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# /healthz is probed over plain HTTP from inside the host (load balancer, orchestrator).
# So is /metrics, by Prometheus on the internal network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

# --- static files: collected once at deploy (collectstatic), served by whitenoise --------------
WHITENOISE_USE_FINDERS = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
