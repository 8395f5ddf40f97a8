"""Amounts read as people write them: thousands separated, every significant decimal kept,
never through a float."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template

from core.templatetags.display import amount, tx_url


@pytest.mark.parametrize(
    ("value", "asset", "shown"),
    [
        (Decimal("1234.5"), "BTC", "1,234.5 BTC"),
        (Decimal("1234.500000000000000000"), "BTC", "1,234.5 BTC"),
        (Decimal("0.000000000000000001"), "ETH", "0.000000000000000001 ETH"),
        (Decimal("1E+3"), "USDT", "1,000 USDT"),
        (Decimal("1234567.12345678"), "", "1,234,567.12345678"),
        (Decimal("0"), "BTC", "0 BTC"),
        (12, "XRP", "12 XRP"),
        ("9876.10", "XRP", "9,876.1 XRP"),
        (None, "BTC", ""),
    ],
)
def test_amounts_have_separators_and_keep_their_significant_decimals(value, asset, shown):
    assert amount(value, asset) == shown


def test_a_float_is_refused():
    with pytest.raises(TypeError):
        amount(0.1, "BTC")


def test_the_filter_in_a_template_escapes_the_asset():
    rendered = Template("{% load display %}{{ v|amount:a }}").render(
        Context({"v": Decimal("1234.5"), "a": "<b>"})
    )
    assert rendered == "1,234.5 &lt;b&gt;"


def test_explorer_url_only_for_a_known_network(settings):
    settings.EXPLORER_TX_URLS = {"BITCOIN": "https://mempool.space/tx/{txid}"}
    assert tx_url("ab/12", "Bitcoin") == "https://mempool.space/tx/ab%2F12"
    assert tx_url("ab12", "Solana") == ""
    assert tx_url("", "Bitcoin") == ""
