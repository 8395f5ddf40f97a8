"""A label names one live address per venue: two "Payroll"s at one venue let a requester pick
the wrong one. Refused in the service (typed in or imported), in the database, and existing
duplicates are renamed apart by the migration that adds the constraint."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from tests.factories import VenueFactory, WhitelistedAddressFactory
from tests.whitelist.conftest import NEW_ETH, OTHER_ETH, kraken_save_key, propose
from whitelist import services
from whitelist.models import AddressState, WhitelistedAddress

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def payroll(venue):
    return WhitelistedAddressFactory(venue=venue, destination=0, label="Payroll")


@pytest.mark.django_db
def test_a_second_address_with_the_same_label_is_refused_and_nothing_saved(
    carol, venue, new_key, payroll, fresh_code
):
    before = WhitelistedAddress.objects.count()
    with pytest.raises(services.WhitelistError) as refused:
        propose(carol, venue, fresh_code(carol), label="payroll ")
    assert refused.value.field == "label"
    assert f"Another address at {venue.name} is already labelled “payroll”" in (
        refused.value.message
    )
    assert WhitelistedAddress.objects.count() == before


@pytest.mark.django_db
def test_the_form_shows_the_refusal_next_to_the_label(
    carol, carol_client, venue, new_key, payroll, fresh_code
):
    data = {
        "venue": venue.pk,
        "asset": "ETH",
        "network": "Ethereum",
        "address": NEW_ETH,
        "memo": "",
        "label": "Payroll",
        "venue_key": new_key,
        "code": fresh_code(carol),
    }
    html = carol_client.post(reverse("whitelist:new"), data, **HX).content.decode()
    assert "is already labelled “Payroll”" in html
    assert not WhitelistedAddress.objects.filter(address=NEW_ETH).exists()


@pytest.mark.django_db
def test_the_same_label_is_fine_at_another_venue_or_once_the_old_one_is_revoked(
    carol, venue, new_key, payroll, fresh_code
):
    other = VenueFactory(name="Other venue")
    kraken_save_key(other, key="eth-new", address=NEW_ETH)
    assert propose(carol, other, fresh_code(carol), label="Payroll").label == "Payroll"
    payroll.state = AddressState.REVOKED
    payroll.save()
    assert propose(carol, venue, fresh_code(carol), label="Payroll").state == "proposed"


@pytest.mark.django_db
def test_the_database_refuses_a_duplicate_live_label(venue, payroll):
    with pytest.raises(IntegrityError), transaction.atomic():
        WhitelistedAddressFactory(venue=venue, destination=1, label="PAYROLL")


@pytest.mark.django_db
def test_import_skips_an_address_whose_label_is_taken(carol, venue, fresh_code):
    kraken_save_key(venue, key="ops", address=OTHER_ETH)
    WhitelistedAddressFactory(venue=venue, destination=0, label="ETH ops (imported)")
    result = services.addresses_import_from_venue(
        admin=carol, venue_id=venue.pk, code=fresh_code(carol)
    )
    skipped = dict(result.skipped)
    assert "already labelled “ETH ops (imported)”" in skipped["ops"]
    assert not WhitelistedAddress.objects.filter(address=OTHER_ETH).exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_renames_existing_duplicates_apart():
    executor = MigrationExecutor(connection)
    before = [("whitelist", "0002_lifecycle_fields")]
    after = executor.loader.graph.leaf_nodes("whitelist")
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    Venue = old_apps.get_model("venues", "Venue")
    Address = old_apps.get_model("whitelist", "WhitelistedAddress")
    venue = Venue.objects.create(name="Old venue", kind="kraken", base_url="sandbox://kraken")
    common = {"venue": venue, "asset": "ETH", "network": "Ethereum", "state": "active"}
    first = Address.objects.create(address=NEW_ETH, label="Payroll", **common)
    second = Address.objects.create(address=OTHER_ETH, label="payroll", **common)
    revoked = Address.objects.create(
        address="0x" + "1" * 40, label="Payroll", **common | {"state": "revoked"}
    )

    executor = MigrationExecutor(connection)
    executor.migrate(after)

    labels = dict(WhitelistedAddress.objects.values_list("pk", "label"))
    assert labels[first.pk] == "Payroll"
    assert labels[second.pk] == f"payroll (#{second.pk})"
    assert labels[revoked.pk] == "Payroll"  # not live: keeps its name in the record
