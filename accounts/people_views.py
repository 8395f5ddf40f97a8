"""The people page (user admins) and the access review (auditors). Thin: parse input, call a
service or selector, render the page or one of its partials."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.forms import apply_service_error

from . import rules, selectors, services
from .forms import InviteForm, OptionalReasonForm, ProposeChangeForm, ReasonForm, TotpForm
from .services import PeopleError, TotpRefused
from .utils import client_ip

PAGE = "people/people.html"


def _require_user_admin(request: HttpRequest) -> None:
    if not rules.may_manage_people(request.user):
        raise PermissionDenied("Only user admins manage people and roles.")


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    user = request.user
    return {
        "rows": [
            {
                "person": row,
                "can_deactivate": rules.may_deactivate(user, row.user),
                "can_issue_link": rules.may_issue_enrolment_link(
                    user, row.user, has_device=row.has_device
                ),
            }
            for row in selectors.people_rows()
        ],
        "changes": [
            {
                "change": c,
                "can_approve": rules.may_approve_change(user, c),
                "can_reject": rules.may_reject_change(user, c),
                "form": TotpForm(prefix=f"c{c.pk}"),
            }
            for c in selectors.access_changes_open()
        ],
        "recent": selectors.access_changes_recent(),
        "invite_form": InviteForm(),
        "role_choices": selectors.role_choices(),
        "kind_choices": ProposeChangeForm.base_fields["kind"].choices,
        **extra,
    }


def _back(request: HttpRequest, note: str, *, error: bool = False) -> HttpResponse:
    """Row actions end on the page itself, with a message saying what happened or why not."""
    (messages.error if error else messages.success)(request, note)
    url = reverse("people:list")
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Redirect": url})
    return redirect(url)


def _link_shown_once(request: HttpRequest, person: Any, token: str) -> HttpResponse:
    """The enrolment link appears in this response only; the database keeps its hash."""
    link = request.build_absolute_uri(reverse("accounts:enrol_link", args=[token]))
    template = f"{PAGE}#invite_panel" if request.htmx else PAGE
    return render(request, template, _context(request, link={"person": person, "url": link}))


@require_GET
def people(request: HttpRequest) -> HttpResponse:
    _require_user_admin(request)
    return render(request, PAGE, _context(request))


@never_cache
@require_POST
def invite(request: HttpRequest) -> HttpResponse:
    _require_user_admin(request)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            person, token = services.person_invite(
                admin=request.user,
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                ip=client_ip(request),
            )
        except PeopleError as exc:
            apply_service_error(form, exc)
        else:
            return _link_shown_once(request, person, token)
    template = f"{PAGE}#invite_panel" if request.htmx else PAGE
    return render(
        request,
        template,
        _context(request, invite_form=form),
        status=200 if request.htmx else 400,
    )


@never_cache
@require_POST
def enrolment_link(request: HttpRequest, pk: int) -> HttpResponse:
    _require_user_admin(request)
    try:
        token = services.enrolment_link_issue(admin=request.user, user_id=pk, ip=client_ip(request))
    except PeopleError as exc:
        return _back(request, exc.message, error=True)
    return _link_shown_once(request, selectors.person_get(pk=pk), token)


@require_POST
def propose(request: HttpRequest, pk: int) -> HttpResponse:
    _require_user_admin(request)
    form = ProposeChangeForm(request.POST)
    if not form.is_valid():
        return _back(request, "Choose a change and, for a role, the role.", error=True)
    try:
        change = services.access_change_propose(
            admin=request.user,
            subject_id=pk,
            kind=form.cleaned_data["kind"],
            role=form.cleaned_data["role"],
            reason=form.cleaned_data["reason"],
            ip=client_ip(request),
        )
    except PeopleError as exc:
        return _back(request, exc.message, error=True)
    return _back(request, f"Proposed: {change}. A second user admin must approve it.")


@require_POST
def deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    _require_user_admin(request)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _back(request, "Say why you deactivate this person.", error=True)
    try:
        person = services.person_deactivate(
            admin=request.user,
            user_id=pk,
            reason=form.cleaned_data["reason"],
            ip=client_ip(request),
        )
    except PeopleError as exc:
        return _back(request, exc.message, error=True)
    return _back(request, f"{person.get_username()} is deactivated: they can no longer sign in.")


@require_POST
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    _require_user_admin(request)
    form = TotpForm(request.POST, prefix=f"c{pk}")
    if form.is_valid():
        try:
            services.access_change_approve(
                approver=request.user,
                change_id=pk,
                code=form.cleaned_data["code"],
                ip=client_ip(request),
            )
        except TotpRefused as exc:
            form.add_error("code", str(exc))
        except PeopleError as exc:
            return _back(request, exc.message, error=True)
        else:
            return _back(request, "Approved: the change is in force.")
    change = selectors.access_change_get(pk=pk)
    if change is None:
        return _back(request, "No such proposal.", error=True)
    item = {
        "change": change,
        "can_approve": rules.may_approve_change(request.user, change),
        "can_reject": rules.may_reject_change(request.user, change),
        "form": form,
    }
    template = f"{PAGE}#change_panel" if request.htmx else PAGE
    context = _context(request, item=item)
    if not request.htmx:
        context["changes"] = [item if c["change"].pk == pk else c for c in context["changes"]]
    return render(request, template, context, status=200 if request.htmx else 400)


@require_POST
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    _require_user_admin(request)
    form = OptionalReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        services.access_change_reject(
            admin=request.user, change_id=pk, reason=reason, ip=client_ip(request)
        )
    except PeopleError as exc:
        return _back(request, exc.message, error=True)
    return _back(request, "Rejected: nothing changed.")


@never_cache
@require_GET
def access_review(request: HttpRequest) -> HttpResponse:
    if not rules.may_review_access(request.user):
        raise PermissionDenied("Only auditors and user admins review access.")
    return render(
        request, "people/access_review.html", {"rows": selectors.people_rows(with_activity=True)}
    )
