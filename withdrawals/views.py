"""Withdrawal pages. Thin: parse input, call a service or selector, render a page or a partial."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, push_url

from accounts.roles import APPROVER, AUDITOR, REQUESTER, WHITELIST_ADMIN, require_role
from accounts.services import TotpRefused
from accounts.utils import client_ip
from core.forms import apply_service_error
from venues.models import Venue
from venues.refusals import Refusal, refusal_explain
from whitelist.selectors import active_addresses_for

from . import policy, rules, selectors, services
from .forms import (
    AcknowledgeDuplicateForm,
    ApproveForm,
    ConfirmResolutionForm,
    DeclineResolutionForm,
    FilterForm,
    RejectForm,
    ResolutionForm,
    WithdrawalForm,
)
from .models import DuplicatePayment, Quote, Resolution, WithdrawalRequest

PAGE = "withdrawals/detail.html"


def _withdrawal_or_404(request: HttpRequest, pk: int) -> WithdrawalRequest:
    try:
        return selectors.withdrawal_get_for(user=request.user, pk=pk)
    except WithdrawalRequest.DoesNotExist:
        raise Http404("No such withdrawal") from None


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    mine = (
        WithdrawalRequest.objects.filter(requested_by=user)
        .select_related("venue")
        .order_by("-id")[:10]
    )
    return render(
        request,
        "withdrawals/dashboard.html",
        {"queue": selectors.approval_queue_rows(user=user), "mine": mine},
    )


@require_GET
def withdrawal_list(request: HttpRequest) -> HttpResponse:
    """The history. An invalid filter shows its message and no rows: a page of every
    withdrawal under a filter the reader believes applied would be read as the answer."""
    form = FilterForm(request.GET or None)
    valid = form.is_valid() if form.is_bound else True
    rows: list[selectors.HistoryRow] = []
    next_before = None
    if valid:
        filters = form.cleaned_data if form.is_bound else {}
        rows, next_before = selectors.withdrawal_history_page(
            user=request.user, filters=filters, size=selectors.PAGE_SIZE
        )
    # The filters as set, without blanks (htmx sends every field) nor the page cursor: the
    # export links, the next page and the address bar carry them.
    query = QueryDict(mutable=True)
    for name, values in request.GET.lists():
        if name != "before" and any(values):
            query.setlist(name, [v for v in values if v])
    context = {
        "form": form,
        "valid": valid,
        "rows": rows,
        "next_before": next_before,
        "query": query.urlencode(),
    }
    if not request.htmx:
        return render(request, "withdrawals/list.html", context)
    response = render(request, "withdrawals/list.html#history", context)
    if request.GET.get("before"):
        query["before"] = request.GET["before"]
    here = reverse("withdrawals:list")
    return push_url(response, f"{here}?{query.urlencode()}" if query else here)


@require_http_methods(["GET", "POST"])
def withdrawal_new(request: HttpRequest) -> HttpResponse:
    require_role(request.user, REQUESTER)
    form = WithdrawalForm(request.POST or None, initial={"venue": request.GET.get("venue")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            withdrawal = services.withdrawal_create(
                requester=request.user,
                venue_id=data["venue"].pk,
                address_id=data["address"],
                amount=data["amount"],
                fee_deduct_type=data["fee_deduct_type"],
                note=data["note"],
                ip=client_ip(request),
            )
        except services.WithdrawalError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(request, "Withdrawal requested. It now waits for a second person.")
            return redirect("withdrawals:detail", pk=withdrawal.pk)
    venue = getattr(form, "cleaned_data", {}).get("venue")
    return render(
        request,
        "withdrawals/new.html",
        {"form": form, "addresses": _addresses(venue), "venue": venue},
        status=400 if form.is_bound and form.errors else 200,
    )


def _addresses(venue: Any) -> list[Any]:
    return list(active_addresses_for(venue=venue)) if venue is not None else []


@require_GET
def withdrawal_addresses(request: HttpRequest) -> HttpResponse:
    """Partial: the active addresses of the chosen venue (and its venue-specific fields)."""
    require_role(request.user, REQUESTER)
    raw = request.GET.get("venue", "")
    venue = Venue.objects.filter(pk=int(raw), enabled=True).first() if raw.isdigit() else None
    return render(
        request,
        "withdrawals/new.html#venue_fields",
        {"addresses": _addresses(venue), "venue": venue, "form": WithdrawalForm()},
    )


@require_POST
def withdrawal_preview(request: HttpRequest) -> HttpResponse:
    """Partial: the venue's fee quote for what the requester is typing. Saves nothing."""
    require_role(request.user, REQUESTER)
    form = WithdrawalForm(request.POST)
    context: dict[str, Any] = {}
    form.is_valid()
    data = form.cleaned_data
    if "amount" in form.errors:
        context["error"] = form.errors["amount"][0]
    elif not data.get("venue") or not data.get("address") or data.get("amount") is None:
        context["hint"] = "Choose a venue and an address, then type an amount."
    else:
        try:
            context["preview"] = services.withdrawal_preview(
                user=request.user,
                venue_id=data["venue"].pk,
                address_id=data["address"],
                amount=data["amount"],
                fee_deduct_type=data.get("fee_deduct_type") or "",
                # The form's own trigger says "typing"; the "Get quote" button does not.
                typing=bool(request.POST.get("typing")),
            )
            context["ask_quote"] = context["preview"] is None
            context["amount"] = data["amount"]
            context["venue"] = data["venue"]
            context["policy"] = policy.request_context(
                venue=data["venue"], address_id=data["address"], amount=data["amount"]
            )
        except services.WithdrawalError as exc:
            context["error"] = exc.message
    return render(request, "withdrawals/new.html#preview", context)


