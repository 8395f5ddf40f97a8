"""Scripted venue set-up: ``venue add``, ``venue update NAME``, ``venue check NAME``.

``add`` creates a venue at once: an operator bootstrapping an installation from its shell (a new
venue moves nothing until its addresses pass four eyes). ``update`` only proposes: a change of
an existing venue's URL, account, options or credentials waits, like one made on the page, for
a whitelist admin to approve it in Countersign with a TOTP code.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from venues.models import Venue, VenueKind
from venues.services import (
    VenueConfigError,
    venue_bootstrap,
    venue_change_propose,
    venue_check,
)


def _common(parser: CommandParser, *, required: bool) -> None:
    parser.add_argument("--base-url", required=required)
    parser.add_argument(
        "--api-key",
        default=None,
        help="the venue's API key; for Nord-Pay the X-API-KEY (a secret: never printed); "
        "for 1Konto the login user",
    )
    parser.add_argument(
        "--api-secret",
        default=None,
        help="the API secret (Kraken, KuCoin) or 1Konto password; Nord-Pay has none",
    )
    parser.add_argument("--passphrase", default=None)
    parser.add_argument("--account", default=None, help="1Konto account id, Kraken Embed IIBAN")
    parser.add_argument("--fee-deduct-type", choices=["INTERNAL", "EXTERNAL"], default=None)
    parser.add_argument("--path-prefix", default=None, help='Nord-Pay: "/v1" or ""')
    parser.add_argument("--key-version", default=None, help="KuCoin API key version (3 or 2)")


class Command(BaseCommand):
    help = "Add, update or check a venue. Secrets are never printed."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add a venue")
        add.add_argument("--kind", required=True, choices=VenueKind.values)
        add.add_argument("--name", required=True)
        _common(add, required=True)
        update = sub.add_parser("update", help="change a venue")
        update.add_argument("name")
        _common(update, required=False)
        check = sub.add_parser("check", help="authenticated read-only call; exit 0 if it works")
        check.add_argument("name")

    def handle(self, *args, action: str, **options) -> None:
        # Only the options given: an option left out stays as the venue has it.
        venue_options = {
            key: options[key]
            for key in ("fee_deduct_type", "path_prefix", "key_version")
            if options.get(key) is not None
        }
        try:
            if action == "add":
                venue = venue_bootstrap(
                    kind=options["kind"],
                    name=options["name"],
                    base_url=options["base_url"],
                    account=options["account"] or "",
                    api_key=options["api_key"] or "",
                    api_secret=options["api_secret"] or "",
                    passphrase=options["passphrase"] or "",
                    options=venue_options,
                )
                self.stdout.write(f"added venue {venue.name} ({venue.kind})")
                return
            venue = self._venue(options["name"])
            if action == "update":
                change = venue_change_propose(
                    actor=None,
                    venue_id=venue.pk,
                    base_url=options["base_url"],
                    account=options["account"],
                    api_key=options["api_key"],
                    api_secret=options["api_secret"],
                    passphrase=options["passphrase"],
                    options=venue_options,
                )
                self.stdout.write(
                    f"proposed change {change.pk} to venue {venue.name}: "
                    f"{', '.join(change.summary)}. It takes effect when a whitelist admin "
                    "approves it in Countersign (Venues) with a TOTP code."
                )
                return
            result = venue_check(venue=venue)
        except VenueConfigError as exc:
            raise CommandError(exc.message) from None
        if result.ok:
            self.stdout.write(f"ok: {venue.name}: {result.message}")
            return
        self.stderr.write(f"failed: {venue.name}: {result.message}")
        sys.exit(1)

    def _venue(self, name: str) -> Venue:
        venue = Venue.objects.filter(name=name).first()
        if venue is None:
            raise CommandError(f"no venue named {name!r}")
        return venue
