"""The policy as data: validating a proposed policy or price table, matching a rule, and
describing rules and differences in words people read on the pages and the audit trail.

Pure functions: no queries. Payloads are plain JSON (decimals as strings), the form in which a
proposal is stored until a second whitelist admin approves it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from accounts.roles import ROLES, role_label
from core.errors import ApplicationError

from .models import AMOUNT, DEFAULT_EXPIRY_HOURS, Rule

AMOUNT_FIELDS = (
    "amount_above",
    "amount_up_to",
    "max_per_withdrawal",
    "daily_amount",
    "destination_daily_amount",
)
COUNT_FIELDS = ("daily_count", "destination_daily_count")
MATCH_FIELDS = ("venue", "asset", "destination", "amount_above", "amount_up_to")
RULE_FIELDS = (
    "label",
    "venue",
    "asset",
    "destination",
    *AMOUNT_FIELDS,
    "quorum",
    "required_role",
    *COUNT_FIELDS,
    "expiry_hours",
)
SETTING_DEFAULTS: dict[str, Any] = {
    "median_multiple": "3",
    "business_hours_start": 8,
    "business_hours_end": 18,
    "weekdays_only": True,
    "rubber_stamp_seconds": 10,
}
MAX_QUORUM = 5
MAX_EXPIRY_HOURS = 24 * 14
FIELD_WORDS = {
    "label": "label",
    "venue": "venue",
    "asset": "asset",
    "destination": "destination",
    "amount_above": "above",
    "amount_up_to": "up to",
    "quorum": "approvers",
    "required_role": "one approver must be",
    "max_per_withdrawal": "max per withdrawal",
    "daily_amount": "24 h amount (venue and asset)",
    "daily_count": "24 h count (venue and asset)",
    "destination_daily_amount": "24 h amount (destination)",
    "destination_daily_count": "24 h count (destination)",
    "expiry_hours": "expires after (hours)",
    "median_multiple": "red flag above median x",
    "business_hours_start": "business hours from",
    "business_hours_end": "business hours until",
    "weekdays_only": "business days Monday to Friday only",
    "rubber_stamp_seconds": "rubber stamp below (seconds)",
}


class PolicyError(ApplicationError):
    """A refusal of a policy change, or of a withdrawal by the policy in force."""


def _amount(value: Any, *, where: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise PolicyError(f"{where}: {value!r} is not an amount.") from None
    if not amount.is_finite() or amount < 0:
        raise PolicyError(f"{where}: enter an amount of zero or more.")
    if amount.adjusted() >= AMOUNT["max_digits"] - AMOUNT["decimal_places"]:
        raise PolicyError(f"{where}: that amount is too large.")
    if amount != amount.quantize(Decimal(1).scaleb(-AMOUNT["decimal_places"])):
        raise PolicyError(f"{where}: at most {AMOUNT['decimal_places']} decimal places.")
    return amount


def _count(value: Any, *, where: str, low: int, high: int) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PolicyError(f"{where}: {value!r} is not a whole number.") from None
    if not low <= number <= high:
        raise PolicyError(f"{where}: enter a number from {low} to {high}.")
    return number


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount.normalize(), "f")


def rule_clean(raw: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """One rule as stored in a payload, or PolicyError naming the rule and what is wrong."""
    rule: dict[str, Any] = {
        "label": str(raw.get("label") or "").strip()[:80],
        "venue": _count(raw.get("venue"), where=f"{where}, venue", low=1, high=2**31 - 1),
        "asset": str(raw.get("asset") or "").strip().upper()[:16],
        "destination": _count(
            raw.get("destination"), where=f"{where}, destination", low=1, high=2**31 - 1
        ),
    }
    amounts = {f: _amount(raw.get(f), where=f"{where}, {FIELD_WORDS[f]}") for f in AMOUNT_FIELDS}
    quorum = _count(raw.get("quorum"), where=f"{where}, approvers", low=1, high=MAX_QUORUM)
    role = str(raw.get("required_role") or "").strip()
    if role and role not in ROLES:
        raise PolicyError(f"{where}: {role!r} is not a role.")
    if any(amounts[f] is not None for f in AMOUNT_FIELDS) and not rule["asset"]:
        raise PolicyError(
            f"{where}: amounts are in the asset's own units, so an amount band or amount limit "
            "needs an asset."
        )
    above, up_to = amounts["amount_above"], amounts["amount_up_to"]
    if above is not None and up_to is not None and up_to <= above:
        raise PolicyError(f"{where}: the band's upper bound must be above its lower bound.")
    if role and quorum is None:
        quorum = 1
    rule.update({f: _text(v) for f, v in amounts.items()})
    rule["quorum"] = quorum or 1
    rule["required_role"] = role
    for f in COUNT_FIELDS:
        rule[f] = _count(raw.get(f), where=f"{where}, {FIELD_WORDS[f]}", low=1, high=10**6)
    expiry = _count(
        raw.get("expiry_hours"),
        where=f"{where}, {FIELD_WORDS['expiry_hours']}",
        low=1,
        high=MAX_EXPIRY_HOURS,
    )
    rule["expiry_hours"] = expiry or DEFAULT_EXPIRY_HOURS
    return rule


def is_catch_all(rule: Mapping[str, Any]) -> bool:
    return not any(rule.get(f) for f in MATCH_FIELDS)


def settings_clean(raw: Mapping[str, Any]) -> dict[str, Any]:
    multiple = _amount(raw.get("median_multiple"), where="Red flag above median x")
    if multiple is None or multiple < 1:
        raise PolicyError("Red flag above median x: enter a multiple of 1 or more.")
    start = _count(raw.get("business_hours_start"), where="Business hours from", low=0, high=23)
    end = _count(raw.get("business_hours_end"), where="Business hours until", low=1, high=24)
    if start is None or end is None or end <= start:
        raise PolicyError("Business hours: the end must come after the start.")
    seconds = _count(raw.get("rubber_stamp_seconds"), where="Rubber stamp below", low=0, high=3600)
    return {
        "median_multiple": _text(multiple),
        "business_hours_start": start,
        "business_hours_end": end,
        "weekdays_only": bool(raw.get("weekdays_only")),
        "rubber_stamp_seconds": seconds or 0,
    }


def policy_payload_clean(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A proposed policy in its stored form. The last rule must match everything (the default
    rule), and no other rule may: a rule after a catch-all could never apply."""
    rows = list(raw.get("rules") or [])
    if not rows:
        raise PolicyError("A policy needs at least its default rule.")
    rules = [rule_clean(row, where=f"Rule {i}") for i, row in enumerate(rows, start=1)]
    if not is_catch_all(rules[-1]):
        raise PolicyError(
            "The last rule is the default: it must match any venue, asset, destination and amount."
        )
    for i, rule in enumerate(rules[:-1], start=1):
        if is_catch_all(rule):
            raise PolicyError(f"Rule {i} matches everything, so the rules after it never apply.")
    seen: dict[tuple[Any, ...], int] = {}
    for i, rule in enumerate(rules, start=1):
        if (first := seen.setdefault(match_key(rule), i)) != i:
            raise PolicyError(
                f"Rule {i} matches exactly what rule {first} does, so it never applies."
            )
    return {"settings": settings_clean(raw.get("settings") or SETTING_DEFAULTS), "rules": rules}


