from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import AUDITOR, WHITELIST_ADMIN, require_role
from accounts.utils import client_ip

from . import selectors, services
from .forms import VenueForm
from .models import Venue


def _require_admin(request: HttpRequest) -> None:
    require_role(request.user, WHITELIST_ADMIN, message="Only whitelist admins manage venues.")


@require_GET
def venue_list(request: HttpRequest) -> HttpResponse:
    require_role(
        request.user,
        WHITELIST_ADMIN,
        AUDITOR,
        message="Only whitelist admins and auditors see venues.",
    )
    return render(request, "venues/list.html", {"venues": selectors.venues_all()})


@require_http_methods(["GET", "POST"])
def venue_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    _require_admin(request)
    venue = get_object_or_404(Venue, pk=pk) if pk else None
    initial = {}
    if venue is not None:
        initial = {
            "kind": venue.kind,
            "name": venue.name,
            "base_url": venue.base_url,
            "account": venue.account,
            "enabled": venue.enabled,
            **{k: venue.options_json.get(k, "") for k in ("fee_deduct_type", "path_prefix")},
        }
    form = VenueForm(request.POST or None, initial=initial, editing=venue is not None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        options = {"fee_deduct_type": data["fee_deduct_type"], "path_prefix": data["path_prefix"]}
        try:
            if venue is None:
                venue = services.venue_create(
                    actor=request.user,
                    kind=data["kind"],
                    name=data["name"],
                    base_url=data["base_url"],
                    account=data["account"],
                    api_key=data["api_key"],
                    api_secret=data["api_secret"],
                    passphrase=data["passphrase"],
                    options=options,
                    ip=client_ip(request),
                )
            else:
                services.venue_update(
                    actor=request.user,
                    venue_id=venue.pk,
                    base_url=data["base_url"],
                    account=data["account"],
                    api_key=data["api_key"],
                    api_secret=data["api_secret"],
                    passphrase=data["passphrase"],
                    options=options,
                    enabled=data["enabled"],
                    ip=client_ip(request),
                )
        except services.VenueConfigError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Venue {venue.name} saved.")
            return redirect("venues:list")
    return render(
        request,
        "venues/edit.html",
        {"form": form, "venue": venue},
        status=400 if form.is_bound and form.errors else 200,
    )


@require_POST
def venue_check(request: HttpRequest, pk: int) -> HttpResponse:
    """Partial: result of a read-only authenticated call (POST: it reaches out to the venue)."""
    _require_admin(request)
    venue = get_object_or_404(Venue, pk=pk)
    result = services.venue_check(venue=venue)
    return render(request, "venues/list.html#check_result", {"v": venue, "result": result})
