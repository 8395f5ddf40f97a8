"""Settings shared by every profile.

Every value comes from the environment, with a demo default that needs no variables at all.
The production module (``config.settings.production``) removes the defaults for secrets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("COUNTERSIGN_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# The demo defaults below are public on purpose: they protect nothing but a local demo.
SECRET_KEY = os.environ.get("SECRET_KEY", "demo-only-secret-key-change-me-in-production-0123456789")
# Fernet key (urlsafe base64, 32 bytes) that encrypts venue credentials at rest.
CREDENTIALS_KEY = os.environ.get(
    "COUNTERSIGN_CREDENTIALS_KEY", "ZGVtby1vbmx5LWNyZWRlbnRpYWxzLWtleS0wMDAwMDA="
)
# Key rotation: several keys, newest first. The newest encrypts; every one of them decrypts, until
# `manage.py rotate_credentials` has re-encrypted every venue under the newest.
CREDENTIALS_KEYS = env_list("COUNTERSIGN_CREDENTIALS_KEYS", "") or [CREDENTIALS_KEY]
CREDENTIALS_KEY = CREDENTIALS_KEYS[0]
# Key of the HMAC chain over audit events.
AUDIT_HMAC_KEY = os.environ.get("COUNTERSIGN_AUDIT_KEY", "demo-only-audit-chain-key")
# Signed checkpoints of the chain's head go to an append-only log in this directory (keep it
# where the database's users cannot write: another volume, a WORM bucket's sync folder) and,
# when set, to a webhook. Empty directory setting: no file sink.
AUDIT_CHECKPOINT_DIR = os.environ.get(
    "COUNTERSIGN_AUDIT_CHECKPOINT_DIR", str(VAR_DIR / "audit-checkpoints")
)
AUDIT_CHECKPOINT_WEBHOOK_URL = os.environ.get("COUNTERSIGN_AUDIT_CHECKPOINT_WEBHOOK", "")
# PostgreSQL: the role the web and worker processes connect as. Set it when running `migrate`
# as the owner role, and every migrate grants it what it needs but no UPDATE, DELETE, TRUNCATE
# or trigger rights on the audit tables (audit.db_roles).
DATABASE_APP_ROLE = os.environ.get("COUNTERSIGN_DB_APP_ROLE", "")

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    # Single-use recovery codes (accounts.services.recovery_code_use).
    "django_otp.plugins.otp_static",
    "django_htmx",
    # Floor 0: shared template filters (core.templatetags.display, core.templatetags.labels).
    "core",
    "accounts",
    "audit",
    "venues",
    "whitelist",
    "policies",
    "withdrawals",
    "notifications",
    "oversight",
    # Demo-only commands (seed_demo, demo_totp, runvenues); production removes it.
    "demo",
]

MIDDLEWARE = [
    # Outermost: every response carries X-Request-ID and every log line the request's id.
    "config.observability.RequestContextMiddleware",
    # Next, so that every later reader of REMOTE_ADDR sees the client, not our proxy.
    "config.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After whitenoise: static files stay cacheable, everything Django renders is no-store.
    "config.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.SessionDeviceMiddleware",
    # After authentication: only a signed-in person's session has an idle deadline. Before
    # the sign-in guard: a page polling after its session expired is sent to sign in whole.
    "config.middleware.IdleSessionMiddleware",
    "accounts.middleware.RequireVerifiedUserMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Addresses or CIDR blocks of the reverse proxies in front of gunicorn. Only a request from one
# of them may name the client in X-Forwarded-For; the right-most entry that is not one of ours
# is taken as the client (config.middleware). Empty: REMOTE_ADDR is the client.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "accounts.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'countersign.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
    )
}
# The owner role's connection, for the one job the application role may not do: deleting old,
# repeated status polls from the venue evidence (withdrawals.evidence). Unset, that job runs on
# "default", which works only where the application connects as the owner (the demo, SQLite).
OWNER_DATABASE_URL = os.environ.get("COUNTERSIGN_OWNER_DATABASE_URL", "").strip()
if OWNER_DATABASE_URL:
    # Tests run it on the test database of "default", never on the database the URL names.
    DATABASES["owner"] = {
        **dj_database_url.parse(OWNER_DATABASE_URL),
        "TEST": {"MIRROR": "default"},
    }
EVIDENCE_COMPACT_DATABASE = "owner" if OWNER_DATABASE_URL else "default"
# Status polls of a withdrawal that repeat the previous answer are kept this long, then dropped;
# every change of status, every submission and reconciliation exchange is kept for good.
EVIDENCE_POLL_RETENTION_DAYS = int(os.environ.get("EVIDENCE_POLL_RETENTION_DAYS", "30"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes every atomic block take the write lock up front, so two writers
    # serialise instead of failing to upgrade a read snapshot.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )

# A file cache is shared by the demo's web server and worker (the worker heartbeat that
# /healthz reads, venue login tokens); production uses Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache"),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Django's model backend, reading a person's roles and authenticators with them (one query).
AUTHENTICATION_BACKENDS = ["accounts.backends.SessionUserBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "withdrawals:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# The demo serves static files straight from static/ (no collectstatic step).
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_IDLE_SECONDS", str(30 * 60)))
# Idle expiry: config.middleware.IdleSessionMiddleware pushes the deadline forward when the
# person acts (at most once a minute), never for a page polling on its own.
SESSION_SAVE_EVERY_REQUEST = False
SESSION_REFRESH_SECONDS = 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads no cookie; the token travels in hx-headers
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

OTP_TOTP_ISSUER = "Countersign"
OTP_TOTP_THROTTLE_FACTOR = 1

# How many distinct approvers a withdrawal needs, and how long it may wait, come from the policy
# (policies/); this is only the wait of a withdrawal requested before the policy recorded one.
WITHDRAWAL_EXPIRY_HOURS = int(os.environ.get("WITHDRAWAL_EXPIRY_HOURS", "72"))
# Block explorers, per network as venues name it (upper case), with {txid} where the id goes.
# EXPLORER_TX_URLS in the environment (a JSON object) replaces the whole table.
EXPLORER_TX_URLS: dict[str, str] = json.loads(os.environ.get("EXPLORER_TX_URLS") or "null") or {
    "BTC": "https://mempool.space/tx/{txid}",
    "BITCOIN": "https://mempool.space/tx/{txid}",
    "ETH": "https://etherscan.io/tx/{txid}",
    "ETHEREUM": "https://etherscan.io/tx/{txid}",
    "ERC20": "https://etherscan.io/tx/{txid}",
    "TRX": "https://tronscan.org/#/transaction/{txid}",
    "TRON": "https://tronscan.org/#/transaction/{txid}",
    "TRC20": "https://tronscan.org/#/transaction/{txid}",
    "XRP": "https://xrpscan.com/tx/{txid}",
    "RIPPLE": "https://xrpscan.com/tx/{txid}",
    "BSC": "https://bscscan.com/tx/{txid}",
    "BEP20": "https://bscscan.com/tx/{txid}",
}
VENUE_HTTP_TIMEOUT = float(os.environ.get("VENUE_HTTP_TIMEOUT", "10"))
# The tier of our Kraken keys' call counter (venues.kraken.client.RATE_TIERS); "" counts nothing
# (an account without a counter, or a sandbox with it switched off).
VENUE_KRAKEN_RATE_TIER = os.environ.get("VENUE_KRAKEN_RATE_TIER", "starter")
# The submission lease: a worker's whole venue exchange for one attempt (address check, quote
# re-check, send) must end within this many seconds. The worker refuses to send a request after
# it (venues.deadline), and Celery kills the task shortly after it (hard time limit). When an
# attempt counts as over is derived from this (withdrawals.rules.lease_expiry), never set.
SUBMIT_DEADLINE_SECONDS = float(os.environ.get("SUBMIT_DEADLINE_SECONDS", "30"))
# Reconciliation that cannot conclude looks again with backoff, up to this long between looks.
RECONCILE_BACKOFF_MAX_SECONDS = float(os.environ.get("RECONCILE_BACKOFF_MAX_SECONDS", "300"))
# An unknown outcome still unsettled after this long is raised for people to settle.
RECONCILE_ATTENTION_SECONDS = float(os.environ.get("RECONCILE_ATTENTION_SECONDS", "900"))
# Kraken Embed: how long after the original attempt reconciliation may re-send under the same
# idempotency token; later, people decide. How long Kraken remembers a token is undocumented:
# two minutes is the shortest memory its sandbox plays, so a re-send never outlives the token.
RESUBMIT_WINDOW_SECONDS = float(os.environ.get("RESUBMIT_WINDOW_SECONDS", "120"))
# An approved withdrawal whose task has not run after this long is enqueued again (outbox).
INTENT_RESEND_SECONDS = float(os.environ.get("INTENT_RESEND_SECONDS", "30"))
# Reconciliation waits this long after an unknown outcome, so an in-flight request has landed.
RECONCILE_GRACE_SECONDS = float(os.environ.get("RECONCILE_GRACE_SECONDS", "60"))
# A newly approved whitelist address cools off this long (veto window) before it is usable.
WHITELIST_COOLING_OFF_SECONDS = int(os.environ.get("WHITELIST_COOLING_OFF_SECONDS", str(24 * 3600)))

# The demo and the tests reach venues' sandboxes through sandbox://KIND base URLs; production
# turns them off, so no venue there can be pointed at an emulator that accepts any withdrawal.
VENUE_SANDBOXES_ENABLED = True
# Outside the demo a venue's base URL must be https:// on one of its kind's documented hosts
# (venues.hosts), or on a host named here: "host" for every kind, or "kind=host".
VENUE_HOSTS_RESTRICTED = env_bool("VENUE_HOSTS_RESTRICTED", False)
VENUE_EXTRA_HOSTS = env_list("COUNTERSIGN_VENUE_EXTRA_HOSTS", "")
# Sandboxes keep their state in one SQLite file, shared by every process of the demo.
VENUE_SANDBOX_DB = os.environ.get("VENUE_SANDBOX_DB", str(VAR_DIR / "sandbox.sqlite3"))
# Seconds a sandbox withdrawal stays pending before it settles.
VENUE_SANDBOX_SETTLE_SECONDS = float(os.environ.get("VENUE_SANDBOX_SETTLE_SECONDS", "6"))

# Celery. The demo uses kombu's filesystem transport so a worker runs without Redis.
CELERY_BROKER_URL = os.environ.get(
    "CELERY_BROKER_URL", os.environ.get("REDIS_URL", "filesystem://")
)
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Without it kombu puts its broadcast files in ./control of whatever the cwd is.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": 3600}
)
if CELERY_BROKER_URL.startswith("filesystem"):
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# How often beat has a worker stamp its heartbeat (config.health, /healthz).
WORKER_HEARTBEAT_SECONDS = float(os.environ.get("WORKER_HEARTBEAT_SECONDS", "15"))
CELERY_BEAT_SCHEDULE = {
    "withdrawals-refresh-statuses": {
        "task": "withdrawals.tasks.refresh_open_withdrawals",
        "schedule": float(os.environ.get("STATUS_REFRESH_SECONDS", "3")),
    },
    "withdrawals-sweep-intents": {
        "task": "withdrawals.tasks.sweep_submission_intents",
        "schedule": float(os.environ.get("INTENT_SWEEP_SECONDS", "10")),
    },
    "withdrawals-expire-stale": {
        "task": "withdrawals.tasks.expire_stale_withdrawals",
        "schedule": 300.0,
    },
    "withdrawals-compact-evidence": {
        "task": "withdrawals.tasks.compact_venue_evidence",
        "schedule": float(os.environ.get("EVIDENCE_COMPACT_SECONDS", "3600")),
    },
    "audit-verify-chain": {
        "task": "audit.tasks.verify_audit_chain",
        "schedule": float(os.environ.get("AUDIT_VERIFY_SECONDS", "300")),
    },
    "audit-write-checkpoint": {
        "task": "audit.tasks.write_audit_checkpoint",
        "schedule": float(os.environ.get("AUDIT_CHECKPOINT_SECONDS", "300")),
    },
    "oversight-refresh-daily-totals": {
        "task": "oversight.tasks.refresh_daily_totals",
        "schedule": float(os.environ.get("DAILY_TOTALS_SECONDS", "60")),
    },
    "whitelist-activate-due": {
        "task": "whitelist.tasks.activate_due_addresses",
        "schedule": 15.0,
    },
    "notifications-sweep-deliveries": {
        "task": "notifications.tasks.sweep_deliveries",
        "schedule": float(os.environ.get("NOTIFY_SWEEP_SECONDS", "30")),
    },
    "notifications-remind-unsettled": {
        "task": "notifications.tasks.remind_unsettled",
        "schedule": 60.0,
    },
    "whitelist-venue-check": {
        "task": "whitelist.tasks.check_venue_addresses",
        "schedule": float(os.environ.get("WHITELIST_VENUE_CHECK_SECONDS", "600")),
    },
}

# Notifications. Messages link to pages under this address (never to anything secret).
SITE_URL = os.environ.get("COUNTERSIGN_SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# The demo prints email to the console (and its "sent messages" page shows them); production
# sends through SMTP (config.settings.production).
MAILERS = {
    "default": {
        "BACKEND": os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    }
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "countersign@localhost")
# Chat webhooks (Slack-compatible): a JSON list of {"name", "url", "secret_env"}, where
# secret_env names the variable holding that endpoint's HMAC-SHA256 signing secret. The URL and
# the secret stay here: pages show an endpoint's name only.
NOTIFY_WEBHOOKS = [
    {
        "name": str(hook["name"]),
        "url": str(hook["url"]),
        "secret": os.environ.get(str(hook.get("secret_env", "")), ""),
    }
    for hook in json.loads(os.environ.get("COUNTERSIGN_NOTIFY_WEBHOOKS", "[]"))
]
NOTIFY_WEBHOOK_TIMEOUT = float(os.environ.get("NOTIFY_WEBHOOK_TIMEOUT", "5"))
# A failed delivery is tried again after 30 s, 60 s, 120 s... up to this long between tries,
# and given up after this many tries.
NOTIFY_BACKOFF_MAX_SECONDS = float(os.environ.get("NOTIFY_BACKOFF_MAX_SECONDS", "3600"))
NOTIFY_MAX_ATTEMPTS = int(os.environ.get("NOTIFY_MAX_ATTEMPTS", "10"))
# A withdrawal that stays unsettled (unknown outcome, stuck submission, unacknowledged
# duplicate) is announced again this often until it leaves that state.
NOTIFY_REMIND_SECONDS = float(os.environ.get("NOTIFY_REMIND_SECONDS", "1800"))

# Logs: "json" writes one JSON object per line (production's default), "plain" a readable line
# (the demo's). Both carry the request id, user id, and a task's withdrawal id and attempt.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.observability.ContextFilter"}},
    "formatters": {
        "plain": {
            "()": "config.observability.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "config.observability.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in ("plain", "json") else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# The worker and beat keep this configuration: Celery would otherwise replace the root handler
# with its own plain format, and task lines would lose their JSON and withdrawal id.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# /metrics (Prometheus) answers scrapes from these addresses or CIDR blocks, or bearing
# "Authorization: Bearer METRICS_TOKEN"; with neither set, nobody (403).
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", "")
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# Error reporting: Sentry (or a compatible service) when set, for web and worker alike
# (config.errors); credentials, TOTP codes and cookies are scrubbed before anything is sent.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
SENTRY_ENVIRONMENT = os.environ.get("SENTRY_ENVIRONMENT", "")

from config.errors import init_error_reporting  # noqa: E402

init_error_reporting(SENTRY_DSN, environment=SENTRY_ENVIRONMENT)
