"""Nonces per API key: strictly increasing, and cheap, since every signed call takes one."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from venues.models import ApiNonce
from venues.nonces import DatabaseNonceSource

pytestmark = pytest.mark.django_db


def test_each_nonce_is_above_the_last_even_when_the_stored_one_is_ahead_of_the_clock():
    source = DatabaseNonceSource()
    first = source.next("kraken:a")
    # Another process (or a clock that went back) left a value far ahead of now.
    ahead = time.time_ns() + 10**15
    ApiNonce.objects.filter(scope="kraken:a").update(value=ahead)

    assert first > 0
    assert source.next("kraken:a") == ahead + 1
    assert source.next("kraken:a") == ahead + 2


def test_keys_count_apart():
    source = DatabaseNonceSource()
    source.next("kraken:a")
    ApiNonce.objects.filter(scope="kraken:a").update(value=time.time_ns() + 10**15)

    assert source.next("kraken:b") < ApiNonce.objects.get(scope="kraken:a").value


def test_a_known_key_takes_one_statement():
    source = DatabaseNonceSource()
    source.next("kraken:a")

    with CaptureQueriesContext(connection) as ctx:
        value = source.next("kraken:a")

    statements = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1
    assert ApiNonce.objects.get(scope="kraken:a").value == value
