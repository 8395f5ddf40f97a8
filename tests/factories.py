"""factory-boy factories for the withdrawal lifecycle tests, and TOTP helpers.

``VENUE_KIND`` is the one place that says which venue the lifecycle tests run against.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from factory.django import DjangoModelFactory

from policies.models import PolicyVersion, Rule
from venues.models import Venue
from venues.sandbox.registry import sandbox_for
from whitelist.models import AddressState, WhitelistedAddress
from withdrawals.models import State, WithdrawalRequest

# The venue the lifecycle, view and security tests use. Kraken spot once its sandbox lands.
VENUE_KIND = "kraken"
PASSWORD = "correct-horse-battery-staple"

# venue pk -> the SandboxSeed its credentials came from (destinations, minimums, precision).
_SEEDS: dict[int, Any] = {}


def seed_of(venue: Venue) -> Any:
    return _SEEDS[venue.pk]


def destination_of(venue: Venue, index: int = 0) -> dict[str, Any]:
    return seed_of(venue).destinations[index]


def good_amount(venue: Venue, index: int = 0) -> Decimal:
    """An amount every check accepts: twice the venue minimum for the destination's asset."""
    return destination_of(venue, index)["minimum"] * 2


class UserFactory(DjangoModelFactory):
    """A user in the ``roles`` groups, with a confirmed TOTP device unless ``totp=False``."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def roles(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        for role in extracted or ():
            self.groups.add(Group.objects.get(name=role))

    @factory.post_generation
    def totp(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if extracted is False:
            return
        TOTPDevice.objects.create(
            user=self, name="authenticator", key=secrets.token_hex(20), confirmed=True
        )


class VenueFactory(DjangoModelFactory):
    """A sandbox venue whose encrypted credentials come from a freshly seeded sandbox account."""

    class Meta:
        model = Venue

    kind = VENUE_KIND
    name = factory.Sequence(lambda n: f"Sandbox venue {n}")
    base_url = factory.LazyAttribute(lambda o: f"sandbox://{o.kind}")

    @classmethod
    def _create(cls, model_class: type[Venue], *args: Any, **kwargs: Any) -> Venue:
        venue = model_class(*args, **kwargs)
        sandbox = sandbox_for(venue.kind)
        seed = sandbox.seed()
        if venue.kind == "kraken":
            # Kraken's call counter (Starter tier: 15 calls, -0.33/s) makes a test's outcome
            # depend on how fast it runs. Its own tests (tests/venues/kraken) keep it on.
            sandbox.account_upsert(seed.credentials.api_key, rate_tier="")
        venue.account = seed.credentials.account
        venue.options_json = {
            k: getattr(seed.options, k) for k in ("fee_deduct_type", "path_prefix", "key_version")
        }
        venue.set_credentials(
            api_key=seed.credentials.api_key,
            api_secret=seed.credentials.api_secret,
            passphrase=seed.credentials.passphrase,
        )
        venue.save()
        _SEEDS[venue.pk] = seed
        return venue


def _dest(o: Any) -> dict[str, Any]:
    return destination_of(o.venue, o.destination)


class WhitelistedAddressFactory(DjangoModelFactory):
    """An active address: one of the destinations the venue's sandbox seed registered."""

    class Meta:
        model = WhitelistedAddress

    class Params:
        destination = 0

    venue = factory.SubFactory(VenueFactory)
    asset = factory.LazyAttribute(lambda o: _dest(o)["asset"])
    network = factory.LazyAttribute(lambda o: _dest(o)["network"])
    address = factory.LazyAttribute(lambda o: _dest(o)["address"])
    memo = factory.LazyAttribute(lambda o: _dest(o).get("memo", ""))
    venue_key = factory.LazyAttribute(lambda o: _dest(o).get("venue_key", ""))
    # Unique per venue, as the whitelist requires: one seed may save two keys for one asset.
    label = factory.LazyAttribute(
        lambda o: f"{o.asset} treasury ({o.network})" + (f" · {o.venue_key}" if o.venue_key else "")
    )
    state = AddressState.ACTIVE
    proposed_by = factory.SubFactory(UserFactory, roles=["whitelist_admin"])
    approved_by = factory.SubFactory(UserFactory, roles=["whitelist_admin"])


class WithdrawalFactory(DjangoModelFactory):
    """A withdrawal written straight to the database (no venue call), pending approval.

    Lifecycle tests create theirs through ``withdrawal_create``; this is for pages and matrices.
    """

    class Meta:
        model = WithdrawalRequest

    whitelisted_address = factory.SubFactory(WhitelistedAddressFactory)
    venue = factory.SelfAttribute("whitelisted_address.venue")
    asset = factory.SelfAttribute("whitelisted_address.asset")
    network = factory.SelfAttribute("whitelisted_address.network")
    address = factory.SelfAttribute("whitelisted_address.address")
    memo = factory.SelfAttribute("whitelisted_address.memo")
    venue_key = factory.SelfAttribute("whitelisted_address.venue_key")
    amount = factory.LazyAttribute(lambda o: good_amount(o.venue))
    fee_cap = Decimal("0.0005")
    state = State.PENDING_APPROVAL
    requested_by = factory.SubFactory(UserFactory, roles=["requester"])
    payload_hash = ""

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> WithdrawalRequest:
        withdrawal = model_class(*args, **kwargs)
        withdrawal.payload_hash = withdrawal.compute_payload_hash()
        withdrawal.save()
        return withdrawal


# --- TOTP -----------------------------------------------------------------------------------


class TotpClock:
    """The time django-otp's TOTP devices see. Tests move it a step on to get a fresh code."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, steps: int = 1) -> None:
        self.now += 30 * steps


def totp_code(user: Any, *, at: float, steps_ahead: int = 0) -> str:
    """The code ``user``'s confirmed device accepts at time ``at`` (plus ``steps_ahead``)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
    if device is None:  # an enrolment in progress
        device = TOTPDevice.objects.get(user=user, confirmed=False)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = at + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def policy_install(*rules: dict[str, Any], **settings: Any) -> PolicyVersion:
    """Put a policy in force directly (tests of other things than the four-eyes change flow).

    Each rule is Rule fields; the default rule (matching anything, quorum 1 unless the last rule
    given is already a catch-all) closes the list as in every valid policy.
    """
    last = PolicyVersion.objects.order_by("-number").first()
    version = PolicyVersion.objects.create(number=(last.number if last else 0) + 1, **settings)
    rows = list(rules)
    matchers = ("venue", "venue_id", "asset", "destination", "destination_id")
    if not rows or any(rows[-1].get(k) for k in (*matchers, "amount_above", "amount_up_to")):
        rows.append({})
    for position, fields in enumerate(rows, start=1):
        Rule.objects.create(policy=version, position=position, **fields)
    return version
