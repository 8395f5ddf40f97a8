"""Idle sessions expire even with a withdrawal page open: its polls do not count as activity.

Personas: alice leaves a submitted withdrawal's page open and walks away (only its polls reach
us); bob keeps clicking through pages.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from tests.factories import WithdrawalFactory
from withdrawals.models import State

pytestmark = pytest.mark.django_db

IDLE = 600
HX = {"HTTP_HX_REQUEST": "true"}


class Clock:
    def __init__(self) -> None:
        self.now = timezone.now()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch, settings) -> Clock:
    settings.SESSION_COOKIE_AGE = IDLE
    settings.SESSION_REFRESH_SECONDS = 60
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def submitted(alice, address):
    return WithdrawalFactory(requested_by=alice, whitelisted_address=address, state=State.SUBMITTED)


def poll(client, withdrawal, page: str = ""):
    url = reverse("withdrawals:status", kwargs={"pk": withdrawal.pk})
    return client.get(url, {"poll": "1"}, **HX, HTTP_HX_CURRENT_URL=page)


def test_a_signed_out_poll_never_names_another_site(client, submitted):
    response = poll(client, submitted, page="https://evil.example//evil.example/x")
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("accounts:login")


def test_a_page_that_only_polls_is_signed_out_after_the_idle_time(clock, alice, login, submitted):
    client = login(alice)
    detail = reverse("withdrawals:detail", kwargs={"pk": submitted.pk})
    assert client.get(detail).status_code == 200
    for _ in range(IDLE // 30 - 1):
        clock.advance(30)
        assert poll(client, submitted).status_code == 200
    clock.advance(60)
    signed_out = poll(client, submitted, page=f"http://testserver{detail}")
    # The whole page goes to sign in, and comes back to itself afterwards.
    assert signed_out.status_code == 204
    assert signed_out["HX-Redirect"] == f"{reverse('accounts:login')}?next={quote(detail, safe='')}"
    assert client.get(detail).status_code == 302


def test_a_person_who_keeps_clicking_stays_signed_in(clock, bob, login, submitted):
    client = login(bob)
    detail = reverse("withdrawals:detail", kwargs={"pk": submitted.pk})
    for _ in range(3 * IDLE // 90):
        clock.advance(90)
        assert client.get(detail).status_code == 200
        assert poll(client, submitted).status_code == 200
    assert client.get(reverse("withdrawals:list")).status_code == 200


def test_the_session_row_is_written_at_most_once_a_minute(clock, bob, login, submitted):
    client = login(bob)
    detail = reverse("withdrawals:detail", kwargs={"pk": submitted.pk})
    client.get(detail)
    key = client.session.session_key
    first = Session.objects.get(pk=key).expire_date
    clock.advance(30)
    client.get(detail)
    assert Session.objects.get(pk=key).expire_date == first  # no write within the minute
    clock.advance(31)
    client.get(detail)
    assert Session.objects.get(pk=key).expire_date == first + timedelta(seconds=61)


def test_a_poll_never_writes_the_session(clock, bob, login, submitted):
    client = login(bob)
    client.get(reverse("withdrawals:detail", kwargs={"pk": submitted.pk}))
    key = client.session.session_key
    before = Session.objects.get(pk=key).expire_date
    clock.advance(120)
    assert poll(client, submitted).status_code == 200
    assert Session.objects.get(pk=key).expire_date == before
