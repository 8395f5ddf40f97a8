"""One call budget per venue key, spent in order of importance, and one request in flight per
key (venues.budget), against Kraken spot's call counter (NOTES.md §1.3) at the starter tier."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.core.cache import cache

from venues.budget import (
    CEILINGS,
    BudgetRule,
    CallBudget,
    Purpose,
    key_turn,
    status_poll_delay,
)
from venues.interface import VenueUnavailable, WithdrawalSpec
from venues.kraken.sandbox import KrakenSandbox
from venues.registry import build_client
from venues.sandbox.app import SandboxRequest, SandboxResponse
from venues.sandbox.registry import sandbox_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def starter_tier(settings):
    """Our budget at the starter tier, as the sandbox keys these tests seed."""
    settings.VENUE_KRAKEN_RATE_TIER = "starter"


STARTER = BudgetRule(capacity=15, decay_per_second=0.33)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_each_purpose_stops_at_its_own_ceiling_and_submissions_use_all():
    clock = Clock()
    budget = CallBudget("test:key", STARTER, clock=clock)
    spent = {}
    for purpose in sorted(Purpose, reverse=True):  # preview first, submit last
        count = 0
        while True:
            try:
                budget.spend(1, purpose)
            except VenueUnavailable as exc:
                assert exc.retry_after > 0
                break
            count += 1
        spent[purpose] = count
    assert spent == {
        Purpose.PREVIEW: 6,  # 0.4 x 15
        Purpose.STATUS: 3,  # up to 0.6 x 15
        Purpose.APPROVER_QUOTE: 3,  # up to 0.8 x 15
        Purpose.SUBMIT: 3,  # the rest: 15
    }
    assert budget.level() == STARTER.capacity


def test_the_counter_decays_and_a_refusal_says_when_to_come_back():
    clock = Clock()
    budget = CallBudget("test:key", STARTER, clock=clock)
    for _ in range(6):
        budget.spend(1, Purpose.PREVIEW)
    with pytest.raises(VenueUnavailable) as caught:
        budget.spend(1, Purpose.PREVIEW)
    clock.now += caught.value.retry_after
    budget.spend(1, Purpose.PREVIEW)


def test_unranked_calls_are_counted_but_never_held():
    budget = CallBudget("test:key", STARTER, clock=Clock())
    for _ in range(20):
        budget.spend(1, None)
    with pytest.raises(VenueUnavailable):
        budget.spend(1, Purpose.SUBMIT)


@pytest.mark.parametrize(
    ("pending", "delay"), [(0, 3), (59, 3), (60, 15), (599, 15), (600, 60), (7200, 300)]
)
def test_status_polls_back_off_for_long_pending_withdrawals(pending, delay):
    assert status_poll_delay(pending) == delay


def test_ceilings_rank_the_purposes():
    assert [CEILINGS[p] for p in Purpose] == sorted(CEILINGS.values(), reverse=True)


# --- against the Kraken sandbox, its counter on ----------------------------------------------


def _spec(seed) -> WithdrawalSpec:
    return WithdrawalSpec(
        request_id=uuid.uuid4(),
        asset=seed.asset,
        network=seed.network,
        address=seed.address,
        venue_key=seed.venue_key,
        amount=seed.minimum * 2,
    )


def _kraken(seed, purpose: Purpose):
    return build_client(
        kind="kraken",
        base_url="sandbox://kraken",
        credentials=seed.credentials,
        options=seed.options,
        purpose=purpose,
    )


def test_an_approved_withdrawal_goes_out_while_polls_and_typing_use_the_counter():
    """Issue 10, item 8: with the starter counter, status polls and typing previews used to
    empty it and the submission waited minutes. Now they stop at their own ceilings, Kraken's
    counter never overflows, and the submission goes out at once."""
    sandbox = sandbox_for("kraken")
    seed = sandbox.seed()  # the sandbox counter is on, at the starter tier
    pending = _kraken(seed, Purpose.SUBMIT).submit(_spec(seed), quote=None)
    poller, typist = _kraken(seed, Purpose.STATUS), _kraken(seed, Purpose.PREVIEW)
    refused = 0
    for _ in range(10):  # a requester typing while the worker polls, in a tight loop
        for call in (
            lambda: poller.status(_spec(seed), reference=pending.reference),
            lambda: typist.quote(_spec(seed)),
        ):
            try:
                call()
            except VenueUnavailable as exc:
                assert "call budget" in exc.message  # held back here, not refused by Kraken
                refused += 1
    assert refused
    approver = _kraken(seed, Purpose.APPROVER_QUOTE)
    quote = approver.quote(_spec(seed))
    receipt = _kraken(seed, Purpose.SUBMIT).submit(_spec(seed), quote=quote)
    assert receipt.reference
    assert sandbox.count_withdrawals() == 2


def test_kraken_saying_the_counter_is_full_fills_ours():
    sandbox = sandbox_for("kraken")
    seed = sandbox.seed()
    sandbox.inject("rate_limit", path="/0/private/WithdrawStatus")
    poller = _kraken(seed, Purpose.STATUS)
    with pytest.raises(VenueUnavailable, match="EAPI:Rate limit exceeded"):
        poller.status(_spec(seed), reference="FTQcuak-V6Za8qrWnhzTx67yYHz8Tg")
    with pytest.raises(VenueUnavailable, match="call budget"):
        poller.status(_spec(seed), reference="FTQcuak-V6Za8qrWnhzTx67yYHz8Tg")


def test_a_cache_outage_never_stops_a_withdrawal(monkeypatch):
    sandbox = sandbox_for("kraken")
    seed = sandbox.seed()

    def down(*args, **kwargs):
        raise ConnectionError("cache unreachable")

    for operation in ("add", "get", "set", "delete"):
        monkeypatch.setattr(cache, operation, down)
    receipt = _kraken(seed, Purpose.SUBMIT).submit(_spec(seed), quote=None)
    assert receipt.reference and sandbox.count_withdrawals() == 1


# --- one request in flight per key -------------------------------------------------------------


def test_a_turn_is_exclusive_until_it_ends():
    with key_turn("test:key"), pytest.raises(VenueUnavailable), key_turn("test:key", wait=0.05):
        pass
    with key_turn("test:key", wait=0.05):
        pass


class HeldFirstRequest(KrakenSandbox):
    """Holds the first request it receives until a second one has been answered, the way a
    slow network lets a later request overtake an earlier one; or, if the second caller waits
    for its turn instead, for a second."""

    first_held = threading.Event()
    second_trying = threading.Event()
    second_answered = threading.Event()

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if not self.first_held.is_set():
            self.first_held.set()
            self.second_trying.wait(5)
            self.second_answered.wait(1.0)
            return super().handle(request)
        try:
            return super().handle(request)
        finally:
            self.second_answered.set()


@pytest.mark.django_db(transaction=True)
def test_a_preview_and_a_submit_on_one_key_never_race_their_nonces(monkeypatch):
    """Issue 10, item 8: "EAPI:Invalid nonce was seen when a preview and a submit raced on one
    key". Kraken allows no nonce window for withdrawal keys (NOTES §1.2): a request whose
    nonce is lower than one already seen is refused, so requests on one key go one at a time."""
    sandbox = sandbox_for("kraken")
    seed = sandbox.seed()
    sandbox.account_upsert(seed.credentials.api_key, rate_tier="")
    held = HeldFirstRequest(sandbox.store)
    monkeypatch.setattr("venues.sandbox.registry.sandbox_for", lambda kind: held)
    outcomes: dict[str, object] = {}

    def run(name: str, call) -> None:
        try:
            outcomes[name] = call()
        except Exception as exc:  # recorded, asserted below
            outcomes[name] = exc

    preview = _kraken(seed, Purpose.PREVIEW)
    submitter = _kraken(seed, Purpose.SUBMIT)
    first = threading.Thread(target=run, args=("preview", lambda: preview.quote(_spec(seed))))
    first.start()
    assert HeldFirstRequest.first_held.wait(5)

    def submit():
        HeldFirstRequest.second_trying.set()
        return submitter.submit(_spec(seed), quote=None)

    second = threading.Thread(target=run, args=("submit", submit))
    second.start()
    first.join(10)
    second.join(10)
    assert not isinstance(outcomes["preview"], Exception), outcomes["preview"]
    assert not isinstance(outcomes["submit"], Exception), outcomes["submit"]
    assert outcomes["submit"].reference
    assert outcomes["preview"].fee == Decimal("0.00015")


def test_turns_are_shared_by_every_client_of_the_key():
    sandbox = sandbox_for("kraken")
    seed = sandbox.seed()
    client = _kraken(seed, Purpose.STATUS)
    scope = client._nonce_scope
    with key_turn(scope):
        started = time.monotonic()
        with pytest.raises(VenueUnavailable, match="in flight"), key_turn(scope, wait=0.1):
            pass
        assert time.monotonic() - started < 5
