"""Chart geometry for server-rendered SVG. Templates draw it with presentation attributes
(fill=, x=, ...): CSP forbids inline styles, and no chart library is loaded."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

BAR_AREA_HEIGHT = 80
BAR_AREA_WIDTH = 300
MAX_SERIES = 8
STATE_BAR_WIDTH = 260
STATE_ROW_HEIGHT = 22

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777")


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass
class Series:
    """One venue and asset: a bar per day, on its own scale (assets do not add up)."""

    title: str
    colour: str
    total: str
    peak: str
    bars: list[Bar] = field(default_factory=list)


@dataclass
class StateBar:
    state: str
    label: str
    count: int
    width: float
    y: float


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def volume_series(rows: list[dict[str, Any]], *, since: date, until: date) -> list[Series]:
    """Small multiples: one daily bar chart per venue and asset, busiest first."""
    days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    per_series: dict[tuple[str, str], dict[date, Decimal]] = defaultdict(dict)
    for row in rows:
        day = row["day"]
        if isinstance(day, str):  # SQLite hands the truncated date back as text
            day = date.fromisoformat(day)
        per_series[(row["venue__name"], row["asset"])][day] = row["total"] or Decimal(0)
    ranked = sorted(per_series.items(), key=lambda item: -len(item[1]))[:MAX_SERIES]
    slot = BAR_AREA_WIDTH / max(len(days), 1)
    series = []
    for index, ((venue, asset), by_day) in enumerate(ranked):
        peak = max(by_day.values(), default=Decimal(0))
        bars = []
        for i, day in enumerate(days):
            total = by_day.get(day, Decimal(0))
            height = float(total / peak) * BAR_AREA_HEIGHT if peak else 0.0
            bars.append(
                Bar(
                    x=round(i * slot + slot * 0.1, 2),
                    y=round(BAR_AREA_HEIGHT - height, 2),
                    width=round(slot * 0.8, 2),
                    height=round(height, 2),
                    label=f"{day.isoformat()}: {_plain(total)} {asset}",
                )
            )
        series.append(
            Series(
                title=f"{venue} · {asset}",
                colour=PALETTE[index % len(PALETTE)],
                total=_plain(sum(by_day.values(), Decimal(0))),
                peak=_plain(peak),
                bars=bars,
            )
        )
    return series


def state_bars(counts: dict[str, int], choices: list[tuple[str, str]]) -> list[StateBar]:
    """One horizontal bar per state that has any withdrawal, longest for the most common."""
    peak = max(counts.values(), default=0)
    bars = []
    for state, label in choices:
        count = counts.get(state, 0)
        if not count:
            continue
        bars.append(
            StateBar(
                state=state,
                label=label,
                count=count,
                width=round(count / peak * STATE_BAR_WIDTH, 2),
                y=len(bars) * STATE_ROW_HEIGHT,
            )
        )
    return bars
