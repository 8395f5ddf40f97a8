"""Whitelist governance: propose, approve, veto, revoke, activate, import, check at the venue.

Four-eyes with TOTP on every change. An address is never edited in place: an edit is a revoke
plus a new proposal. Every state change locks its row, checks the current state and writes its
audit event in the same transaction. TOTP codes are checked (and consumed) before that
transaction starts, and venue calls happen outside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.roles import AUDITOR, WHITELIST_ADMIN, has_role
from accounts.services import totp_code_verify
from audit.actions import AuditAction
from audit.services import audit_event_record
from core.errors import ApplicationError
from venues.interface import SavedAddress, VenueError, VenueRejected
from venues.models import Venue
from venues.registry import client_for

from . import selectors
from .models import AddressSource, AddressState, WhitelistedAddress
from .validators import AddressFormatError, address_canonical, address_check, network_family

logger = logging.getLogger(__name__)

# Assets Countersign governs. Anything else in a form is a tampered or unsupported value.
KNOWN_ASSETS = ("BTC", "ETH", "USDT", "USDC", "XRP", "XLM", "TRX", "BNB")
# Venue asset codes that name one of ours (Kraken answers XXBT for BTC).
ASSET_ALIASES = {"XBT": "BTC", "XXBT": "BTC", "XETH": "ETH", "XXRP": "XRP", "XXLM": "XLM"}


class WhitelistError(ApplicationError):
    """A refusal of an address-book change."""


class VenueCheckUnavailable(Exception):
    """The venue could not list its saved addresses right now (transient). Message is safe."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ImportResult:
    proposed: list[WhitelistedAddress] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (venue key, why)


# --- helpers --------------------------------------------------------------------------------


def _require_admin(user: Any) -> None:
    if not has_role(user, WHITELIST_ADMIN):
        raise PermissionDenied("Only whitelist admins change the whitelist.")


def _get(address_id: Any) -> WhitelistedAddress:
    try:
        return WhitelistedAddress.objects.select_related("venue").get(pk=int(address_id))
    except (TypeError, ValueError, WhitelistedAddress.DoesNotExist):
        raise WhitelistError("No such address on the whitelist.") from None


def _lock(address_id: int) -> WhitelistedAddress:
    return WhitelistedAddress.objects.select_for_update().select_related("venue").get(pk=address_id)


def _enabled_venue(venue_id: Any) -> Venue:
    try:
        return Venue.objects.get(pk=int(venue_id), enabled=True)
    except (TypeError, ValueError, Venue.DoesNotExist):
        raise WhitelistError("Choose a venue.", field="venue") from None


def _display(state: str) -> str:
    return AddressState(state).label.lower()


@dataclass(frozen=True)
class Candidate:
    venue: Venue
    asset: str
    network: str
    address: str
    memo: str
    label: str
    venue_key: str


def _candidate(
    *,
    venue_id: Any,
    asset: str,
    network: str,
    address: str,
    memo: str,
    label: str,
    venue_key: str,
) -> Candidate:
    """Every check of a proposal that needs neither the venue nor a TOTP code."""
    venue = _enabled_venue(venue_id)
    asset = (asset or "").strip().upper()
    if asset not in KNOWN_ASSETS:
        raise WhitelistError("Choose an asset Countersign knows.", field="asset")
    network = (network or "").strip()
    if not network or len(network) > 40:
        raise WhitelistError("Name the network, as the venue spells it.", field="network")
    label = (label or "").strip()
    if not label or len(label) > 80:
        raise WhitelistError("Give the address a label of up to 80 characters.", field="label")
    memo = (memo or "").strip()
    venue_key = (venue_key or "").strip()
    if len(address or "") > 128 or len(memo) > 64 or len(venue_key) > 80:
        raise WhitelistError("One of the values is too long.")
    try:
        address_check(network=network, address=address or "", memo=memo)
    except AddressFormatError as exc:
        raise WhitelistError(exc.message, field=exc.field) from None
    if selectors.duplicates_of(
        venue_id=venue.pk, asset=asset, network=network, address=address
    ).exists():
        raise WhitelistError(
            f"This address is already on the whitelist for {asset} on {network} at "
            f"{venue.name}. To change it, revoke it and propose the new one.",
            field="address",
        )
    _label_free_or_refuse(venue, label)
    return Candidate(venue, asset, network, address, memo, label, venue_key)


