"""1Konto's documented refusals (the ``errors`` texts of its withdraw request), in words a
finance team can act on. 1Konto sends no codes: its texts start with a category."""

import re

REFUSALS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"Insufficient Funds:.*", re.DOTALL),
        "The 1Konto account does not hold enough of this asset.",
    ),
    (
        re.compile(r"ValidationFailed:.*", re.DOTALL),
        "1Konto refused the request's fields as invalid.",
    ),
)
