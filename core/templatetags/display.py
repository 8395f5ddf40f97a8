"""How amounts and transactions read on the page: ``{{ w.amount|amount:w.asset }}`` gives
``1,234.5 BTC``; ``{{ w.venue_txid|tx_url:w.network }}`` the block explorer's page for it."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote

from django import template
from django.conf import settings

register = template.Library()


@register.filter
def amount(value: Decimal | int | str | None, asset: str = "") -> str:
    """Thousands separated, every significant decimal kept, trailing zeros dropped. Never a
    float: a binary fraction has no place next to money, so one is refused outright."""
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        raise TypeError("amounts are Decimal, never float")
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    text = f"{number.normalize():,f}"
    return f"{text} {asset}" if asset else text


@register.filter
def tx_url(txid: str, network: str) -> str:
    """The explorer's page for ``txid`` on ``network``; "" when the network has none set."""
    template_url = explorer_urls().get((network or "").upper(), "")
    if not txid or not template_url:
        return ""
    # The id is the venue's text: quoted whole, it can only ever be one path segment.
    return template_url.replace("{txid}", quote(txid, safe=""))


def explorer_urls() -> dict[str, str]:
    urls = settings.EXPLORER_TX_URLS
    return {str(k).upper(): str(v) for k, v in urls.items()} if isinstance(urls, dict) else {}