def _label_free_or_refuse(venue: Venue, label: str) -> None:
    if selectors.label_taken(venue_id=venue.pk, label=label):
        raise WhitelistError(
            f"Another address at {venue.name} is already labelled “{label}”. A label names "
            "one address: choose a different one.",
            field="label",
        )


def _lookalike_refusal(address: str, exclude_pk: int | None, who: str) -> tuple[str, list[int]]:
    alikes = selectors.lookalikes_of(address=address, exclude_pk=exclude_pk)
    if not alikes:
        return "", []
    names = ", ".join(f"“{a.label}” ({a.address})" for a in alikes[:3])
    return (
        f"This address looks like {names}: same first 4 and last 4 characters, different "
        f"in between. That is how address poisoning works. {who} must compare it character "
        "by character and confirm it explicitly.",
        [a.pk for a in alikes],
    )


# --- checking against the venue -------------------------------------------------------------


def saved_address_mismatch(
    *,
    saved: list[SavedAddress],
    venue_name: str,
    network: str,
    address: str,
    memo: str,
    venue_key: str,
) -> str:
    """Why the venue's saved key does not point to exactly this address and memo, or ''."""
    match = next((s for s in saved if s.key == venue_key), None)
    if match is None:
        return f"{venue_name} has no saved address under the key “{venue_key}”."
    if address_canonical(network=network, address=match.address) != address_canonical(
        network=network, address=address
    ):
        return (
            f"At {venue_name} the key “{venue_key}” points to {match.address}, "
            f"not to the approved {address}."
        )
    if (match.memo or "") != (memo or ""):
        return (
            f"At {venue_name} the key “{venue_key}” carries memo/tag "
            f"“{match.memo or 'none'}”, not the approved “{memo or 'none'}”."
        )
    theirs = network_family(match.network)
    if theirs and theirs != network_family(network):
        return f"At {venue_name} the key “{venue_key}” is on {match.network}, not on {network}."
    return ""


def venue_mismatch(
    *, venue: Venue, asset: str, network: str, address: str, memo: str, venue_key: str
) -> str:
    """Compare with the venue's own saved addresses: '' when they agree or the venue keeps
    none. Raises VenueCheckUnavailable when the venue cannot answer right now."""
    client = client_for(venue)
    try:
        if not client.supports_saved_addresses:
            return ""
        if not venue_key:
            return (
                f"{venue.name} pays only to addresses saved there: give the name of the saved key."
            )
        saved = client.saved_addresses(asset=asset)
    except VenueRejected as exc:
        return f"{venue.name} refused to list its saved addresses: {exc.message}"
    except VenueError as exc:
        raise VenueCheckUnavailable(
            f"{venue.name} did not list its saved addresses ({exc.message}). Try again shortly."
        ) from exc
    finally:
        client.close()
    return saved_address_mismatch(
        saved=saved,
        venue_name=venue.name,
        network=network,
        address=address,
        memo=memo,
        venue_key=venue_key,
    )


def _venue_agrees_or_refuse(**spec: Any) -> None:
    try:
        problem = venue_mismatch(**spec)
    except VenueCheckUnavailable as exc:
        raise WhitelistError(exc.message) from None
    if problem:
        raise WhitelistError(problem, field="venue_key")


def _record_drift(address_id: int, detail: str) -> WhitelistedAddress:
    """Store the latest venue comparison; an audit event whenever the verdict changes."""
    with transaction.atomic():
        address = _lock(address_id)
        changed = address.drift_detail != detail
        address.drift_detail = detail[:500]
        address.drift_checked_at = timezone.now()
        address.save(update_fields=["drift_detail", "drift_checked_at"])
        if changed:
            audit_event_record(
                action=AuditAction.WHITELIST_DRIFT_DETECTED
                if detail
                else AuditAction.WHITELIST_DRIFT_CLEARED,
                target=address,
                message=detail or "The venue's saved key matches the approved address again.",
                data={"venue_key": address.venue_key, "detail": detail},
            )
    return address


