from __future__ import annotations

from django.template import Context, Template

from accounts.roles import ROLES, role_label


def render(role: str) -> str:
    return Template("{% load labels %}{{ role|role_label }}").render(Context({"role": role}))


def test_a_role_reads_as_words():
    assert render("whitelist_admin") == "whitelist admin"
    assert render("user_admin") == "user admin"
    assert render("approver") == "approver"


def test_every_role_reads_as_the_accounts_app_words_it():
    for role in ROLES:
        assert render(role) == role_label(role)
        assert "_" not in render(role)


def test_the_top_bar_names_roles_in_words_and_offers_a_skip_link(carol_client):
    html = carol_client.get("/whitelist/").content.decode()
    assert '<a class="skip-link" href="#main">Skip to content</a>' in html
    assert '<main class="page" id="main"' in html
    assert '<span class="role">whitelist admin</span>' in html
    assert "whitelistadmin" not in html
