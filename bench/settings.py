"""The bench runs the test profile (fast hashing, in-process cache) plus a bench-only admin site,
the peer every history page is compared with."""

import os
import tempfile

from config.settings.test import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# Django's test client sends this host; pytest-django adds it for tests, the bench must itself.
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# The loopback sandbox stands in for a venue: its SQLite commits (several per request) are not
# the venue's cost, so on a memory file system where there is one they do not wait for a disk.
_SANDBOX_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
VENUE_SANDBOX_DB = os.environ.get(
    "VENUE_SANDBOX_DB",
    os.path.join(tempfile.mkdtemp(prefix="countersign-bench-", dir=_SANDBOX_DIR), "sb.sqlite3"),
)
