"""The production profile refuses to start without its environment, and passes check --deploy.

Each case starts ``manage.py`` in a fresh interpreter, as gunicorn or celery would, because
settings are read once per process.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    # Generated once for this module: strong, and public nowhere but in this test run.
    "SECRET_KEY": secrets.token_urlsafe(48),
    "COUNTERSIGN_CREDENTIALS_KEY": Fernet.generate_key().decode(),
    "COUNTERSIGN_AUDIT_KEY": secrets.token_urlsafe(48),
    # check --deploy connects to neither: the URLs only have to be well-formed.
    "DATABASE_URL": "postgres://countersign:secret@127.0.0.1:1/countersign",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "ALLOWED_HOSTS": "countersign.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://countersign.example.com",
}


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION_ENV and not k.startswith(("CELERY_", "DJANGO_"))
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "COUNTERSIGN_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_security_settings_reach_django(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS > 0, s.DEBUG, "
        "not s.SESSION_SAVE_EVERY_REQUEST and 'config.middleware.IdleSessionMiddleware' in "
        "s.MIDDLEWARE and s.SESSION_REFRESH_SECONDS <= 60, "
        "'unsafe-inline' in str(s.SECURE_CSP['script-src']), s.WHITENOISE_USE_FINDERS, "
        "s.CACHES['default']['BACKEND'].endswith('RedisCache'), s.CELERY_TASK_ACKS_LATE, "
        "s.CELERY_TASK_REJECT_ON_WORKER_LOST, s.CELERY_WORKER_PREFETCH_MULTIPLIER)"
    )
    result = manage("shell", "-v", "0", "-c", code, env=PRODUCTION_ENV, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True",
        "True",
        "True",
        "True",
        "False",
        "True",
        "False",
        "False",
        "True",
        "True",
        "True",
        "1",
    ]


def test_celery_worker_gets_the_money_settings(tmp_path):
    """acks_late, reject on worker loss, prefetch 1 and the visibility timeout, as the worker's
    Celery app sees them (not only as Django settings)."""
    code = (
        "from config.celery import app; c = app.conf; "
        "print(c.task_acks_late, c.task_reject_on_worker_lost, c.worker_prefetch_multiplier, "
        "c.broker_transport_options['visibility_timeout'], c.broker_url, c.task_always_eager)"
    )
    env = {**PRODUCTION_ENV, "CELERY_VISIBILITY_TIMEOUT": "7200"}
    result = manage("shell", "-v", "0", "-c", code, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "1", "7200", "redis://127.0.0.1:1/0", "False"]


@pytest.mark.parametrize(
    "missing",
    [
        "SECRET_KEY",
        "COUNTERSIGN_CREDENTIALS_KEY",
        "COUNTERSIGN_AUDIT_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
    ],
)
def test_a_missing_variable_stops_start_up_naming_it(missing, tmp_path):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert missing in last_line
    others = [name for name in PRODUCTION_ENV if name not in {missing, "DJANGO_SETTINGS_MODULE"}]
    assert not any(name in last_line for name in others)


def test_every_missing_variable_is_named_at_once(tmp_path):
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.production"}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    for name in PRODUCTION_ENV:
        if name != "DJANGO_SETTINGS_MODULE":
            assert name in message


def test_an_empty_variable_counts_as_missing(tmp_path):
    result = manage("check", env={**PRODUCTION_ENV, "SECRET_KEY": "  "}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_database_url_must_be_postgresql(tmp_path):
    env = {**PRODUCTION_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DATABASE_URL must point at PostgreSQL" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("SECRET_KEY", "demo-only-secret-key-change-me-in-production-0123456789", "demo"),
        ("SECRET_KEY", "x", "too weak"),
        ("SECRET_KEY", "x" * 60 + "-production-like-secret-key", "too weak"),
        ("COUNTERSIGN_CREDENTIALS_KEY", "ZGVtby1vbmx5LWNyZWRlbnRpYWxzLWtleS0wMDAwMDA=", "demo"),
        ("COUNTERSIGN_CREDENTIALS_KEY", "x", "not a Fernet key"),
        # Valid Fernet, but the bytes are text ("production-like-credentials-key!").
        ("COUNTERSIGN_CREDENTIALS_KEY", "cHJvZHVjdGlvbi1saWtlLWNyZWRlbnRpYWxzLWtleSE=", "random"),
        ("COUNTERSIGN_AUDIT_KEY", "demo-only-audit-chain-key", "demo"),
        ("COUNTERSIGN_AUDIT_KEY", "production-like-audit-key", "too weak"),
    ],
)
def test_a_weak_or_public_secret_stops_start_up_naming_it(variable, value, words, tmp_path):
    result = manage("check", env={**PRODUCTION_ENV, variable: value}, tmp_path=tmp_path)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line and variable in last_line
    assert words in last_line
    if len(value) > 1:
        assert value not in last_line  # a rejected key is still a key: never echoed
    others = {"SECRET_KEY", "COUNTERSIGN_CREDENTIALS_KEY", "COUNTERSIGN_AUDIT_KEY"} - {variable}
    assert not any(name in last_line for name in others)


def test_several_credentials_keys_are_accepted_and_each_is_checked(tmp_path):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "COUNTERSIGN_CREDENTIALS_KEY"}
    newest, older = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    good = manage(
        "check", env={**env, "COUNTERSIGN_CREDENTIALS_KEYS": f"{newest},{older}"}, tmp_path=tmp_path
    )
    assert good.returncode == 0, good.stderr
    bad = manage(
        "check", env={**env, "COUNTERSIGN_CREDENTIALS_KEYS": f"{newest},short"}, tmp_path=tmp_path
    )
    assert bad.returncode != 0
    assert "COUNTERSIGN_CREDENTIALS_KEYS (key 2 of 2)" in bad.stderr.strip().splitlines()[-1]


def test_production_has_no_demo_commands(tmp_path):
    """seed_demo would create users with public passwords; runvenues would serve sandboxes."""
    for command in ("seed_demo", "demo_totp", "runvenues"):
        result = manage(command, env=PRODUCTION_ENV, tmp_path=tmp_path)
        assert result.returncode != 0
        assert f"Unknown command: '{command}'" in result.stderr


def test_production_turns_sandboxes_off_and_restricts_venue_hosts(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.VENUE_SANDBOXES_ENABLED, s.VENUE_HOSTS_RESTRICTED, 'demo' in s.INSTALLED_APPS)"
    )
    env = {**PRODUCTION_ENV, "VENUE_HOSTS_RESTRICTED": "0"}
    result = manage("shell", "-v", "0", "-c", code, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "False"]


def test_production_builds_every_client_without_importing_a_sandbox(tmp_path):
    """Production has no emulator that accepts any withdrawal: building a client of every
    kind, and even one for a stray sandbox:// URL, loads no sandbox module."""
    code = (
        "import sys; from venues.registry import KINDS, build_client; "
        "from venues.interface import VenueCredentials; "
        "creds = VenueCredentials(api_key='k', api_secret='c2VjcmV0', passphrase='p'); "
        "[build_client(kind=k, base_url=u, credentials=creds).close() "
        " for k in KINDS for u in ('https://api.kraken.com', 'sandbox://' + k)]; "
        "print(sorted(m for m in sys.modules if 'sandbox' in m))"
    )
    result = manage("shell", "--no-imports", "-c", code, env=PRODUCTION_ENV, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_explorer_links_come_from_the_environment(tmp_path):
    table = '{"SOLANA": "https://solscan.io/tx/{txid}"}'
    code = "from django.conf import settings as s; print(s.EXPLORER_TX_URLS)"
    result = manage(
        "shell", "-v", "0", "-c", code,
        env={**PRODUCTION_ENV, "EXPLORER_TX_URLS": table}, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'SOLANA': 'https://solscan.io/tx/{txid}'}"
