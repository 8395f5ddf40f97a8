"""Re-encrypt every venue's credentials under the newest key of COUNTERSIGN_CREDENTIALS_KEYS.

Rotation: put the new key first in COUNTERSIGN_CREDENTIALS_KEYS (keep the old one after it),
restart, run this command, then drop the old key.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from venues.services import venue_credentials_rotate


class Command(BaseCommand):
    help = "Re-encrypt every venue's credentials under the newest credentials key."

    def handle(self, *args, **options) -> None:
        try:
            count = venue_credentials_rotate()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"re-encrypted the credentials of {count} venue(s) under the newest key")
