"""The bench runs the test profile (fast hashing, in-process cache) plus a bench-only admin site,
the peer every history page is compared with."""

import os
import tempfile

from config.settings.test import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# Django's test client sends this host; pytest-django adds it for tests, the bench must itself.
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
VENUE_SANDBOX_DB = os.environ.get(
    "VENUE_SANDBOX_DB", os.path.join(tempfile.mkdtemp(prefix="countersign-bench-"), "sb.sqlite3")
)
