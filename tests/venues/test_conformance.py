"""One conformance suite, run over every venue kind against its sandbox (in-process).

Each venue's sandbox provides ``seed()`` (a funded account and a saved destination) and
``DOCUMENTED_ERRORS``; the client must behave identically on the points below.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from venues import interface
from venues.interface import (
    VenueOutcomeUnknown,
    VenueRejected,
    VenueState,
    VenueUnavailable,
    WithdrawalSpec,
)
from venues.registry import KINDS, build_client, sandbox_for

pytestmark = pytest.mark.django_db

ALL_KINDS = sorted(KINDS)


@pytest.fixture(params=ALL_KINDS)
def venue(request):
    kind = request.param
    sandbox = sandbox_for(kind)
    seed = sandbox.seed()
    client = build_client(
        kind=kind, base_url="sandbox://" + kind, credentials=seed.credentials, options=seed.options
    )
    yield kind, sandbox, seed, client
    client.close()


def spec_for(seed, amount: Decimal | None = None) -> WithdrawalSpec:
    return WithdrawalSpec(
        request_id=uuid.uuid4(),
        asset=seed.asset,
        network=seed.network,
        address=seed.address,
        memo=seed.memo,
        venue_key=seed.venue_key,
        amount=amount if amount is not None else seed.minimum * 2,
    )


def quote_or_none(client, spec):
    return client.quote(spec) if client.supports_quote else None


def test_quote_gives_fee_and_net(venue):
    _kind, sandbox, seed, client = venue
    spec = spec_for(seed)
    quote = client.quote(spec)
    if client.supports_quote:
        assert isinstance(quote.fee, Decimal) and quote.fee >= 0
        assert quote.net_amount == spec.amount - quote.fee
    else:
        assert quote.fee is None and quote.net_amount is None
    assert sandbox.count_withdrawals() == 0, "a quote must never create a withdrawal"


def test_submit_then_status_settles_completed(venue, settings):
    _kind, sandbox, seed, client = venue
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=quote_or_none(client, spec))
    assert receipt.reference
    assert sandbox.count_withdrawals() == 1
    status = client.status(spec, reference=receipt.reference)
    assert status.state == VenueState.COMPLETED  # settle_seconds is 0 under test
    assert status.raw_status


def test_status_pending_before_settlement(venue):
    _kind, sandbox, seed, client = venue
    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=3600)
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=quote_or_none(client, spec))
    assert client.status(spec, reference=receipt.reference).state == VenueState.PENDING


def test_status_settles_failed_when_venue_fails_it(venue):
    _kind, sandbox, seed, client = venue
    sandbox.inject("settle_failure")
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=quote_or_none(client, spec))
    assert client.status(spec, reference=receipt.reference).state == VenueState.FAILED


def test_cancel_where_supported(venue):
    _kind, sandbox, seed, client = venue
    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=3600)
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=quote_or_none(client, spec))
    if not client.supports_cancel:
        with pytest.raises(NotImplementedError):
            client.cancel(spec, reference=receipt.reference)
        return
    assert client.cancel(spec, reference=receipt.reference) is True
    assert client.status(spec, reference=receipt.reference).state == VenueState.CANCELLED


def test_find_by_request_id_after_submit(venue):
    _kind, _sandbox, seed, client = venue
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=quote_or_none(client, spec))
    found = client.find(spec)
    assert found is not None and found.reference == receipt.reference
    other = spec_for(seed)
    assert client.find(other) is None


def test_timeout_before_accept_is_unknown_and_nothing_found(venue):
    _kind, sandbox, seed, client = venue
    spec = spec_for(seed)
    quote = quote_or_none(client, spec)
    sandbox.inject("timeout_before_accept", path=sandbox.SUBMIT_PATH, method="POST")
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(spec, quote=quote)
    assert sandbox.count_withdrawals() == 0
    assert client.find(spec) is None  # reconciliation: nothing sent, safe to retry


def test_timeout_after_accept_is_unknown_and_found(venue):
    _kind, sandbox, seed, client = venue
    spec = spec_for(seed)
    quote = quote_or_none(client, spec)
    sandbox.inject("timeout_after_accept", path=sandbox.SUBMIT_PATH, method="POST")
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(spec, quote=quote)
    assert sandbox.count_withdrawals() == 1
    found = client.find(spec)
    assert found is not None and found.state in {VenueState.PENDING, VenueState.COMPLETED}


def test_server_error_on_submit_is_outcome_unknown(venue):
    _kind, sandbox, seed, client = venue
    spec = spec_for(seed)
    quote = quote_or_none(client, spec)
    sandbox.inject("http_error", path=sandbox.SUBMIT_PATH, method="POST", status=502)
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(spec, quote=quote)


def test_server_error_on_quote_is_unavailable(venue):
    _kind, sandbox, seed, client = venue
    if not client.supports_quote:
        # No quote call exists, so there is nothing to fail: quote() answers locally.
        assert client.quote(spec_for(seed)).fee is None
        return
    sandbox.inject("http_error", path=sandbox.QUOTE_PATH, status=503)
    with pytest.raises(VenueUnavailable):
        client.quote(spec_for(seed))


def test_rate_limit_is_unavailable_with_retry_after(venue):
    _kind, sandbox, seed, client = venue
    spec = spec_for(seed)
    quote = quote_or_none(client, spec)
    sandbox.inject("rate_limit", path=sandbox.SUBMIT_PATH, retry_after=7)
    with pytest.raises(VenueUnavailable) as caught:
        client.submit(spec, quote=quote)
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert sandbox.count_withdrawals() == 0


def _documented_errors():
    for kind in ALL_KINDS:
        from venues.registry import _load

        app_class = _load(KINDS[kind][1])
        for error, outcome in app_class.DOCUMENTED_ERRORS.items():
            yield pytest.param(kind, error, outcome, id=f"{kind}:{error}")


@pytest.mark.parametrize(("kind", "error", "outcome"), list(_documented_errors()))
def test_every_documented_error_maps_to_its_outcome(kind, error, outcome):
    sandbox = sandbox_for(kind)
    seed = sandbox.seed()
    client = build_client(
        kind=kind, base_url="sandbox://" + kind, credentials=seed.credentials, options=seed.options
    )
    spec = spec_for(seed)
    quote = quote_or_none(client, spec)
    sandbox.inject("error", path=sandbox.SUBMIT_PATH, method="POST", error=error)
    with pytest.raises(getattr(interface, outcome)) as caught:
        client.submit(spec, quote=quote)
    if outcome == "VenueRejected":
        assert error.split(":")[-1].strip().lower() in caught.value.message.lower()
    assert sandbox.count_withdrawals() == 0


def test_every_kind_documents_errors():
    from venues.registry import _load

    for kind in ALL_KINDS:
        assert len(_load(KINDS[kind][1]).DOCUMENTED_ERRORS) >= 3, kind


def test_below_minimum_is_rejected_with_venue_message(venue):
    _kind, sandbox, seed, client = venue
    spec = spec_for(seed, amount=seed.minimum / 2)
    with pytest.raises(VenueRejected) as caught:
        quote = quote_or_none(client, spec)
        client.submit(spec, quote=quote)
    assert caught.value.message
    assert sandbox.count_withdrawals() == 0


def test_amount_is_sent_quantised_as_string(venue):
    _kind, sandbox, seed, client = venue
    spec = spec_for(seed, amount=seed.minimum * 2 + Decimal(1).scaleb(-seed.precision))
    receipt = client.submit(spec, quote=quote_or_none(client, spec))
    sent = [w for w in sandbox.all_withdrawals() if w["reference"] == receipt.reference]
    assert len(sent) == 1
    assert Decimal(sent[0]["amount_sent"]) == spec.amount
    assert isinstance(sent[0]["amount_sent"], str), "amounts travel as strings, never floats"


def test_duplicate_submit_gives_one_venue_withdrawal_or_refusal(venue):
    """The services call submit once; this pins what the venue does if it is called twice."""
    _kind, sandbox, seed, client = venue
    spec = spec_for(seed)
    quote = quote_or_none(client, spec)
    first = client.submit(spec, quote=quote)
    if client.idempotent_submit:
        again = client.submit(spec, quote=quote)
        assert again.reference == first.reference
        assert sandbox.count_withdrawals() == 1
    else:
        assert client.find(spec).reference == first.reference


def test_connection_check_is_read_only(venue):
    _kind, sandbox, seed, client = venue
    description = client.check_connection()
    assert description and seed.credentials.api_secret not in description
    assert sandbox.count_withdrawals() == 0


def test_bad_credentials_are_rejected(venue):
    kind, _sandbox, seed, _client = venue
    bad = build_client(
        kind=kind,
        base_url="sandbox://" + kind,
        credentials=interface.VenueCredentials(
            api_key=seed.credentials.api_key,
            api_secret="d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==",
            passphrase="wrong",
            account=seed.credentials.account,
        ),
        options=seed.options,
    )
    with pytest.raises(VenueRejected):
        bad.check_connection()
