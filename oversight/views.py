"""The auditors' pages. All are GET-only reads; auditors reach no mutating endpoint here.

Downloads (exports, evidence JSON) write one audit event saying who took what: that is
access logging, not a change to anything the trail describes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from functools import cache, wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import format_html_join
from django.views.decorators.http import require_GET

from accounts.roles import AUDITOR, has_role
from accounts.utils import client_ip
from audit.actions import AuditAction
from audit.checkpoints import CheckpointError, checkpoint_latest, checkpoint_write
from audit.selectors import chain_check_latest
from withdrawals.forms import FilterForm
from withdrawals.models import State, WithdrawalRequest
from withdrawals.selectors import withdrawals_filtered

from . import charts, exports, selectors, services
from .forms import AuditFilterForm, ChartPeriodForm, WhitelistHistoryForm


def auditor_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not has_role(request.user, AUDITOR):
            raise PermissionDenied("Only auditors may open the audit pages.")
        return view(request, *args, **kwargs)

    return wrapped


@require_GET
@auditor_required
def dashboard(request: HttpRequest) -> HttpResponse:
    days = ChartPeriodForm(request.GET or None).period()
    until = timezone.localdate()
    since = until - timedelta(days=days - 1)
    volume = selectors.withdrawal_volume_by_day(since=since)
    counts = selectors.withdrawal_counts_by_state(since=since)
    bars = charts.state_bars(counts, list(State.choices))
    return render(
        request,
        "oversight/dashboard.html",
        {
            "check": chain_check_latest(),
            "totals_at": selectors.daily_totals_refreshed_at(),
            # Shown as the period charted, even when the request asked for a bad one.
            "period": ChartPeriodForm(initial={"days": days}),
            "days": days,
            "since": since,
            "until": until,
            "series": charts.volume_series(volume, since=since, until=until),
            "state_bars": bars,
            "state_chart_height": len(bars) * charts.STATE_ROW_HEIGHT + 4,
            "chart_height": charts.BAR_AREA_HEIGHT,
            "chart_width": charts.BAR_AREA_WIDTH,
        },
    )


@cache
def _action_options() -> str:
    """The catalogue as <option>s of the action filter's suggestions: the same for every page
    and every process lifetime, so written once rather than per request."""
    return format_html_join(
        "", '<option value="{}">{}</option>', ((a, a.label) for a in AuditAction)
    )


def _history(request: HttpRequest, form: Any, *, whitelist_only: bool) -> HttpResponse:
    """Audit events, or only whitelist changes: one page, the same keyset pagination. A filter
    that does not validate shows its message and no rows: never rows it did not ask for."""
    template = "oversight/events.html"
    rows: list[Any] = []
    next_before = None
    if form.is_valid() or not form.is_bound:
        filters = dict(form.cleaned_data) if form.is_bound else {}
        filters["whitelist_only"] = whitelist_only
        qs = selectors.audit_events_filtered(filters=filters)
        rows, next_before = selectors.audit_event_page(
            qs=qs,
            before=filters.get("before"),
            size=selectors.PAGE_SIZE,
            by_time=bool(filters.get("since") or filters.get("until")),
        )
    query = request.GET.copy()
    query.pop("before", None)
    for name in [name for name, value in query.items() if not value]:
        del query[name]
    return render(
        request,
        f"{template}#history" if request.htmx else template,
        {
            "form": form,
            "rows": rows,
            "next_before": next_before,
            "query": query.urlencode(),
            "whitelist_only": whitelist_only,
            "action_options": _action_options(),
        },
    )


@require_GET
@auditor_required
def event_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    return _history(request, form, whitelist_only=False)


@require_GET
@auditor_required
def whitelist_history(request: HttpRequest) -> HttpResponse:
    form = WhitelistHistoryForm(request.GET or None)
    return _history(request, form, whitelist_only=True)


def _withdrawal(pk: int) -> WithdrawalRequest:
    try:
        return WithdrawalRequest.objects.select_related(
            "venue", "requested_by", "whitelisted_address"
        ).get(pk=pk)
    except WithdrawalRequest.DoesNotExist:
        raise Http404("No such withdrawal") from None


@require_GET
@auditor_required
def evidence(request: HttpRequest, pk: int) -> HttpResponse:
    withdrawal = _withdrawal(pk)
    pack = selectors.evidence_pack(withdrawal=withdrawal)
    return render(request, "oversight/evidence.html", {"w": withdrawal, "pack": pack})


@require_GET
@auditor_required
def evidence_json(request: HttpRequest, pk: int) -> HttpResponse:
    withdrawal = _withdrawal(pk)
    pack = selectors.evidence_pack(withdrawal=withdrawal)
    services.audit_export_record(
        actor=request.user,
        ip=client_ip(request),
        dataset="evidence",
        fmt="json",
        filters={"withdrawal": withdrawal.pk},
    )
    response = HttpResponse(
        json.dumps(pack, indent=2, cls=DjangoJSONEncoder, ensure_ascii=False),
        content_type="application/json",
    )
    response["Content-Disposition"] = f'attachment; filename="evidence-{withdrawal.pk}.json"'
    return response


@require_GET
@auditor_required
def export(request: HttpRequest, dataset: str, fmt: str) -> HttpResponse:
    chosen = exports.DATASETS.get(dataset)
    if chosen is None or fmt not in exports.FORMATS:
        raise Http404("No such export")
    if dataset == "withdrawals":
        form: Any = FilterForm(request.GET or None)
    else:
        form = AuditFilterForm(request.GET or None)
    if request.GET and not form.is_valid():
        errors = "; ".join(e for errs in form.errors.values() for e in errs)
        return HttpResponse(
            f"Export refused: {errors}", status=400, content_type="text/plain; charset=utf-8"
        )
    filters = {k: v for k, v in (form.cleaned_data if form.is_bound else {}).items() if v}
    filters.pop("before", None)
    if dataset == "withdrawals":
        qs = withdrawals_filtered(user=request.user, filters=filters)
    else:
        qs = selectors.audit_events_filtered(filters=filters)
    qs = selectors.export_rows_bounded(qs=qs, key=chosen.key.source)
    export = exports.export_open(dataset=chosen, fmt=fmt, qs=qs)
    try:
        services.audit_export_record(
            actor=request.user,
            ip=client_ip(request),
            dataset=dataset,
            fmt=fmt,
            filters=filters,
            rows=export.rows,
        )
        # Every export leaves the chain's head outside the database too, its event included.
        checkpoint_write()
    except BaseException:
        export.close()
        raise
    response = StreamingHttpResponse(export, content_type=exports.FORMATS[fmt])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    extension = "csv" if fmt == "csv" else "jsonl"
    response["Content-Disposition"] = f'attachment; filename="{dataset}-{stamp}.{extension}"'
    return response


@require_GET
@auditor_required
def checkpoint_download(request: HttpRequest) -> HttpResponse:
    """The latest signed checkpoint of the chain's head, for an auditor to keep elsewhere and
    later hand to ``verify_audit --checkpoint``."""
    try:
        checkpoint = checkpoint_latest()
    except CheckpointError as exc:
        return HttpResponse(
            f"The checkpoint log cannot be read: {exc}",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    if checkpoint is None:
        raise Http404("No checkpoint has been written yet.")
    response = HttpResponse(checkpoint.as_json() + "\n", content_type="application/json")
    response["Content-Disposition"] = (
        f'attachment; filename="audit-checkpoint-{checkpoint.seq}.json"'
    )
    return response
