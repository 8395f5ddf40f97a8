"""The submit journal read for a batch of requests gives what the one-request read gives."""

from __future__ import annotations

import uuid

import pytest

from venues.journal import SubmitJournal

pytestmark = pytest.mark.django_db


def test_references_of_many_requests_match_each_requests_own():
    journal = SubmitJournal("kraken")
    first, second, unanswered, elsewhere = (uuid.uuid4() for _ in range(4))
    for request_id, reference in [(first, "A1"), (second, "B1"), (first, "A2")]:
        journal.mark_reference(request_id, reference, entry=journal.mark_sent(request_id))
    journal.mark_sent(unanswered)  # sent, no answer: no reference to list
    SubmitJournal("kucoin").mark_found(elsewhere, "K1")  # another venue's journal

    pairs = journal.references_by_request([first, second, unanswered, elsewhere])

    assert sorted(pairs) == sorted(
        (request_id, reference)
        for request_id in (first, second, unanswered)
        for reference in journal.references(request_id)
    )
    assert {reference for _, reference in pairs} == {"A1", "A2", "B1"}
