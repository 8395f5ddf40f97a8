"""The policy and price pages: read them, propose a change, approve or decline one."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import role_label
from accounts.utils import client_ip

from . import rules, selectors, services
from .forms import (
    ApproveProposalForm,
    DeclineProposalForm,
    PolicySettingsForm,
    PriceFormSet,
    PricesDateForm,
    RuleFormSet,
)
from .models import Proposal, ProposalKind
from .rulebook import PolicyError

PAGES = {ProposalKind.POLICY: "policies/policy.html", ProposalKind.PRICES: "policies/prices.html"}
URLS = {ProposalKind.POLICY: "policies:policy", ProposalKind.PRICES: "policies:prices"}


def _require_viewer(request: HttpRequest) -> None:
    if not rules.may_view_policy(request.user):
        raise PermissionDenied("You need a role to see the withdrawal policy.")


def _require_proposer(request: HttpRequest) -> None:
    if not rules.may_propose(request.user):
        raise PermissionDenied("Only whitelist admins change the policy and the prices.")


def _proposal_context(request: HttpRequest, kind: str) -> dict[str, Any]:
    proposal = selectors.proposal_open(kind)
    return {
        "proposal": proposal,
        "diff": selectors.proposal_diff(proposal) if proposal else [],
        "approve_refusal": rules.proposal_approve_refusal(request.user, proposal)
        if proposal
        else "",
        "may_decline": proposal is not None
        and not rules.proposal_decline_refusal(request.user, proposal),
        "recent": selectors.proposals_recent(kind),
        "may_propose": rules.may_propose(request.user),
        "approve_form": ApproveProposalForm(),
        "decline_form": DeclineProposalForm(),
    }


def _policy_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    version = services.policy_in_force()
    return {
        "version": version,
        "rules": [
            {"rule": rule, "role": role_label(rule.required_role) if rule.required_role else ""}
            for rule in selectors.policy_rules(version)
        ],
        "time_zone": timezone.get_current_timezone_name(),
        **_proposal_context(request, ProposalKind.POLICY),
        **extra,
    }


def _prices_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    table = selectors.prices_current()
    context = {"table": table, **_proposal_context(request, ProposalKind.PRICES)}
    if context["may_propose"] and "price_forms" not in extra:
        payload = selectors.prices_payload(table) or {"as_of": "", "prices": {}}
        extra["date_form"] = PricesDateForm(initial={"as_of": payload["as_of"] or None})
        extra["price_forms"] = PriceFormSet(
            initial=[{"asset": a, "usd": usd} for a, usd in payload["prices"].items()],
            prefix="prices",
        )
    return {**context, **extra}


def _page(request: HttpRequest, kind: str, *, status: int = 200, **extra: Any) -> HttpResponse:
    if kind == ProposalKind.POLICY:
        context = _policy_context(request, **extra)
    else:
        context = _prices_context(request, **extra)
    return render(request, PAGES[kind], context, status=status)


@require_GET
def policy_page(request: HttpRequest) -> HttpResponse:
    _require_viewer(request)
    return _page(request, ProposalKind.POLICY)


@require_http_methods(["GET", "POST"])
def policy_propose(request: HttpRequest) -> HttpResponse:
    _require_proposer(request)
    error = ""
    if request.method == "POST":
        rule_forms = RuleFormSet(request.POST, prefix="rules")
        settings_form = PolicySettingsForm(request.POST, prefix="settings")
        if rule_forms.is_valid() and settings_form.is_valid():
            raw = {"settings": settings_form.cleaned_data, "rules": rule_forms.rules()}
            try:
                services.policy_change_propose(actor=request.user, raw=raw, ip=client_ip(request))
            except PolicyError as exc:
                error = exc.message
            else:
                messages.success(request, "Proposed: a second whitelist admin must approve it.")
                return redirect("policies:policy")
        status = 400
    else:
        payload = selectors.policy_payload(services.policy_in_force()) or {}
        rule_forms = RuleFormSet(initial=payload.get("rules"), prefix="rules")
        settings_form = PolicySettingsForm(initial=payload.get("settings"), prefix="settings")
        status = 200
    return render(
        request,
        "policies/propose.html",
        {"rule_forms": rule_forms, "settings_form": settings_form, "error": error},
        status=status,
    )


@require_GET
def prices_page(request: HttpRequest) -> HttpResponse:
    _require_viewer(request)
    return _page(request, ProposalKind.PRICES)


@require_POST
def prices_propose(request: HttpRequest) -> HttpResponse:
    _require_proposer(request)
    date_form = PricesDateForm(request.POST)
    price_forms = PriceFormSet(request.POST, prefix="prices")
    error = ""
    if date_form.is_valid() and price_forms.is_valid():
        prices = {
            f.cleaned_data["asset"]: f.cleaned_data["usd"]
            for f in price_forms.forms
            if f.cleaned_data.get("asset") and not f.cleaned_data.get("DELETE")
        }
        raw = {"as_of": date_form.cleaned_data["as_of"].isoformat(), "prices": prices}
        try:
            services.prices_change_propose(actor=request.user, raw=raw, ip=client_ip(request))
        except PolicyError as exc:
            error = exc.message
        else:
            messages.success(request, "Proposed: a second whitelist admin must approve it.")
            return redirect("policies:prices")
    return _page(
        request,
        ProposalKind.PRICES,
        status=400,
        date_form=date_form,
        price_forms=price_forms,
        propose_error=error,
    )


@require_POST
def proposal_approve(request: HttpRequest, pk: int) -> HttpResponse:
    _require_proposer(request)
    proposal = get_object_or_404(Proposal, pk=pk)
    form = ApproveProposalForm(request.POST)
    if form.is_valid():
        try:
            services.proposal_approve(
                proposal_id=proposal.pk,
                approver=request.user,
                code=form.cleaned_data["code"],
                ip=client_ip(request),
            )
        except PolicyError as exc:
            form.add_error("code" if exc.field == "code" else None, exc.message)
        else:
            messages.success(request, "Approved: the new version is in force.")
            return redirect(URLS[proposal.kind])
    return _page(request, proposal.kind, status=400, approve_form=form)


@require_POST
def proposal_decline(request: HttpRequest, pk: int) -> HttpResponse:
    _require_proposer(request)
    proposal = get_object_or_404(Proposal, pk=pk)
    form = DeclineProposalForm(request.POST)
    if form.is_valid():
        try:
            services.proposal_decline(
                proposal_id=proposal.pk,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                ip=client_ip(request),
            )
        except PolicyError as exc:
            form.add_error("reason" if exc.field == "reason" else None, exc.message)
        else:
            messages.success(request, "Declined: nothing changes.")
            return redirect(URLS[proposal.kind])
    return _page(request, proposal.kind, status=400, decline_form=form)