def address_venue_verify(*, address_id: int) -> str | None:
    """Compare one address with its venue and record the outcome. Returns the mismatch ('' if
    none), or None when the venue could not answer (nothing recorded)."""
    address = _get(address_id)
    try:
        detail = venue_mismatch(
            venue=address.venue,
            asset=address.asset,
            network=address.network,
            address=address.address,
            memo=address.memo,
            venue_key=address.venue_key,
        )
    except VenueCheckUnavailable as exc:
        logger.info("venue check of address %s postponed: %s", address_id, exc.message)
        return None
    _record_drift(address.pk, detail)
    return detail


def address_verify_before_submit(*, address: WhitelistedAddress) -> str:
    """Right before a submission: why the venue's saved key no longer matches, or ''.

    A mismatch is recorded as drift (with its audit event). Raises VenueCheckUnavailable when
    the venue cannot list its addresses right now.
    """
    detail = venue_mismatch(
        venue=address.venue,
        asset=address.asset,
        network=address.network,
        address=address.address,
        memo=address.memo,
        venue_key=address.venue_key,
    )
    if detail or address.drift_detail:
        _record_drift(address.pk, detail)
    return detail


def addresses_venue_check_all() -> dict[str, int]:
    """The scheduled check: every live address of a venue that lists saved addresses."""
    counts = {"checked": 0, "drift": 0, "unavailable": 0}
    for pk in selectors.addresses_checkable_at_venue().values_list("pk", flat=True):
        detail = address_venue_verify(address_id=pk)
        if detail is None:
            counts["unavailable"] += 1
            continue
        counts["checked"] += 1
        counts["drift"] += bool(detail)
    return counts


# --- the lifecycle --------------------------------------------------------------------------


def address_propose(
    *,
    proposer: Any,
    venue_id: Any,
    asset: str,
    network: str,
    address: str,
    label: str,
    code: str,
    memo: str = "",
    venue_key: str = "",
    acknowledge_lookalike: bool = False,
    ip: str | None = None,
) -> WhitelistedAddress:
    """A whitelist admin proposes an address, with TOTP. Nothing is usable until a different
    admin approves it and the cooling-off ends."""
    _require_admin(proposer)
    candidate = _candidate(
        venue_id=venue_id,
        asset=asset,
        network=network,
        address=address,
        memo=memo,
        label=label,
        venue_key=venue_key,
    )
    warning, alike_ids = _lookalike_refusal(candidate.address, None, "You")
    if warning and not acknowledge_lookalike:
        raise WhitelistError(warning, field="acknowledge_lookalike")
    _venue_agrees_or_refuse(
        venue=candidate.venue,
        asset=candidate.asset,
        network=candidate.network,
        address=candidate.address,
        memo=candidate.memo,
        venue_key=candidate.venue_key,
    )
    step = totp_code_verify(user=proposer, code=code, ip=ip, purpose="whitelist proposal")
    with transaction.atomic():
        created = _create_proposal(
            candidate,
            proposer=proposer,
            source=AddressSource.MANUAL,
            ip=ip,
            data={"totp_step": step, "lookalike_of": alike_ids},
        )
    return created


def _create_proposal(
    candidate: Candidate, *, proposer: Any, source: str, ip: str | None, data: dict[str, Any]
) -> WhitelistedAddress:
    """Caller holds the transaction. The duplicate check runs again under it."""
    if selectors.duplicates_of(
        venue_id=candidate.venue.pk,
        asset=candidate.asset,
        network=candidate.network,
        address=candidate.address,
    ).exists():
        raise WhitelistError("This address was proposed by someone else a moment ago.")
    _label_free_or_refuse(candidate.venue, candidate.label)
    try:
        with transaction.atomic():
            address = WhitelistedAddress.objects.create(
                venue=candidate.venue,
                asset=candidate.asset,
                network=candidate.network,
                address=candidate.address,
                memo=candidate.memo,
                label=candidate.label,
                venue_key=candidate.venue_key,
                state=AddressState.PROPOSED,
                proposed_by=proposer,
                source=source,
                drift_checked_at=timezone.now(),
            )
    except IntegrityError:
        raise WhitelistError(
            "This address or its label is already on the whitelist at this venue."
        ) from None
    audit_event_record(
        action=AuditAction.WHITELIST_PROPOSED,
        actor=proposer,
        ip=ip,
        target=address,
        message=f"Proposed {address.label}: {address.asset} on {address.network} "
        f"to {address.address}" + (f" memo {address.memo}" if address.memo else ""),
        data={
            "venue": candidate.venue.pk,
            "asset": address.asset,
            "network": address.network,
            "address": address.address,
            "memo": address.memo,
            "venue_key": address.venue_key,
            "source": source,
            **data,
        },
    )
    return address


