"""Production sends email through SMTP from its environment, and refuses a webhook it could
not sign or that would travel in clear. The demo prints email to the console."""

from __future__ import annotations

import json

from tests.config.test_production_settings import PRODUCTION_ENV, manage

SHOW = (
    "from django.conf import settings as s; "
    "print(s.MAILERS['default']['BACKEND'], s.MAILERS['default']['OPTIONS']['host'], s.SITE_URL)"
)


def test_production_mails_through_the_smtp_host_it_is_given(tmp_path):
    env = {**PRODUCTION_ENV, "EMAIL_HOST": "smtp.example.com"}
    result = manage("shell", "--no-imports", "-c", SHOW, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.com",
        "https://countersign.example.com",
    ]


def test_production_refuses_a_plain_http_or_unsigned_webhook(tmp_path):
    hooks = [
        {"name": "clear", "url": "http://chat.example.com/hook", "secret_env": "HOOK_SECRET"},
        {"name": "unsigned", "url": "https://chat.example.com/hook", "secret_env": "NOPE"},
    ]
    env = {
        **PRODUCTION_ENV,
        "COUNTERSIGN_NOTIFY_WEBHOOKS": json.dumps(hooks),
        "HOOK_SECRET": "a-long-enough-signing-secret",
    }
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "clear, unsigned" in result.stderr
    assert "a-long-enough-signing-secret" not in result.stderr


def test_the_demo_prints_email_to_the_console(tmp_path):
    code = "from django.conf import settings as s; print(s.MAILERS['default']['BACKEND'])"
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.base"},
        tmp_path=tmp_path,
    )
    assert result.stdout.strip() == "django.core.mail.backends.console.EmailBackend"
