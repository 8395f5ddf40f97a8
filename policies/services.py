"""Changing the policy or the reference prices: proposed by one whitelist admin, approved with
a fresh TOTP code by a second, each approval writing the next version. Every step is on the
audit trail with the readable diff."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import TotpRefused, totp_code_verify
from audit.actions import AuditAction
from audit.services import audit_event_record
from venues.models import Venue
from whitelist.models import WhitelistedAddress

from . import rulebook, rules, selectors
from .models import (
    PolicyVersion,
    Price,
    PriceTable,
    Proposal,
    ProposalKind,
    ProposalState,
    Rule,
)
from .rulebook import PolicyError

ACTIONS = {
    ProposalKind.POLICY: {
        "proposed": AuditAction.POLICY_CHANGE_PROPOSED,
        "approved": AuditAction.POLICY_CHANGE_APPROVED,
        "declined": AuditAction.POLICY_CHANGE_DECLINED,
    },
    ProposalKind.PRICES: {
        "proposed": AuditAction.PRICE_CHANGE_PROPOSED,
        "approved": AuditAction.PRICE_CHANGE_APPROVED,
        "declined": AuditAction.PRICE_CHANGE_DECLINED,
    },
}
WHAT = {ProposalKind.POLICY: "the withdrawal policy", ProposalKind.PRICES: "the reference prices"}


def policy_in_force() -> PolicyVersion:
    """The version in force. A migration writes version 1 (one default rule); where a test
    database was emptied since, the same version 1 is written again the first time it is asked
    for, so a withdrawal never meets an empty policy."""
    current = selectors.policy_current()
    if current is not None:
        return current
    with transaction.atomic():
        version, created = PolicyVersion.objects.get_or_create(number=1)
        if created:
            Rule.objects.create(policy=version, position=1)
    return version


def _current_number(kind: str) -> int | None:
    if kind == ProposalKind.POLICY:
        current: PolicyVersion | PriceTable | None = selectors.policy_current()
    else:
        current = selectors.prices_current()
    return current.number if current is not None else None


def _check_references(payload: dict[str, Any]) -> None:
    venues = {r["venue"] for r in payload["rules"] if r["venue"]}
    if venues - set(Venue.objects.filter(pk__in=venues).values_list("pk", flat=True)):
        raise PolicyError("A rule names a venue that does not exist.")
    destinations = {r["destination"] for r in payload["rules"] if r["destination"]}
    known = set(WhitelistedAddress.objects.filter(pk__in=destinations).values_list("pk", flat=True))
    if destinations - known:
        raise PolicyError("A rule names a destination that is not on the whitelist.")


def _propose(
    *, kind: str, actor: Any, payload: dict[str, Any], diff: list[str], ip: str | None
) -> Proposal:
    if not rules.may_propose(actor):
        raise PermissionDenied("Only whitelist admins propose policy and price changes.")
    if not diff:
        raise PolicyError("This proposal changes nothing.")
    try:
        with transaction.atomic():
            proposal = Proposal.objects.create(
                kind=kind,
                payload=payload,
                base_number=_current_number(kind),
                proposed_by=actor,
            )
            audit_event_record(
                action=ACTIONS[kind]["proposed"],
                actor=actor,
                ip=ip,
                target=proposal,
                message=f"Proposed a change to {WHAT[kind]}: " + "; ".join(diff),
                data={"proposal": proposal.pk, "base": proposal.base_number, "diff": diff},
            )
    except IntegrityError:
        raise PolicyError(
            f"A change to {WHAT[kind]} is already waiting for approval: approve or decline "
            "that one first."
        ) from None
    return proposal


def policy_change_propose(*, actor: Any, raw: dict[str, Any], ip: str | None = None) -> Proposal:
    """Propose a whole new policy (settings and ordered rules)."""
    payload = rulebook.policy_payload_clean(raw)
    _check_references(payload)
    diff = rulebook.policy_diff(
        selectors.policy_payload(policy_in_force()),
        payload,
        selectors.names_for_display(),
    )
    return _propose(kind=ProposalKind.POLICY, actor=actor, payload=payload, diff=diff, ip=ip)


def prices_change_propose(*, actor: Any, raw: dict[str, Any], ip: str | None = None) -> Proposal:
    """Propose a whole new reference price table, with the date the prices are from."""
    payload = rulebook.prices_payload_clean(raw)
    diff = rulebook.prices_diff(selectors.prices_payload(selectors.prices_current()), payload)
    return _propose(kind=ProposalKind.PRICES, actor=actor, payload=payload, diff=diff, ip=ip)


def _proposal(proposal_id: Any) -> Proposal:
    try:
        return Proposal.objects.select_related("proposed_by").get(pk=int(proposal_id))
    except (TypeError, ValueError, Proposal.DoesNotExist):
        raise PolicyError("No such proposal.") from None


def _policy_write(proposal: Proposal) -> PolicyVersion:
    settings = proposal.payload["settings"]
    version = PolicyVersion.objects.create(
        number=(proposal.base_number or 0) + 1,
        proposal=proposal,
        median_multiple=Decimal(settings["median_multiple"]),
        business_hours_start=settings["business_hours_start"],
        business_hours_end=settings["business_hours_end"],
        weekdays_only=settings["weekdays_only"],
        rubber_stamp_seconds=settings["rubber_stamp_seconds"],
    )
    for position, rule in enumerate(proposal.payload["rules"], start=1):
        Rule.objects.create(
            policy=version,
            position=position,
            label=rule["label"],
            venue_id=rule["venue"],
            asset=rule["asset"],
            destination_id=rule["destination"],
            quorum=rule["quorum"],
            required_role=rule["required_role"],
            expiry_hours=rule["expiry_hours"],
            **{
                f: Decimal(rule[f]) if rule[f] is not None else None for f in rulebook.AMOUNT_FIELDS
            },
            **{f: rule[f] for f in rulebook.COUNT_FIELDS},
        )
    return version


def _prices_write(proposal: Proposal) -> PriceTable:
    table = PriceTable.objects.create(
        number=(proposal.base_number or 0) + 1,
        as_of=datetime.date.fromisoformat(proposal.payload["as_of"]),
        proposal=proposal,
    )
    Price.objects.bulk_create(
        Price(table=table, asset=asset, usd=Decimal(usd))
        for asset, usd in proposal.payload["prices"].items()
    )
    return table


def proposal_approve(
    *, proposal_id: Any, approver: Any, code: str, ip: str | None = None
) -> Proposal:
    """A second whitelist admin approves with a fresh TOTP code; the next version is written."""
    current = _proposal(proposal_id)
    if refusal := rules.proposal_approve_refusal(approver, current):
        raise PolicyError(refusal)
    # Own transaction, committed before ours: a rollback below cannot undo throttle or replay.
    try:
        step = totp_code_verify(user=approver, code=code, ip=ip, purpose="policy change approval")
    except TotpRefused as exc:
        raise PolicyError(str(exc), field="code") from None
    with transaction.atomic():
        proposal = Proposal.objects.select_for_update().get(pk=current.pk)
        if refusal := rules.proposal_approve_refusal(approver, proposal):
            raise PolicyError(refusal)
        if _current_number(proposal.kind) != proposal.base_number:
            raise PolicyError(
                f"{WHAT[proposal.kind].capitalize()} changed after this was proposed, so the "
                "difference shown is no longer the one it would make. Decline it and propose "
                "again."
            )
        diff = selectors.proposal_diff(proposal)
        if proposal.kind == ProposalKind.POLICY:
            _check_references(proposal.payload)
            written: PolicyVersion | PriceTable = _policy_write(proposal)
        else:
            written = _prices_write(proposal)
        proposal.state = ProposalState.APPROVED
        proposal.decided_by = approver
        proposal.decided_at = timezone.now()
        proposal.decided_totp_step = step
        proposal.save()
        audit_event_record(
            action=ACTIONS[proposal.kind]["approved"],
            actor=approver,
            ip=ip,
            target=proposal,
            message=f"Approved with TOTP {WHAT[proposal.kind]} version {written.number} "
            f"(proposed by {proposal.proposed_by.get_username()}): " + "; ".join(diff),
            data={
                "proposal": proposal.pk,
                "version": written.number,
                "proposed_by": proposal.proposed_by.get_username(),
                "totp_step": step,
                "diff": diff,
            },
        )
    return proposal


def proposal_decline(
    *, proposal_id: Any, actor: Any, reason: str = "", ip: str | None = None
) -> Proposal:
    """Any whitelist admin stops a proposal, the proposer included. No TOTP: it grants nothing."""
    reason = (reason or "").strip()
    if len(reason) > 300:
        raise PolicyError("Keep the reason under 300 characters.", field="reason")
    with transaction.atomic():
        proposal = Proposal.objects.select_for_update().get(pk=_proposal(proposal_id).pk)
        if refusal := rules.proposal_decline_refusal(actor, proposal):
            raise PolicyError(refusal)
        proposal.state = ProposalState.DECLINED
        proposal.decided_by = actor
        proposal.decided_at = timezone.now()
        proposal.reason = reason
        proposal.save()
        audit_event_record(
            action=ACTIONS[proposal.kind]["declined"],
            actor=actor,
            ip=ip,
            target=proposal,
            message=f"Declined the proposed change to {WHAT[proposal.kind]}"
            + (f": {reason}" if reason else ""),
            data={"proposal": proposal.pk, "reason": reason},
        )
    return proposal
