"""Whitelist pages. Thin: parse input, call a service or selector, render a page or a partial."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import APPROVER, AUDITOR, WHITELIST_ADMIN, has_role, require_role
from accounts.services import TotpRefused
from accounts.utils import client_ip
from core.forms import apply_service_error

from . import selectors, services
from .forms import ApproveForm, ImportForm, ProposeForm, ReasonForm
from .models import AddressState, WhitelistedAddress
from .validators import differing_positions

DETAIL = "whitelist/detail.html"


def _require_reader(request: HttpRequest) -> None:
    require_role(
        request.user,
        WHITELIST_ADMIN,
        AUDITOR,
        APPROVER,
        message="Only whitelist admins, approvers and auditors see the whitelist.",
    )


def _require(request: HttpRequest, *roles: str) -> None:
    require_role(request.user, *roles, message="You may not change the whitelist.")


def _address_or_404(pk: int) -> WhitelistedAddress:
    try:
        return selectors.address_get(pk=pk)
    except WhitelistedAddress.DoesNotExist:
        raise Http404("No such address") from None


def _done(request: HttpRequest, address: WhitelistedAddress, note: str) -> HttpResponse:
    messages.success(request, note)
    url = reverse("whitelist:detail", kwargs={"pk": address.pk})
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Redirect": url})
    return redirect(url)


@require_GET
def address_list(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    q = request.GET.get("q", "").strip()[:100]
    sort, descending = selectors.sort_parse(request.GET.get("sort", ""))
    found = list(selectors.addresses_search(q=q, sort=sort, descending=descending))
    marks = selectors.lookalike_marks(addresses=found)
    context = {
        # Each address with the positions of the characters that tell it from a look-alike.
        "rows": [(a, marks.get(a.pk, frozenset())) for a in found],
        "q": q,
        "sort": sort,
        "descending": descending,
        "columns": [(key, key.capitalize()) for key in selectors.SORTS],
        "now": timezone.now(),
    }
    if request.htmx:
        return render(request, "whitelist/list.html#results", context)
    context["pending"] = selectors.pending_approval_for(user=request.user)
    context["drift_count"] = selectors.addresses_with_drift().count()
    return render(request, "whitelist/list.html", context)


@require_http_methods(["GET", "POST"])
def address_new(request: HttpRequest) -> HttpResponse:
    _require(request, WHITELIST_ADMIN)
    form = ProposeForm(request.POST or None)
    lookalikes: list[tuple[WhitelistedAddress, frozenset[int]]] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            address = services.address_propose(
                proposer=request.user,
                venue_id=data["venue"].pk,
                asset=data["asset"],
                network=data["network"],
                address=data["address"],
                memo=data["memo"],
                label=data["label"],
                venue_key=data["venue_key"],
                code=data["code"],
                acknowledge_lookalike=data["acknowledge_lookalike"],
                ip=client_ip(request),
            )
        except TotpRefused as exc:
            form.add_error("code", str(exc))
        except services.WhitelistError as exc:
            apply_service_error(form, exc)
        else:
            return _done(request, address, "Proposed. A second whitelist admin must approve it.")
    if form.is_bound and form.data.get("address"):
        typed = form.data["address"]
        lookalikes = [
            (alike, differing_positions(alike.address, typed))
            for alike in selectors.lookalikes_of(address=typed)
        ]
    template = "whitelist/new.html#propose_panel" if request.htmx else "whitelist/new.html"
    status = 200 if request.htmx or not (form.is_bound and form.errors) else 400
    return render(request, template, {"form": form, "lookalikes": lookalikes}, status=status)


def _detail_context(request: HttpRequest, address: WhitelistedAddress, **extra: Any):
    user = request.user
    admin = has_role(user, WHITELIST_ADMIN)
    now = timezone.now()
    cooling = address.state == AddressState.COOLING_OFF and address.active_from > now
    lookalikes = selectors.lookalikes_of(address=address.address, exclude_pk=address.pk)
    return {
        "a": address,
        "history": selectors.address_history(address=address),
        "lookalikes": lookalikes,
        "lookalike_rows": [
            (other, differing_positions(other.address, address.address)) for other in lookalikes
        ],
        "own_marks": selectors.lookalike_marks(addresses=[address]).get(address.pk, ()),
        "address_book": selectors.venue_keeps_address_book(venue=address.venue),
        "can_approve": admin
        and address.state == AddressState.PROPOSED
        and address.proposed_by_id != user.pk,
        "is_proposer": address.proposed_by_id == user.pk,
        "can_veto": (admin or has_role(user, AUDITOR))
        and (address.state == AddressState.PROPOSED or cooling),
        "can_revoke": admin and address.state in {AddressState.COOLING_OFF, AddressState.ACTIVE},
        "approve_form": ApproveForm(),
        "veto_form": ReasonForm(prefix="veto"),
        "revoke_form": ReasonForm(prefix="revoke"),
        "now": now,
        **extra,
    }


@require_GET
def address_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_reader(request)
    address = _address_or_404(pk)
    return render(request, DETAIL, _detail_context(request, address))


def _panel(request: HttpRequest, address: WhitelistedAddress, name: str, **forms: Any):
    context = _detail_context(request, address, **forms)
    return render(request, f"{DETAIL}#{name}", context, status=200 if request.htmx else 400)


@require_POST
def address_approve(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, WHITELIST_ADMIN)
    address = _address_or_404(pk)
    form = ApproveForm(request.POST)
    if form.is_valid():
        try:
            address = services.address_approve(
                address_id=address.pk,
                approver=request.user,
                code=form.cleaned_data["code"],
                acknowledge_lookalike=form.cleaned_data["acknowledge_lookalike"],
                ip=client_ip(request),
            )
        except TotpRefused as exc:
            form.add_error("code", str(exc))
        except services.WhitelistError as exc:
            apply_service_error(form, exc)
        else:
            note = (
                "Approved: the address is active."
                if address.state == AddressState.ACTIVE
                else "Approved: cooling-off started. It can still be vetoed."
            )
            return _done(request, address, note)
    return _panel(request, address, "approve_panel", approve_form=form)


def _end_action(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    address = _address_or_404(pk)
    form = ReasonForm(request.POST, prefix=kind)
    if form.is_valid():
        service = services.address_veto if kind == "veto" else services.address_revoke
        who = {"user": request.user} if kind == "veto" else {"admin": request.user}
        try:
            address = service(
                address_id=address.pk,
                reason=form.cleaned_data["reason"],
                code=form.cleaned_data["code"],
                ip=client_ip(request),
                **who,
            )
        except TotpRefused as exc:
            form.add_error("code", str(exc))
        except services.WhitelistError as exc:
            apply_service_error(form, exc)
        else:
            return _done(request, address, "Vetoed." if kind == "veto" else "Revoked.")
    return _panel(request, address, f"{kind}_panel", **{f"{kind}_form": form})


@require_POST
def address_veto(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, WHITELIST_ADMIN, AUDITOR)
    return _end_action(request, pk, "veto")


@require_POST
def address_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, WHITELIST_ADMIN)
    return _end_action(request, pk, "revoke")


@require_GET
def drift(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    return render(request, "whitelist/drift.html", {"rows": selectors.addresses_with_drift()})


@require_POST
def drift_check(request: HttpRequest) -> HttpResponse:
    _require(request, WHITELIST_ADMIN)
    counts = services.addresses_venue_check_all()
    messages.info(
        request,
        f"Checked {counts['checked']} address(es): {counts['drift']} mismatch(es), "
        f"{counts['unavailable']} venue(s) did not answer.",
    )
    return redirect("whitelist:drift")


@require_http_methods(["GET", "POST"])
def address_import(request: HttpRequest) -> HttpResponse:
    _require(request, WHITELIST_ADMIN)
    form = ImportForm(request.POST or None)
    result = None
    if request.method == "POST" and form.is_valid():
        try:
            result = services.addresses_import_from_venue(
                admin=request.user,
                venue_id=form.cleaned_data["venue"].pk,
                code=form.cleaned_data["code"],
                ip=client_ip(request),
            )
        except TotpRefused as exc:
            form.add_error("code", str(exc))
        except services.WhitelistError as exc:
            apply_service_error(form, exc)
        else:
            form = ImportForm()
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "whitelist/import.html", {"form": form, "result": result}, status=status)
