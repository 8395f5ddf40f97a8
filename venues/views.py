from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import AUDITOR, WHITELIST_ADMIN, require_role
from accounts.utils import client_ip
from core.forms import apply_service_error

from . import selectors, services
from .forms import ApproveChangeForm, EnabledForm, RejectChangeForm, VenueForm
from .models import Venue, VenueChange


def _require_admin(request: HttpRequest) -> None:
    require_role(request.user, WHITELIST_ADMIN, message="Only whitelist admins manage venues.")


def _require_reader(request: HttpRequest) -> None:
    require_role(
        request.user,
        WHITELIST_ADMIN,
        AUDITOR,
        message="Only whitelist admins and auditors see venues.",
    )


@require_GET
def venue_list(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    return render(
        request,
        "venues/list.html",
        {
            "venues": selectors.venues_all(),
            "open_changes": selectors.venue_changes_open(),
            "recent_changes": selectors.venue_changes_recent(),
        },
    )


@require_http_methods(["GET", "POST"])
def venue_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Propose a new venue, or a new configuration for one; nothing changes until approved."""
    _require_admin(request)
    venue = get_object_or_404(Venue, pk=pk) if pk else None
    initial = {}
    if venue is not None:
        initial = {
            "kind": venue.kind,
            "name": venue.name,
            "base_url": venue.base_url,
            "account": venue.account,
            **{k: venue.options_json.get(k, "") for k in ("fee_deduct_type", "path_prefix")},
        }
    form = VenueForm(request.POST or None, initial=initial, editing=venue is not None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            change = services.venue_change_propose(
                actor=request.user,
                venue_id=venue.pk if venue else None,
                kind=data["kind"],
                name=data["name"],
                base_url=data["base_url"],
                account=data["account"],
                api_key=data["api_key"],
                api_secret=data["api_secret"],
                passphrase=data["passphrase"],
                options={
                    "fee_deduct_type": data["fee_deduct_type"],
                    "path_prefix": data["path_prefix"],
                },
                ip=client_ip(request),
            )
        except services.VenueConfigError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(
                request,
                f"Proposed. {change.name} keeps its current configuration until a second "
                "whitelist admin approves the change with their authenticator code.",
            )
            return redirect("venues:change", pk=change.pk)
    return render(
        request,
        "venues/edit.html",
        {"form": form, "venue": venue},
        status=400 if form.is_bound and form.errors else 200,
    )


@require_POST
def venue_enabled(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    venue = get_object_or_404(Venue, pk=pk)
    form = EnabledForm(request.POST)
    form.is_valid()  # a missing box is "off", as a browser sends an unticked checkbox
    services.venue_set_enabled(
        actor=request.user,
        venue_id=venue.pk,
        enabled=form.cleaned_data.get("enabled", False),
        ip=client_ip(request),
    )
    return redirect("venues:list")


def _change_page(request: HttpRequest, change: VenueChange, **forms: object) -> HttpResponse:
    context = {
        "change": change,
        "approve_form": forms.get("approve_form") or ApproveChangeForm(),
        "reject_form": forms.get("reject_form") or RejectChangeForm(),
        "own": change.proposed_by_id == request.user.pk,
    }
    bound_errors = any(getattr(f, "errors", None) for f in forms.values())
    return render(request, "venues/change.html", context, status=400 if bound_errors else 200)


@require_GET
def change_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_reader(request)
    return _change_page(
        request,
        get_object_or_404(
            VenueChange.objects.select_related(
                "venue", "proposed_by", "approved_by", "rejected_by"
            ),
            pk=pk,
        ),
    )


@require_POST
def change_approve(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    change = get_object_or_404(VenueChange, pk=pk)
    form = ApproveChangeForm(request.POST)
    if form.is_valid():
        try:
            venue = services.venue_change_approve(
                change_id=change.pk,
                approver=request.user,
                code=form.cleaned_data["code"],
                ip=client_ip(request),
            )
        except services.VenueConfigError as exc:
            form.add_error("code" if exc.field == "code" else None, exc.message)
        else:
            messages.success(request, f"Approved: {venue.name} uses the new configuration.")
            return redirect("venues:list")
    change.refresh_from_db()
    return _change_page(request, change, approve_form=form)


@require_POST
def change_reject(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    change = get_object_or_404(VenueChange, pk=pk)
    form = RejectChangeForm(request.POST)
    if form.is_valid():
        try:
            services.venue_change_reject(
                change_id=change.pk,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                ip=client_ip(request),
            )
        except services.VenueConfigError as exc:
            form.add_error("reason" if exc.field == "reason" else None, exc.message)
        else:
            messages.success(request, f"Rejected: {change.name} keeps its configuration.")
            return redirect("venues:list")
    change.refresh_from_db()
    return _change_page(request, change, reject_form=form)


@require_POST
def venue_check(request: HttpRequest, pk: int) -> HttpResponse:
    """Partial: result of a read-only authenticated call (POST: it reaches out to the venue)."""
    _require_admin(request)
    venue = get_object_or_404(Venue, pk=pk)
    result = services.venue_check(venue=venue)
    return render(request, "venues/list.html#check_result", {"v": venue, "result": result})