def _check_approvable(address: WhitelistedAddress, approver: Any) -> None:
    if address.proposed_by_id == approver.pk:
        raise WhitelistError("You cannot approve an address you proposed.")
    if address.state != AddressState.PROPOSED:
        raise WhitelistError(
            f"This address is {_display(address.state)}, not waiting for approval."
        )


def address_approve(
    *,
    address_id: Any,
    approver: Any,
    code: str,
    acknowledge_lookalike: bool = False,
    ip: str | None = None,
) -> WhitelistedAddress:
    """A second whitelist admin approves with TOTP; cooling-off starts (or, at 0, it is
    active at once)."""
    _require_admin(approver)
    current = _get(address_id)
    _check_approvable(current, approver)
    warning, alike_ids = _lookalike_refusal(current.address, current.pk, "The approver")
    if warning and not acknowledge_lookalike:
        raise WhitelistError(warning, field="acknowledge_lookalike")
    _venue_agrees_or_refuse(
        venue=current.venue,
        asset=current.asset,
        network=current.network,
        address=current.address,
        memo=current.memo,
        venue_key=current.venue_key,
    )
    step = totp_code_verify(user=approver, code=code, ip=ip, purpose="whitelist approval")
    with transaction.atomic():
        address = _lock(current.pk)
        _check_approvable(address, approver)
        now = timezone.now()
        cooling = max(settings.WHITELIST_COOLING_OFF_SECONDS, 0)
        address.approved_by = approver
        address.approved_at = now
        address.active_from = now + timedelta(seconds=cooling)
        address.state = AddressState.COOLING_OFF if cooling else AddressState.ACTIVE
        address.drift_detail = ""
        address.drift_checked_at = now
        address.save()
        audit_event_record(
            action=AuditAction.WHITELIST_APPROVED,
            actor=approver,
            ip=ip,
            target=address,
            message=f"Approved with TOTP; usable from {address.active_from:%Y-%m-%d %H:%M:%S} UTC",
            data={
                "totp_step": step,
                "cooling_off_seconds": cooling,
                "active_from": address.active_from,
                "lookalike_of": alike_ids,
                "lookalike_acknowledged": bool(alike_ids),
            },
        )
        if not cooling:
            _activated(address)
    return address


def _activated(address: WhitelistedAddress) -> None:
    audit_event_record(
        action=AuditAction.WHITELIST_ACTIVATED,
        target=address,
        message="Cooling-off over: the address can be used for withdrawals.",
    )


def addresses_activate_due() -> int:
    """Make active every address whose cooling-off has ended. Returns how many."""
    now = timezone.now()
    done = 0
    for pk in WhitelistedAddress.objects.filter(
        state=AddressState.COOLING_OFF, active_from__lte=now
    ).values_list("pk", flat=True):
        with transaction.atomic():
            address = _lock(pk)
            if address.state != AddressState.COOLING_OFF or address.active_from > now:
                continue
            address.state = AddressState.ACTIVE
            address.save(update_fields=["state"])
            _activated(address)
            done += 1
    return done


def _required_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise WhitelistError("Give a reason.", field="reason")
    return reason[:500]


def _check_vetoable(address: WhitelistedAddress) -> None:
    if address.state == AddressState.PROPOSED:
        return
    if address.state == AddressState.COOLING_OFF and address.active_from > timezone.now():
        return
    if address.state in {AddressState.COOLING_OFF, AddressState.ACTIVE}:
        raise WhitelistError("The cooling-off is over: the address is active. Revoke it instead.")
    raise WhitelistError(f"This address is already {_display(address.state)}.")


