"""Nord-Pay's documented refusals (HTTP 400 ``detail`` texts), in words a finance team can act
on. Nord-Pay sends no codes: keys are patterns its text must match whole."""

import re

REFUSALS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\S+ is not available for withdraw at this moment"),
        "Nord-Pay has paused withdrawals of this currency for now.",
    ),
    (
        re.compile(r"Amount is less than minimum withdraw amount for \S+ \(.*\)"),
        "The amount is below Nord-Pay's minimum for this currency.",
    ),
    (re.compile(r"Withdraw request not found"), "Nord-Pay no longer knows the quoted request."),
    (
        re.compile(r"Withdraw request expired"),
        "Nord-Pay's quote expired before it was confirmed. The withdrawal needs a fresh quote.",
    ),
    (re.compile(r"Not enough balance"), "The Nord-Pay account does not hold enough for this."),
)
