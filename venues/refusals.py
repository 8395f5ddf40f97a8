"""A venue's refusal in plain language, from one table per venue (``venues/<kind>/errors.py``),
with the venue's own code kept verbatim beside it for whoever takes it up with the venue."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .kraken import errors as kraken
from .kraken_embed import errors as kraken_embed
from .kucoin import errors as kucoin
from .nordpay import errors as nordpay
from .onekonto import errors as onekonto

Table = Mapping[str, str] | Sequence[tuple[re.Pattern[str], str]]

TABLES: dict[str, Table] = {
    "kraken": kraken.REFUSALS,
    "kraken_embed": kraken_embed.REFUSALS,
    "kucoin": kucoin.REFUSALS,
    "nordpay": nordpay.REFUSALS,
    "onekonto": onekonto.REFUSALS,
}

GENERIC = (
    "The venue refused this withdrawal for a reason it does not document. Check the venue "
    "account before trying again."
)


@dataclass(frozen=True)
class Refusal:
    message: str
    code: str  # the venue's own code or text, verbatim


def refusal_explain(*, kind: str, code: str) -> Refusal:
    """What ``code`` (as :func:`refusal_code` names it) means."""
    table = TABLES.get(kind, {})
    if isinstance(table, Mapping):
        message = table.get(code) or table.get(code.split(": ", 1)[0])
    else:
        message = next((text for pattern, text in table if pattern.fullmatch(code)), None)
    return Refusal(message=message or GENERIC, code=code)


def refusal_code(*, code: str, message: str) -> str:
    """The one string that names a venue error: its code, with the text where the code alone
    says little (KuCoin's catch-all), else the text."""
    if code and message and code != message:
        return f"{code}: {message}"
    return code or message