def prices_payload_clean(raw: Mapping[str, Any]) -> dict[str, Any]:
    as_of = raw.get("as_of")
    try:
        day = datetime.date.fromisoformat(str(as_of))
    except ValueError:
        raise PolicyError("Give the date the prices are from.", field="as_of") from None
    prices: dict[str, str] = {}
    for asset, usd in (raw.get("prices") or {}).items():
        name = str(asset).strip().upper()[:16]
        value = _amount(usd, where=f"Price of {name}")
        if not name or value is None:
            continue
        if value == 0:
            raise PolicyError(f"Price of {name}: a price must be above zero.")
        if name in prices:
            raise PolicyError(f"{name} is listed twice.")
        prices[name] = _text(value) or ""
    return {"as_of": day.isoformat(), "prices": dict(sorted(prices.items()))}


def rule_matches(
    rule: Rule, *, venue_id: int, asset: str, destination_id: int, amount: Decimal
) -> bool:
    return (
        (rule.venue_id is None or rule.venue_id == venue_id)
        and (not rule.asset or rule.asset == asset.upper())
        and (rule.destination_id is None or rule.destination_id == destination_id)
        and (rule.amount_above is None or amount > rule.amount_above)
        and (rule.amount_up_to is None or amount <= rule.amount_up_to)
    )


def rule_first_match(
    rules: Iterable[Rule], *, venue_id: int, asset: str, destination_id: int, amount: Decimal
) -> Rule:
    """The first rule, in order, that matches. A valid policy ends with a catch-all."""
    for rule in sorted(rules, key=lambda r: r.position):
        if rule_matches(
            rule, venue_id=venue_id, asset=asset, destination_id=destination_id, amount=amount
        ):
            return rule
    raise LookupError("the policy has no default rule")


