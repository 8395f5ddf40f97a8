"""Idempotent demo data: users with TOTP for every role, a sandbox venue of each kind, addresses,
a withdrawal policy with tiers and daily limits, and reference prices."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.actions import AuditAction
from audit.services import audit_event_record
from policies import rulebook
from policies.models import PolicyVersion, Price, PriceTable, Rule
from venues.models import Venue
from venues.registry import KINDS
from venues.sandbox.registry import sandbox_for
from whitelist.models import AddressState, WhitelistedAddress

# Fixed secrets so a person can add the demo users to an authenticator once and keep them.
DEMO_USERS = [
    ("alice", "requester", "3132333435363738393031323334353637383930"),
    ("bob", "approver", "4142434445464748494a4b4c4d4e4f5051525354"),
    ("carol", "whitelist_admin", "6162636465666768696a6b6c6d6e6f7071727374"),
    ("dave", "auditor", "3031323334353637383961626364656630313233"),
    ("erin", "whitelist_admin", "5152535455565758595a303132333435363738ff"),
    # Two user admins, so role grants and device resets get four eyes in the demo too.
    ("frank", "user_admin", "6a6b6c6d6e6f70717273747576777879307a3132"),
    ("grace", "user_admin", "7a797877767574737271706f6e6d6c6b6a696867"),
    # An approver who is also a treasury lead: the large tiers of the demo policy need one.
    ("tina", "approver+treasury_lead", "74696e6174696e6174696e6174696e6174696e61"),
]
DEMO_PASSWORD = "countersign-demo"  # noqa: S105 - printed to the person running the demo
# Enough of every asset for a long demo session.
DEMO_BALANCE = Decimal("5000")
# Quorum 1 below a threshold, 2 above it with a treasury lead; daily limits per venue and asset
# and per destination. Amounts in each asset's own units.
DEMO_POLICY = {
    "settings": rulebook.SETTING_DEFAULTS,
    "rules": [
        {"label": "BTC above 0.5", "asset": "BTC", "amount_above": "0.5", "quorum": 2,
         "required_role": "treasury_lead", "max_per_withdrawal": "10", "daily_amount": "20"},
        {"label": "BTC up to 0.5", "asset": "BTC", "quorum": 1, "daily_amount": "20",
         "daily_count": 40, "destination_daily_count": 20},
        {"label": "ETH above 10", "asset": "ETH", "amount_above": "10", "quorum": 2,
         "required_role": "treasury_lead", "daily_amount": "400"},
        {"label": "USDT above 25000", "asset": "USDT", "amount_above": "25000", "quorum": 2,
         "required_role": "treasury_lead", "daily_amount": "1000000"},
        {"label": "Everything else", "quorum": 1, "daily_count": 100,
         "destination_daily_count": 40},
    ],
}  # fmt: skip
DEMO_PRICES = {"BTC": "60000", "ETH": "3000", "USDT": "1", "USDC": "1", "XRP": "0.6"}
VENUE_NAMES = {
    "kraken": "Kraken spot (sandbox)",
    "kraken_embed": "Kraken Embed (sandbox)",
    "kucoin": "KuCoin (sandbox)",
    "onekonto": "1Konto (sandbox)",
    "nordpay": "Nord-Pay (sandbox)",
}


class Command(BaseCommand):
    help = "Create (or refresh) the demo users, sandbox venues and whitelisted addresses."

    def handle(self, *args, **options) -> None:
        # The demo users' passwords and TOTP secrets are public (they are in this file): only a
        # profile that also runs the sandboxes is a demo. Production does not install this app;
        # this guards any other profile that might.
        if not settings.VENUE_SANDBOXES_ENABLED:
            raise CommandError(
                "seed_demo creates users with public passwords and sandbox venues; it runs only "
                "under the demo settings (VENUE_SANDBOXES_ENABLED), not these."
            )
        with transaction.atomic():
            users = self._users()
            created = self._venues(users["carol"], users["erin"])
            self._policy()
            self._prices()
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        for name, roles, _secret in DEMO_USERS:
            device = TOTPDevice.objects.get(user=users[name], name="demo")
            role = roles.replace("+", ", ")
            self.stdout.write(f"  {name:<6} {role:<16} password {DEMO_PASSWORD}")
            self.stdout.write(f"         {device.config_url}")
        if created:
            self.stdout.write(f"  venues created: {', '.join(created)}")

    def _users(self):
        User = get_user_model()
        users = {}
        for name, roles, secret in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=name, defaults={"email": f"{name}@example.com"}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(*Group.objects.filter(name__in=roles.split("+")))
            TOTPDevice.objects.update_or_create(
                user=user, name="demo", defaults={"key": secret, "confirmed": True}
            )
            users[name] = user
        return users

    def _venues(self, proposer, approver) -> list[str]:
        created = []
        for kind in KINDS:
            sandbox = sandbox_for(kind)
            seed = sandbox.seed(api_key=f"demo-{kind}-key", balance=DEMO_BALANCE)
            venue, was_created = Venue.objects.get_or_create(
                name=VENUE_NAMES[kind],
                defaults={"kind": kind, "base_url": f"sandbox://{kind}"},
            )
            venue.kind = kind
            venue.account = seed.credentials.account
            venue.options_json = {
                k: getattr(seed.options, k)
                for k in ("fee_deduct_type", "path_prefix", "key_version")
            }
            venue.set_credentials(
                api_key=seed.credentials.api_key,
                api_secret=seed.credentials.api_secret,
                passphrase=seed.credentials.passphrase,
            )
            venue.save()
            if was_created:
                created.append(venue.name)
                audit_event_record(
                    action=AuditAction.VENUE_CREATED,
                    target=venue,
                    message=f"Demo venue {venue.name}",
                )
            for dest in seed.destinations or (
                {
                    "asset": seed.asset,
                    "network": seed.network,
                    "address": seed.address,
                    "memo": seed.memo,
                    "venue_key": seed.venue_key,
                },
            ):
                address, made = WhitelistedAddress.objects.get_or_create(
                    venue=venue,
                    asset=dest["asset"],
                    network=dest["network"],
                    address=dest["address"],
                    memo=dest.get("memo", ""),
                    defaults={
                        # Labels are unique per venue: Kraken's seed saves two ETH keys.
                        "label": f"{dest['asset']} treasury ({dest['network']})"
                        + (f" · {dest['venue_key']}" if dest.get("venue_key") else ""),
                        "venue_key": dest.get("venue_key", ""),
                        "state": AddressState.ACTIVE,
                        "proposed_by": proposer,
                        "approved_by": approver,
                        "approved_at": timezone.now(),
                        "active_from": timezone.now(),
                    },
                )
                if made:
                    audit_event_record(
                        action=AuditAction.WHITELIST_SEEDED,
                        target=address,
                        message=f"Demo address {address.label} active",
                    )
        return created

    def _policy(self) -> None:
        """The demo tiers, once: a policy someone changed since (version 2 on) is kept."""
        if PolicyVersion.objects.filter(number__gt=1).exists():
            return
        payload = rulebook.policy_payload_clean(DEMO_POLICY)
        version = PolicyVersion.objects.create(number=2)
        for position, rule in enumerate(payload["rules"], start=1):
            Rule.objects.create(
                policy=version,
                position=position,
                **{f: rule[f] for f in rulebook.RULE_FIELDS if f not in ("venue", "destination")},
            )
        audit_event_record(
            action=AuditAction.POLICY_SEEDED,
            target=version,
            message=f"Demo policy version {version.number}: "
            + "; ".join(
                rulebook.rule_summary(r, {"venue": {}, "destination": {}}) for r in payload["rules"]
            ),
        )

    def _prices(self) -> None:
        if PriceTable.objects.exists():
            return
        payload = rulebook.prices_payload_clean(
            {"as_of": timezone.localdate().isoformat(), "prices": DEMO_PRICES}
        )
        table = PriceTable.objects.create(number=1, as_of=payload["as_of"])
        Price.objects.bulk_create(
            Price(table=table, asset=asset, usd=Decimal(usd))
            for asset, usd in payload["prices"].items()
        )
        audit_event_record(
            action=AuditAction.PRICE_SEEDED,
            target=table,
            message=f"Demo reference prices as of {table.as_of}",
        )