def _detail_context(
    request: HttpRequest, withdrawal: WithdrawalRequest, **extra: Any
) -> dict[str, Any]:
    """Everything the page shows, from the withdrawal's current state: each button appears
    exactly when the same rule the service applies would accept the act."""
    user = request.user
    approve_refusal = rules.approve_refusal(user, withdrawal)
    return {
        "w": withdrawal,
        "timeline": selectors.withdrawal_timeline(withdrawal=withdrawal),
        "approvals": [
            (approval, policy.approval_flag_labels(approval))
            for approval in withdrawal.approvals.select_related("approver")
        ],
        "approvals_given": rules.approvals_given(withdrawal),
        "approvals_required": rules.approvals_required(withdrawal),
        "expires_at": rules.pending_expires_at(withdrawal),
        "polled": rules.withdrawal_is_polled(withdrawal),
        "refusal": venue_refusal(withdrawal),
        "can_decide": not rules.decide_refusal(user, withdrawal),
        "approve_refusal": approve_refusal,
        "can_approve": not approve_refusal,
        "can_reject": not rules.reject_refusal(user, withdrawal),
        "can_cancel": not rules.cancel_refusal(user, withdrawal),
        "can_requote": not rules.requote_refusal(user, withdrawal),
        "approve_form": ApproveForm(),
        "reject_form": RejectForm(),
        # What the rule needs and the red flags, to everyone who may decide on it now (also
        # after their own approval, while others' are awaited).
        "policy": policy.approval_context(withdrawal=withdrawal, viewer=user)
        if not rules.decide_refusal(user, withdrawal)
        else None,
        **extra,
    }


def venue_refusal(withdrawal: WithdrawalRequest) -> Refusal | None:
    """The venue's refusal in words, with its own code kept for whoever asks the venue."""
    if not withdrawal.venue_error_code:
        return None
    return refusal_explain(kind=withdrawal.venue.kind, code=withdrawal.venue_error_code)


def _with_quote(context: dict[str, Any], quote: Quote | None) -> dict[str, Any]:
    """The quote in the panel, and how long it still holds (the page counts it down)."""
    context["quote"] = quote
    if quote is not None and quote.expires_at is not None:
        remaining = (quote.expires_at - timezone.now()).total_seconds()
        context["quote_seconds"] = max(int(remaining), 0)
        context["quote_expired"] = remaining <= 0
    return context


@require_GET
def withdrawal_detail(request: HttpRequest, pk: int) -> HttpResponse:
    withdrawal = _withdrawal_or_404(request, pk)
    return render(request, PAGE, _detail_context(request, withdrawal))


