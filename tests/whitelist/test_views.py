"""Pages, htmx panels, authorisation, and the read-only Django admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import UserFactory
from tests.whitelist.conftest import NEW_ETH
from whitelist.models import AddressState, WhitelistedAddress

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def form_data(the_venue, the_code, **overrides):
    return {
        "venue": the_venue.pk,
        "asset": "ETH",
        "network": "Ethereum",
        "address": NEW_ETH,
        "memo": "",
        "label": "ETH payroll",
        "venue_key": "eth-new",
        "code": the_code,
    } | overrides


def test_carol_sees_the_whitelist_in_one_table(carol_client, address):
    page = carol_client.get(reverse("whitelist:list"))
    assert page.status_code == 200
    html = page.content.decode()
    row = html[html.index(f'<tr id="address-{address.pk}"') :]
    row = row[: row.index("</tr>")]
    assert address.venue.name in row and address.asset in row and address.network in row
    assert f'<span class="g">{address.address[:4]}</span>' in row
    assert address.venue_key in row
    assert "Pending my approval" in html


@pytest.mark.parametrize("who", ["alice_client", "mallory_client"])
def test_requesters_and_nobodies_do_not_see_the_whitelist(request, who, address):
    client = request.getfixturevalue(who)
    assert client.get(reverse("whitelist:list")).status_code == 403
    assert client.get(reverse("whitelist:detail", args=[address.pk])).status_code == 403


def test_carol_proposes_through_the_htmx_panel(carol, carol_client, venue, new_key, fresh_code):
    response = carol_client.post(
        reverse("whitelist:new"), form_data(venue, fresh_code(carol)), **HX
    )
    assert response.status_code == 204
    address = WhitelistedAddress.objects.get()
    assert response["HX-Redirect"] == reverse("whitelist:detail", args=[address.pk])
    assert address.state == AddressState.PROPOSED


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"address": "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}, "EIP-55"),
        ({"venue": "99999"}, "Choose a venue."),
        ({"asset": "DOGE"}, "Choose an asset Countersign knows."),
        ({"network": "Solana"}, "cannot check addresses"),
        ({"code": ""}, "This field is required."),
    ],
)
def test_bad_proposals_show_a_message_and_save_nothing(
    carol, carol_client, venue, new_key, code_now, overrides, message
):
    data = form_data(venue, code_now(carol), **overrides)
    response = carol_client.post(reverse("whitelist:new"), data, **HX)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not WhitelistedAddress.objects.exists()


def test_lookalike_warning_shows_on_the_proposal_form(
    carol, carol_client, venue, new_key, proposal, code_now
):
    data = form_data(
        venue, code_now(carol), address="0xdb" + "0" * 34 + "c6fb", label="ETH supplier"
    )
    html = carol_client.post(reverse("whitelist:new"), data, **HX).content.decode()
    assert "Look-alike address" in html
    assert NEW_ETH in html
    assert 'name="acknowledge_lookalike"' in html


def test_erin_sees_her_queue_and_approves_in_the_panel(erin, login, proposal, fresh_code):
    client = login(erin)
    assert f"Review #{proposal.pk}" in client.get(reverse("whitelist:list")).content.decode()
    detail = client.get(reverse("whitelist:detail", args=[proposal.pk])).content.decode()
    assert 'id="approve-panel"' in detail
    assert "whitelist.proposed" in detail  # the address's own history
    response = client.post(
        reverse("whitelist:approve", args=[proposal.pk]), {"code": fresh_code(erin)}, **HX
    )
    assert response.status_code == 204
    proposal.refresh_from_db()
    assert proposal.state == AddressState.ACTIVE


def test_carol_gets_no_approve_panel_for_her_own_and_a_forced_post_is_refused(
    carol, carol_client, proposal, fresh_code
):
    detail = carol_client.get(reverse("whitelist:detail", args=[proposal.pk])).content.decode()
    assert 'id="approve-panel"' not in detail
    response = carol_client.post(
        reverse("whitelist:approve", args=[proposal.pk]), {"code": fresh_code(carol)}, **HX
    )
    assert "You cannot approve an address you proposed." in response.content.decode()
    proposal.refresh_from_db()
    assert proposal.state == AddressState.PROPOSED


def test_wrong_code_shows_next_to_the_field(erin, login, proposal):
    client = login(erin)
    response = client.post(reverse("whitelist:approve", args=[proposal.pk]), {"code": "1"}, **HX)
    assert "6-digit code" in response.content.decode()
    proposal.refresh_from_db()
    assert proposal.state == AddressState.PROPOSED


def test_dave_the_auditor_cannot_approve_or_revoke_but_can_veto(
    dave, dave_client, proposal, fresh_code
):
    assert (
        dave_client.post(
            reverse("whitelist:approve", args=[proposal.pk]), {"code": "1"}
        ).status_code
        == 403
    )
    assert dave_client.post(reverse("whitelist:revoke", args=[proposal.pk]), {}).status_code == 403
    response = dave_client.post(
        reverse("whitelist:veto", args=[proposal.pk]),
        {"veto-reason": "Unknown vendor", "veto-code": fresh_code(dave)},
        **HX,
    )
    assert response.status_code == 204
    proposal.refresh_from_db()
    assert proposal.state == AddressState.VETOED


def test_no_get_changes_state(erin, login, proposal):
    client = login(erin)
    for name in ("approve", "veto", "revoke"):
        assert client.get(reverse(f"whitelist:{name}", args=[proposal.pk])).status_code == 405
    assert client.get(reverse("whitelist:drift_check")).status_code == 405


def test_unknown_address_is_404(carol_client):
    assert carol_client.get(reverse("whitelist:detail", args=[999999])).status_code == 404


def test_drift_page_lists_mismatches(carol_client, address):
    WhitelistedAddress.objects.filter(pk=address.pk).update(drift_detail="key points elsewhere")
    html = carol_client.get(reverse("whitelist:drift")).content.decode()
    assert "key points elsewhere" in html
    assert address.label in html


def test_import_page_proposes_from_the_venue(carol, carol_client, venue, fresh_code):
    response = carol_client.post(
        reverse("whitelist:import"), {"venue": venue.pk, "code": fresh_code(carol)}
    )
    assert response.status_code == 200
    assert "proposed" in response.content.decode()
    assert WhitelistedAddress.objects.filter(state=AddressState.PROPOSED).count() == 5
    assert not WhitelistedAddress.objects.filter(state=AddressState.ACTIVE).exists()


# --- the Django admin: read-only --------------------------------------------------------------


@pytest.fixture
def root_client(login):
    root = UserFactory(username="root", roles=[], is_staff=True, is_superuser=True)
    return login(root)


def test_admin_cannot_edit_add_or_delete_an_address(root_client, address):
    change = reverse("admin:whitelist_whitelistedaddress_change", args=[address.pk])
    assert root_client.get(change).status_code == 200  # view only
    before = list(WhitelistedAddress.objects.values())
    events = AuditEvent.objects.count()
    response = root_client.post(change, {"address": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"})
    assert response.status_code == 403
    assert root_client.get(reverse("admin:whitelist_whitelistedaddress_add")).status_code == 403
    delete = reverse("admin:whitelist_whitelistedaddress_delete", args=[address.pk])
    assert root_client.post(delete, {"post": "yes"}).status_code == 403
    assert list(WhitelistedAddress.objects.values()) == before
    assert AuditEvent.objects.count() == events