def rule_as_payload(rule: Rule) -> dict[str, Any]:
    return {
        "label": rule.label,
        "venue": rule.venue_id,
        "asset": rule.asset,
        "destination": rule.destination_id,
        **{f: _text(getattr(rule, f)) for f in AMOUNT_FIELDS},
        "quorum": rule.quorum,
        "required_role": rule.required_role,
        **{f: getattr(rule, f) for f in COUNT_FIELDS},
        "expiry_hours": rule.expiry_hours,
    }


def rule_describe(rule: Mapping[str, Any], names: Mapping[str, Mapping[int, str]]) -> str:
    """What a rule matches, in words: "BTC above 5", "any asset on Kraken up to 1"."""
    if rule.get("label"):
        return str(rule["label"])
    if is_catch_all(rule):
        return "default"
    words = [rule.get("asset") or "any asset"]
    if rule.get("venue"):
        words.append("on " + names["venue"].get(rule["venue"], f"venue #{rule['venue']}"))
    if rule.get("destination"):
        dest = rule["destination"]
        words.append("to " + names["destination"].get(dest, f"address #{dest}"))
    if rule.get("amount_above") is not None:
        words.append(f"above {rule['amount_above']}")
    if rule.get("amount_up_to") is not None:
        words.append(f"up to {rule['amount_up_to']}")
    return " ".join(words)


def _value_words(field: str, value: Any, names: Mapping[str, Mapping[int, str]]) -> str:
    if value in (None, ""):
        return "any" if field in ("venue", "asset", "destination") else "none"
    if field in ("venue", "destination"):
        return names[field].get(value, f"#{value}")
    if field == "required_role":
        return role_label(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def policy_diff(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    names: Mapping[str, Mapping[int, str]],
) -> list[str]:
    """The change from ``old`` to ``new``, one readable line per difference, rule by position."""
    lines: list[str] = []
    old_settings = (old or {}).get("settings") or {}
    for field, value in new["settings"].items():
        before = old_settings.get(field)
        if before != value:
            lines.append(
                f"{FIELD_WORDS[field]}: {_value_words(field, before, names)} → "
                f"{_value_words(field, value, names)}"
            )
    old_rules = {
        match_key(rule): (i, rule) for i, rule in enumerate((old or {}).get("rules") or [])
    }
    new_keys = set()
    for i, after in enumerate(new["rules"]):
        key = match_key(after)
        new_keys.add(key)
        if key not in old_rules:
            lines.append(f"Rule {i + 1} added: {rule_summary(after, names)}")
            continue
        was, before = old_rules[key]
        changes = [
            f"{FIELD_WORDS[f]} {_value_words(f, before.get(f), names)} → "
            f"{_value_words(f, after.get(f), names)}"
            for f in RULE_FIELDS
            if before.get(f) != after.get(f)
        ]
        if was != i:
            changes.insert(0, f"moved from position {was + 1}")
        if changes:
            lines.append(f"Rule {i + 1} ({rule_describe(after, names)}): " + "; ".join(changes))
    for key, (was, before) in old_rules.items():
        if key not in new_keys:
            lines.append(f"Rule {was + 1} removed: {rule_summary(before, names)}")
    return lines


def match_key(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a rule matches: two rules with the same key are the same rule, changed."""
    return tuple(rule.get(f) for f in MATCH_FIELDS)


def rule_summary(rule: Mapping[str, Any], names: Mapping[str, Mapping[int, str]]) -> str:
    """A rule's match and decision in one line."""
    parts = [rule_describe(rule, names), f"needs {rule['quorum']}"]
    if rule.get("required_role"):
        parts.append(f"one a {role_label(rule['required_role'])}")
    limits = [
        f"{FIELD_WORDS[f]} {rule[f]}"
        for f in ("max_per_withdrawal", *AMOUNT_FIELDS[3:], *COUNT_FIELDS)
        if rule.get(f) not in (None, "")
    ]
    parts.extend(limits)
    parts.append(f"expires after {rule['expiry_hours']} h")
    return ", ".join(parts)


def prices_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    lines = []
    if not old or old.get("as_of") != new["as_of"]:
        lines.append(f"Prices as of {new['as_of']}" + (f" (were {old['as_of']})" if old else ""))
    before: Mapping[str, str] = (old or {}).get("prices") or {}
    for asset in sorted(set(before) | set(new["prices"])):
        was, now = before.get(asset), new["prices"].get(asset)
        if was != now:
            lines.append(f"{asset}: {was or 'no price'} → {now or 'no price'} USD")
    return lines