@require_GET
def withdrawal_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Partial, polled while the venue holds the withdrawal: state, banner, facts, timeline."""
    withdrawal = _withdrawal_or_404(request, pk)
    context = _detail_context(request, withdrawal)
    if context["polled"]:
        return render(request, f"{PAGE}#live", context)
    # Nothing changes here without someone acting on the page: the last render, then silence.
    return HttpResponseStopPolling(render_to_string(f"{PAGE}#live", context, request=request))


def _panel(
    request: HttpRequest, withdrawal: WithdrawalRequest, *, status: int = 200, **extra: Any
) -> HttpResponse:
    """The approve panel from the current state (the whole page for a plain form post). If the
    withdrawal moved on meanwhile (cancelled, approved by someone else), the whole page is
    loaded again instead, so no stale button or banner stays next to the new state."""
    withdrawal.refresh_from_db()
    refusal = rules.decide_refusal(request.user, withdrawal)
    if refusal:
        messages.error(request, refusal)
        return _after_action(request, withdrawal)
    context = _detail_context(request, withdrawal, **extra)
    if request.htmx:
        return render(request, f"{PAGE}#approve_panel", context)
    # Without JavaScript the forms post plainly: the whole page, with the panel as it is now.
    return render(request, PAGE, context, status=status)


@require_POST
def withdrawal_quote(request: HttpRequest, pk: int) -> HttpResponse:
    """Partial: a fresh venue quote in the approve panel (stored as evidence, hence POST)."""
    withdrawal = _withdrawal_or_404(request, pk)
    require_role(request.user, APPROVER)
    try:
        quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=request.user)
    except services.WithdrawalError as exc:
        return _panel(request, withdrawal, panel_error=exc.message)
    return _panel(
        request,
        withdrawal,
        approve_form=ApproveForm(initial={"quote": quote.pk}),
        **_with_quote({}, quote),
    )


@require_POST
def withdrawal_approve(request: HttpRequest, pk: int) -> HttpResponse:
    withdrawal = _withdrawal_or_404(request, pk)
    require_role(request.user, APPROVER)
    form = ApproveForm(request.POST)
    if form.is_valid():
        try:
            withdrawal = services.withdrawal_approve(
                withdrawal_id=withdrawal.pk,
                approver=request.user,
                code=form.cleaned_data["code"],
                quote_id=form.cleaned_data["quote"],
                ip=client_ip(request),
            )
        except TotpRefused as exc:
            form.add_error("code", str(exc))
        except services.WithdrawalError as exc:
            form.add_error(None, exc.message)
        else:
            return _after_action(request, withdrawal)
    quote_id = str(form.data.get("quote", ""))
    quote = withdrawal.quotes.filter(pk=quote_id).first() if quote_id.isdigit() else None
    return _panel(request, withdrawal, status=400, approve_form=form, **_with_quote({}, quote))


@require_POST
def withdrawal_reject(request: HttpRequest, pk: int) -> HttpResponse:
    withdrawal = _withdrawal_or_404(request, pk)
    require_role(request.user, APPROVER)
    form = RejectForm(request.POST)
    if form.is_valid():
        try:
            withdrawal = services.withdrawal_reject(
                withdrawal_id=withdrawal.pk,
                approver=request.user,
                reason=form.cleaned_data["reason"],
                ip=client_ip(request),
            )
        except services.WithdrawalError as exc:
            form.add_error("reason", exc.message)
        else:
            return _after_action(request, withdrawal)
    return _panel(request, withdrawal, status=400, reject_form=form)


@require_POST
def withdrawal_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    withdrawal = _withdrawal_or_404(request, pk)
    try:
        withdrawal = services.withdrawal_cancel(
            withdrawal_id=withdrawal.pk, requester=request.user, ip=client_ip(request)
        )
    except services.WithdrawalError as exc:
        messages.error(request, exc.message)
    return _after_action(request, withdrawal)


@require_POST
def withdrawal_requote(request: HttpRequest, pk: int) -> HttpResponse:
    withdrawal = _withdrawal_or_404(request, pk)
    try:
        withdrawal = services.withdrawal_requote(
            withdrawal_id=withdrawal.pk, requester=request.user, ip=client_ip(request)
        )
    except services.WithdrawalError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "New fee cap taken from a fresh quote. Approvals start over.")
    return _after_action(request, withdrawal)


def _after_action(request: HttpRequest, withdrawal: WithdrawalRequest) -> HttpResponse:
    """The whole page again, from the current state: its banner says what happened (a
    message saved now would outlive the state it describes)."""
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Redirect": withdrawal_url(withdrawal)})
    return redirect("withdrawals:detail", pk=withdrawal.pk)


def withdrawal_url(withdrawal: WithdrawalRequest) -> str:
    return reverse("withdrawals:detail", kwargs={"pk": withdrawal.pk})


# --- Needs attention: what reconciliation cannot settle -------------------------------------

ATTENTION = "withdrawals/attention.html"


def _with_permissions(withdrawal: WithdrawalRequest, user: Any) -> WithdrawalRequest:
    """What this person may do to this item now, from the same rules the services apply."""
    now = timezone.now()
    withdrawal.can_propose = not rules.resolution_propose_refusal(user, withdrawal, now=now)
    resolution = withdrawal.open_resolution
    withdrawal.can_confirm = bool(resolution) and not rules.resolution_confirm_refusal(
        user, resolution, now=now
    )
    withdrawal.can_decline = bool(resolution) and not rules.resolution_decline_refusal(
        user, resolution
    )
    withdrawal.can_acknowledge = rules.may_settle(user)
    return withdrawal


@require_GET
def attention(request: HttpRequest) -> HttpResponse:
    require_role(request.user, APPROVER, WHITELIST_ADMIN, AUDITOR)
    queue = [_with_permissions(w, request.user) for w in selectors.attention_queue()]
    return render(request, ATTENTION, {"queue": queue, **_attention_forms()})


def _attention_forms(**forms: Any) -> dict[str, Any]:
    context = {
        "resolution_form": forms.get("resolution_form") or ResolutionForm(),
        "confirm_form": forms.get("confirm_form") or ConfirmResolutionForm(),
        "decline_form": forms.get("decline_form") or DeclineResolutionForm(),
        "acknowledge_form": forms.get("acknowledge_form") or AcknowledgeDuplicateForm(),
    }
    # A refusal is shown whether or not the refused form is still on the page.
    context["forms_with_errors"] = [f for f in context.values() if f.is_bound]
    return context


def _attention_item(
    request: HttpRequest, pk: int, *, ok: str = "", failed: bool = False, **forms: Any
) -> HttpResponse:
    """The one queue item, re-rendered from the current state (htmx swaps it in place)."""
    item = _with_permissions(selectors.attention_item(pk=pk), request.user)
    context = {"w": item, "item_message": ok, "error_item": pk, **_attention_forms(**forms)}
    if request.htmx:
        return render(request, f"{ATTENTION}#item", context)
    if ok:
        messages.success(request, ok)
        return redirect("withdrawals:attention")
    queue = [_with_permissions(w, request.user) for w in selectors.attention_queue()]
    for index, queued in enumerate(queue):
        if queued.pk == item.pk:
            queue[index] = item
    return render(request, ATTENTION, {"queue": queue, **context}, status=400 if failed else 200)


def _settle(
    request: HttpRequest,
    withdrawal_id: int,
    form: Any,
    form_name: str,
    act: Callable[[dict[str, Any]], object],
    ok: str,
) -> HttpResponse:
    """One act on the queue: validate, call the service, and re-render the item from the
    current state with either the outcome or the refusal next to the form."""
    if form.is_valid():
        try:
            act(form.cleaned_data)
        except TotpRefused as exc:
            form.add_error("code", str(exc))
        except services.WithdrawalError as exc:
            apply_service_error(form, exc)
        else:
            return _attention_item(request, withdrawal_id, ok=ok)
    return _attention_item(request, withdrawal_id, failed=True, **{form_name: form})


@require_POST
def withdrawal_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    require_role(request.user, APPROVER, WHITELIST_ADMIN)
    if not WithdrawalRequest.objects.filter(pk=pk).exists():
        raise Http404("No such withdrawal")
    return _settle(
        request,
        pk,
        ResolutionForm(request.POST),
        "resolution_form",
        lambda data: services.withdrawal_resolution_propose(
            withdrawal_id=pk,
            actor=request.user,
            finding=data["finding"],
            reference=data["reference"],
            evidence=data["evidence"],
            code=data["code"],
            ip=client_ip(request),
        ),
        "Recorded. A second person must confirm it before it applies.",
    )


def _resolution_or_404(pk: int) -> Resolution:
    try:
        return Resolution.objects.get(pk=pk)
    except Resolution.DoesNotExist:
        raise Http404("No such finding") from None


@require_POST
def resolution_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    require_role(request.user, APPROVER, WHITELIST_ADMIN)
    resolution = _resolution_or_404(pk)
    return _settle(
        request,
        resolution.withdrawal_id,
        ConfirmResolutionForm(request.POST),
        "confirm_form",
        lambda data: services.withdrawal_resolution_confirm(
            resolution_id=resolution.pk,
            actor=request.user,
            code=data["code"],
            ip=client_ip(request),
        ),
        "Confirmed and applied.",
    )


@require_POST
def resolution_decline(request: HttpRequest, pk: int) -> HttpResponse:
    require_role(request.user, APPROVER, WHITELIST_ADMIN)
    resolution = _resolution_or_404(pk)
    return _settle(
        request,
        resolution.withdrawal_id,
        DeclineResolutionForm(request.POST),
        "decline_form",
        lambda data: services.withdrawal_resolution_decline(
            resolution_id=resolution.pk,
            actor=request.user,
            note=data["note"],
            ip=client_ip(request),
        ),
        "Declined.",
    )


@require_POST
def duplicate_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    require_role(request.user, APPROVER, WHITELIST_ADMIN)
    try:
        duplicate = DuplicatePayment.objects.get(pk=pk)
    except DuplicatePayment.DoesNotExist:
        raise Http404("No such duplicate") from None
    return _settle(
        request,
        duplicate.withdrawal_id,
        AcknowledgeDuplicateForm(request.POST),
        "acknowledge_form",
        lambda data: services.withdrawal_duplicate_acknowledge(
            duplicate_id=duplicate.pk,
            actor=request.user,
            code=data["code"],
            note=data["note"],
            ip=client_ip(request),
        ),
        "Taken in hand.",
    )
