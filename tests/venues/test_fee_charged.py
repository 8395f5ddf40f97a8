"""The fee a venue reports having charged, read from its status and history answers.

Kraken spot (``fee``), KuCoin (``fee``) and Nord-Pay (``service_fee``) document it; Kraken
Embed's transactions and 1Konto's withdraw requests do not, so theirs stays unknown.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from venues.interface import venue_fee
from venues.kraken.client import KrakenClient
from venues.kucoin.client import KucoinClient
from venues.nordpay.client import NordPayClient


@pytest.mark.parametrize(
    ("raw", "fee"),
    [
        ("0.00020000", Decimal("0.0002")),
        (0.1, Decimal("0.1")),  # a JSON number is read through its text, never as binary
        (3, Decimal("3")),
        ("0", Decimal("0")),
        (None, None),
        ("", None),
        ("-1", None),
        ("NaN", None),
        ("Infinity", None),
        ("abc", None),
        (True, None),
        ("1" * 40, None),
    ],
)
def test_a_venue_fee_is_a_non_negative_decimal_or_unknown(raw, fee):
    assert venue_fee(raw) == fee
    if fee is not None:
        assert venue_fee(raw).as_tuple().exponent == -18


def test_kraken_history_rows_carry_the_fee():
    row = {"refid": "A1", "status": "Success", "txid": "tx", "fee": "0.00050000"}
    assert KrakenClient._to_status(row).fee == Decimal("0.0005")
    assert KrakenClient._to_status({**row, "fee": None}).fee is None


def test_kucoin_history_items_carry_the_fee():
    item = {"id": "", "status": "SUCCESS", "walletTxId": "tx", "fee": "0.0001"}
    assert KucoinClient._as_shown(item).fee == Decimal("0.0001")


def test_nordpay_history_items_carry_the_service_fee():
    item = {"id": 7, "status": "completed", "tx_hash": "0xab", "service_fee": 1.5}
    assert NordPayClient._status(item).fee == Decimal("1.5")
