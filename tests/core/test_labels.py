from __future__ import annotations

from django.template import Context, Template

from accounts.roles import ROLES


def render(role: str) -> str:
    return Template("{% load labels %}{{ role|role_label }}").render(Context({"role": role}))


def test_a_role_reads_as_words():
    assert render("whitelist_admin") == "Whitelist admin"
    assert render("user_admin") == "User admin"
    assert render("approver") == "Approver"


def test_every_role_has_a_label_without_underscores():
    for role in ROLES:
        label = render(role)
        assert "_" not in label
        assert label[0].isupper()


def test_the_top_bar_names_roles_in_words_and_offers_a_skip_link(carol_client):
    html = carol_client.get("/whitelist/").content.decode()
    assert '<a class="skip-link" href="#main">Skip to content</a>' in html
    assert '<main class="page" id="main"' in html
    assert '<span class="role">Whitelist admin</span>' in html
    assert "whitelistadmin" not in html