def address_veto(
    *, address_id: Any, user: Any, reason: str, code: str, ip: str | None = None
) -> WhitelistedAddress:
    """Stop a proposal or an address in cooling-off. Any whitelist admin or auditor, with a
    reason and TOTP: the one change an auditor can make."""
    if not (has_role(user, WHITELIST_ADMIN) or has_role(user, AUDITOR)):
        raise PermissionDenied("Only whitelist admins and auditors can veto.")
    reason = _required_reason(reason)
    _check_vetoable(_get(address_id))
    step = totp_code_verify(user=user, code=code, ip=ip, purpose="whitelist veto")
    return _end(
        address_id,
        AddressState.VETOED,
        user=user,
        reason=reason,
        ip=ip,
        step=step,
        check=_check_vetoable,
    )


def _check_revocable(address: WhitelistedAddress) -> None:
    if address.state not in {AddressState.COOLING_OFF, AddressState.ACTIVE}:
        raise WhitelistError(
            f"This address is {_display(address.state)}: only an active or cooling-off "
            "address can be revoked."
        )


def address_revoke(
    *, address_id: Any, admin: Any, reason: str, code: str, ip: str | None = None
) -> WhitelistedAddress:
    """Take an address off the whitelist for good. To change an address, revoke it and
    propose the new one."""
    _require_admin(admin)
    reason = _required_reason(reason)
    _check_revocable(_get(address_id))
    step = totp_code_verify(user=admin, code=code, ip=ip, purpose="whitelist revocation")
    return _end(
        address_id,
        AddressState.REVOKED,
        user=admin,
        reason=reason,
        ip=ip,
        step=step,
        check=_check_revocable,
    )


_END_ACTIONS = {
    AddressState.REVOKED: AuditAction.WHITELIST_REVOKED,
    AddressState.VETOED: AuditAction.WHITELIST_VETOED,
}


def _end(
    address_id: Any,
    state: str,
    *,
    user: Any,
    reason: str,
    ip: str | None,
    step: int,
    check: Any,
) -> WhitelistedAddress:
    with transaction.atomic():
        address = _lock(int(address_id))
        check(address)
        previous = address.state
        address.state = state
        address.ended_by = user
        address.ended_at = timezone.now()
        address.end_reason = reason
        address.save(update_fields=["state", "ended_by", "ended_at", "end_reason"])
        audit_event_record(
            action=_END_ACTIONS[state],
            actor=user,
            ip=ip,
            target=address,
            message=reason,
            data={"from": previous, "to": state, "totp_step": step},
        )
    return address


# --- import from the venue ------------------------------------------------------------------


def addresses_import_from_venue(
    *, admin: Any, venue_id: Any, code: str, ip: str | None = None
) -> ImportResult:
    """Pull the venue's saved addresses in as proposals (one TOTP code for the batch). They
    take the same four-eyes path as any proposal: nothing becomes active by import."""
    _require_admin(admin)
    venue = _enabled_venue(venue_id)
    client = client_for(venue)
    try:
        if not client.supports_saved_addresses:
            raise WhitelistError(
                f"{venue.name} does not list saved addresses. Propose them one by one."
            )
        saved = client.saved_addresses()
    except VenueError as exc:
        raise WhitelistError(
            f"{venue.name} did not list its saved addresses: {exc.message}"
        ) from exc
    finally:
        client.close()
    step = totp_code_verify(user=admin, code=code, ip=ip, purpose="whitelist import")
    result = ImportResult()
    with transaction.atomic():
        for item in saved:
            asset = ASSET_ALIASES.get(item.asset.upper(), item.asset.upper())
            try:
                candidate = _candidate(
                    venue_id=venue.pk,
                    asset=asset,
                    network=item.network,
                    address=item.address,
                    memo=item.memo,
                    label=f"{asset} {item.key} (imported)"[:80],
                    venue_key=item.key,
                )
            except WhitelistError as exc:
                result.skipped.append((item.key, exc.message))
                continue
            warning, _ = _lookalike_refusal(candidate.address, None, "Whoever proposes it")
            if warning:
                result.skipped.append((item.key, warning))
                continue
            result.proposed.append(
                _create_proposal(
                    candidate,
                    proposer=admin,
                    source=AddressSource.IMPORT,
                    ip=ip,
                    data={"totp_step": step},
                )
            )
        audit_event_record(
            action=AuditAction.WHITELIST_IMPORTED,
            actor=admin,
            ip=ip,
            target=venue,
            message=f"{len(result.proposed)} proposed, {len(result.skipped)} skipped",
            data={"proposed": [a.pk for a in result.proposed], "skipped": result.skipped},
        )
    return result
