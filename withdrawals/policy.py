"""The withdrawal policy applied to withdrawals: which rule a request falls under, the velocity
limits it must fit, the red flags an approver is shown, and when a quorum is met.

Where this sits: the policy itself (its versions, rules, prices and their four-eyes changes) is
the ``policies`` app, on floor 3 below ``withdrawals``: it imports only accounts, audit, venues
and whitelist. Everything that needs to count withdrawals lives here, in ``withdrawals``, which
imports ``policies`` and never the other way round.

Functions that answer "may this happen" return "" when it may, else the reason in words the
person can act on (the convention of ``rules.py``); the services raise with it.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Case, QuerySet, Value, When
from django.utils import timezone

from accounts.roles import APPROVER, has_role, role_label
from policies import rulebook, selectors, services
from policies.models import PolicyVersion, Rule, VelocityLock
from venues.models import Venue
from whitelist.models import WhitelistedAddress

from .models import APPROVED_OR_FURTHER, Approval, State, WithdrawalRequest

WINDOW = timedelta(hours=24)
NEAR_LIMIT = Decimal("0.8")
MEDIAN_HISTORY = 200


class Flag(enum.StrEnum):
    FIRST_PAYMENT = "first_payment"
    ABOVE_MEDIAN = "above_median"
    NEAR_DUPLICATE = "near_duplicate"
    NEAR_LIMIT = "near_limit"
    OUTSIDE_HOURS = "outside_hours"
    RUBBER_STAMP = "rubber_stamp"


FLAG_LABELS = {
    Flag.FIRST_PAYMENT: "First payment to this destination",
    Flag.ABOVE_MEDIAN: "Amount far above the usual for this destination",
    Flag.NEAR_DUPLICATE: "Same destination and amount within 24 h",
    Flag.NEAR_LIMIT: "Above 80% of a velocity limit",
    Flag.OUTSIDE_HOURS: "Outside business hours",
    Flag.RUBBER_STAMP: "Rubber stamp: approved right after the quote loaded",
}


def approval_flag_labels(approval: Approval) -> list[str]:
    """The red flags recorded with an approval, in words, rubber stamp included."""
    codes = approval.red_flags.split()
    if approval.rubber_stamp and Flag.RUBBER_STAMP not in codes:
        codes.append(Flag.RUBBER_STAMP)
    return [FLAG_LABELS[Flag(code)] for code in codes if code in Flag._value2member_map_]


@dataclass(frozen=True)
class RedFlag:
    code: Flag
    detail: str

    @property
    def label(self) -> str:
        return FLAG_LABELS[self.code]


@dataclass(frozen=True)
class Limit:
    """One velocity limit as it stands for one withdrawal."""

    name: str
    unit: str  # the asset, or "" for a count
    limit: Decimal
    used: Decimal
    adding: Decimal
    frees_at: datetime | None  # when enough of the window's use has aged out; None: never

    @property
    def exceeded(self) -> bool:
        return self.used + self.adding > self.limit

    @property
    def near(self) -> bool:
        return self.used + self.adding > self.limit * NEAR_LIMIT

    @property
    def quantity_used(self) -> str:
        return self.quantity(self.used)

    @property
    def quantity_limit(self) -> str:
        return self.quantity(self.limit)

    def quantity(self, value: Decimal) -> str:
        text = format(value.normalize(), "f")
        return f"{text} {self.unit}" if self.unit else text

    def refusal(self) -> str:
        when = (
            f"Room for it frees at {timezone.localtime(self.frees_at):%Y-%m-%d %H:%M %Z}."
            if self.frees_at
            else "It does not fit even in an empty window."
        )
        return (
            f"This would break the {self.name} limit of {self.quantity(self.limit)}: "
            f"{self.quantity(self.used)} used in the last 24 h, this adds "
            f"{self.quantity(self.adding)}. {when}"
        )


# --- which rule ---------------------------------------------------------------------------


def rule_for(*, venue: Venue, address: WhitelistedAddress, amount: Decimal) -> Rule:
    """The first rule of the policy in force that matches this request."""
    return rulebook.rule_first_match(
        selectors.policy_rules(services.policy_in_force()),
        venue_id=venue.pk,
        asset=address.asset,
        destination_id=address.pk,
        amount=amount,
    )


def rule_apply(withdrawal: WithdrawalRequest, rule: Rule, *, now: datetime) -> None:
    """Record on an unsaved request the rule that applied and what it decided."""
    withdrawal.policy_rule = rule
    withdrawal.approval_quorum = rule.quorum
    withdrawal.approval_role = rule.required_role
    withdrawal.expires_at = now + timedelta(hours=rule.expiry_hours)


# --- velocity -----------------------------------------------------------------------------


def _frees_at(
    uses: list[tuple[datetime, Decimal]], *, limit: Decimal, adding: Decimal
) -> datetime | None:
    """The moment the oldest uses have aged out of the window far enough for ``adding``."""
    if adding > limit:
        return None
    remaining = sum((value for _, value in uses), Decimal(0))
    for moment, value in sorted(uses, key=lambda use: use[0]):
        remaining -= value
        if remaining + adding <= limit:
            return moment + WINDOW
    return None


def _uses(queryset: QuerySet[WithdrawalRequest], *, now: datetime) -> list[tuple[datetime, Any]]:
    return list(
        queryset.filter(state__in=APPROVED_OR_FURTHER, approved_at__gt=now - WINDOW).values_list(
            "approved_at", "amount"
        )
    )


def _limits(
    rule: Rule,
    *,
    venue: Venue,
    address: WhitelistedAddress,
    amount: Decimal,
    exclude: int | None,
    now: datetime,
) -> list[Limit]:
    others = WithdrawalRequest.objects.exclude(pk=exclude) if exclude else WithdrawalRequest.objects
    scopes = (
        (
            f"{address.asset} on {venue.name}",
            others.filter(venue=venue, asset=address.asset),
            rule.daily_amount,
            rule.daily_count,
        ),
        (
            f"destination {address.label}",
            others.filter(whitelisted_address=address),
            rule.destination_daily_amount,
            rule.destination_daily_count,
        ),
    )
    limits = []
    for scope, queryset, amount_limit, count_limit in scopes:
        if amount_limit is None and count_limit is None:
            continue
        uses = _uses(queryset, now=now)
        if amount_limit is not None:
            limits.append(
                Limit(
                    name=f"24 h amount for {scope}",
                    unit=address.asset,
                    limit=amount_limit,
                    used=sum((value for _, value in uses), Decimal(0)),
                    adding=amount,
                    frees_at=_frees_at(uses, limit=amount_limit, adding=amount),
                )
            )
        if count_limit is not None:
            counted = [(moment, Decimal(1)) for moment, _ in uses]
            limits.append(
                Limit(
                    name=f"24 h count for {scope}",
                    unit="",
                    limit=Decimal(count_limit),
                    used=Decimal(len(uses)),
                    adding=Decimal(1),
                    frees_at=_frees_at(counted, limit=Decimal(count_limit), adding=Decimal(1)),
                )
            )
    return limits


def request_refusal(
    rule: Rule, *, venue: Venue, address: WhitelistedAddress, amount: Decimal, now: datetime
) -> str:
    """At request: the per-withdrawal maximum, and the velocity limits as they stand now (the
    binding check is at the approval that reaches the quorum, under the lock)."""
    if rule.max_per_withdrawal is not None and amount > rule.max_per_withdrawal:
        return (
            f"Above the most one withdrawal may move under the policy "
            f"({format(rule.max_per_withdrawal.normalize(), 'f')} {address.asset}; "
            f"rule: {selectors.rule_description(rule)})."
        )
    for limit in _limits(rule, venue=venue, address=address, amount=amount, exclude=None, now=now):
        if limit.exceeded:
            return limit.refusal()
    return ""


def velocity_lock(withdrawal: WithdrawalRequest) -> None:
    """Serialise everyone granting use of this withdrawal's limited scopes, in one fixed order
    (venue and asset, then destination) so two lockers never wait on each other. Call inside
    the transaction that counts and then moves the withdrawal to ``approved``.

    Only the scopes its rule limits are locked: an approval that counts nothing in a scope
    has nothing to keep consistent there, and whichever way it interleaves with one that does
    count, the outcome is one the lock would also allow (that one before it, or after it)."""
    rule = withdrawal.policy_rule
    if rule is None:
        return
    scopes = []
    if rule.daily_amount is not None or rule.daily_count is not None:
        scopes.append(f"venue:{withdrawal.venue_id}:{withdrawal.asset}")
    if rule.destination_daily_amount is not None or rule.destination_daily_count is not None:
        scopes.append(f"destination:{withdrawal.whitelisted_address_id}")
    if not scopes:
        return
    # One statement locks them, in the order of the list; a scope's row is created the first
    # time it is used, and that creation is then locked like any other.
    order = Case(*(When(scope=scope, then=Value(i)) for i, scope in enumerate(scopes)))
    locked = VelocityLock.objects.select_for_update().filter(scope__in=scopes).order_by(order)
    if len(locked) < len(scopes):
        VelocityLock.objects.bulk_create(
            [VelocityLock(scope=scope) for scope in scopes], ignore_conflicts=True
        )
        list(locked.all())


def velocity_refusal(withdrawal: WithdrawalRequest, *, now: datetime) -> str:
    """Whether this withdrawal still fits its rule's limits, counting every other withdrawal
    approved or further. Binding only under ``velocity_lock``."""
    if withdrawal.policy_rule is None:
        return ""
    for limit in _limits(
        withdrawal.policy_rule,
        venue=withdrawal.venue,
        address=withdrawal.whitelisted_address,
        amount=withdrawal.amount,
        exclude=withdrawal.pk,
        now=now,
    ):
        if limit.exceeded:
            return limit.refusal()
    return ""


# --- quorum -------------------------------------------------------------------------------


def live_approvals(withdrawal: WithdrawalRequest) -> QuerySet[Approval]:
    """The approvals that count: not voided, and of the payload as it stands (a re-quote voids
    earlier ones)."""
    return withdrawal.approvals.filter(voided=False, payload_hash=withdrawal.payload_hash)


def approvers_of(approvals: QuerySet[Approval]) -> set[int]:
    """The distinct people behind ``approvals``: the quorum counts people, not rows."""
    return set(approvals.values_list("approver_id", flat=True))


def _holders(user_ids: Iterable[int], role: str) -> int:
    return get_user_model().objects.filter(pk__in=list(user_ids), groups__name=role).count()


def quorum_met(withdrawal: WithdrawalRequest, approvals: QuerySet[Approval]) -> bool:
    """Enough distinct live approvals, one of them by a holder of the required role if any."""
    approvers = approvers_of(approvals)
    if len(approvers) < withdrawal.approval_quorum:
        return False
    return not withdrawal.approval_role or _holders(approvers, withdrawal.approval_role) > 0


def approval_refusal(withdrawal: WithdrawalRequest, approver: Any) -> str:
    """The last free place of the quorum is kept for the required role: without this, the
    quorum could fill up with approvers none of whom may complete it."""
    role = withdrawal.approval_role
    if not role or has_role(approver, role):
        return ""
    approvers = approvers_of(live_approvals(withdrawal))
    if _holders(approvers, role) == 0 and len(approvers) + 1 >= withdrawal.approval_quorum:
        return (
            f"This withdrawal needs a {role_label(role)} among its approvers, and only one "
            f"approval is left: it must come from a {role_label(role)}."
        )
    return ""


# --- red flags ----------------------------------------------------------------------------


def policy_of(withdrawal: WithdrawalRequest) -> PolicyVersion:
    """The red-flag settings a withdrawal is judged by: its rule's version, else the one in force
    (a request from before the policy), else the defaults. Reads only: pages call this."""
    if withdrawal.policy_rule_id is None:
        return selectors.policy_current() or PolicyVersion(number=0)
    if not WithdrawalRequest.policy_rule.is_cached(withdrawal):
        # The rule and its version in one read; the rule stays on the withdrawal for the
        # velocity limits that read it next.
        withdrawal.policy_rule = Rule.objects.select_related("policy").get(
            pk=withdrawal.policy_rule_id
        )
    return withdrawal.policy_rule.policy


def outside_business_hours(policy: PolicyVersion, *, now: datetime) -> bool:
    local = timezone.localtime(now)
    if policy.weekdays_only and local.weekday() >= 5:
        return True
    return not policy.business_hours_start <= local.hour < policy.business_hours_end


def released_to_destination(withdrawal: WithdrawalRequest) -> QuerySet[WithdrawalRequest]:
    """The other withdrawals that released money to this one's destination: its payment
    history, read by every approval (``withdrawal_released_to_idx`` serves it)."""
    return WithdrawalRequest.objects.filter(
        whitelisted_address_id=withdrawal.whitelisted_address_id,
        state__in=APPROVED_OR_FURTHER,
    ).exclude(pk=withdrawal.pk)


def red_flags(
    withdrawal: WithdrawalRequest, *, now: datetime, judged_by: PolicyVersion | None = None
) -> list[RedFlag]:
    """What an approver should look at twice, computed when the panel is shown and again, to be
    recorded, when they approve. ``judged_by``: ``policy_of(withdrawal)`` when already at hand."""
    policy = judged_by or policy_of(withdrawal)
    flags = []
    released = released_to_destination(withdrawal)
    amounts = list(
        released.filter(asset=withdrawal.asset)
        .order_by("-id")
        .values_list("amount", flat=True)[:MEDIAN_HISTORY]
    )
    # Any amount of this asset already proves a payment; only without one is the rest asked.
    if not amounts and not released.exists():
        flags.append(RedFlag(Flag.FIRST_PAYMENT, "Nothing has been sent to this address yet."))
    elif amounts:
        median = statistics.median(amounts)
        if withdrawal.amount > median * policy.median_multiple:
            flags.append(
                RedFlag(
                    Flag.ABOVE_MEDIAN,
                    f"More than {policy.median_multiple.normalize():f} times the median "
                    f"({Decimal(median).normalize():f} {withdrawal.asset}) sent here.",
                )
            )
    created = withdrawal.created_at or now
    twins = (
        WithdrawalRequest.objects.filter(
            whitelisted_address_id=withdrawal.whitelisted_address_id,
            amount=withdrawal.amount,
            created_at__gt=created - WINDOW,
            created_at__lt=created + WINDOW,
        )
        .exclude(pk=withdrawal.pk)
        .count()
    )
    if twins:
        flags.append(
            RedFlag(
                Flag.NEAR_DUPLICATE,
                f"{twins} other request(s) for the same amount to the same address within 24 h.",
            )
        )
    if withdrawal.policy_rule is not None:
        near = [
            limit
            for limit in _limits(
                withdrawal.policy_rule,
                venue=withdrawal.venue,
                address=withdrawal.whitelisted_address,
                amount=withdrawal.amount,
                exclude=withdrawal.pk,
                now=now,
            )
            if limit.near
        ]
        for limit in near:
            flags.append(
                RedFlag(
                    Flag.NEAR_LIMIT,
                    f"{limit.name}: {limit.quantity(limit.used + limit.adding)} of "
                    f"{limit.quantity(limit.limit)} with this one.",
                )
            )
    if outside_business_hours(policy, now=now):
        hours = f"{policy.business_hours_start}:00 to {policy.business_hours_end}:00"
        days = " on weekdays" if policy.weekdays_only else ""
        flags.append(RedFlag(Flag.OUTSIDE_HOURS, f"Business hours are {hours}{days}."))
    return flags


def flags_recorded(flags: Iterable[RedFlag]) -> str:
    return " ".join(dict.fromkeys(flag.code.value for flag in flags))


def review_time(
    withdrawal: WithdrawalRequest,
    quote_fetched_at: datetime,
    *,
    now: datetime,
    judged_by: PolicyVersion | None = None,
) -> tuple[Decimal, bool]:
    """(seconds from the approver's quote load to their approval, whether that is a rubber
    stamp). Measured on the server: the quote row is written when the page asks for it."""
    seconds = Decimal((now - quote_fetched_at).total_seconds()).quantize(Decimal("0.001"))
    return seconds, seconds < (judged_by or policy_of(withdrawal)).rubber_stamp_seconds


# --- what the pages show ------------------------------------------------------------------


def _needs(quorum: int, role: str, eligible: int, rule: str) -> str:
    approvers = "approver" if quorum == 1 else "approvers"
    text = f"needs {quorum} of {eligible} {approvers}"
    if role:
        text += f", one a {role_label(role)}"
    return f"{text} (rule: {rule})"


def _eligible_approvers(withdrawal: WithdrawalRequest) -> int:
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name=APPROVER)
        .exclude(pk=withdrawal.requested_by_id)
        .distinct()
        .count()
    )


def approval_context(
    *, withdrawal: WithdrawalRequest, viewer: Any, now: datetime | None = None
) -> dict[str, Any]:
    """Everything ``policies/_approval_panel.html`` shows."""
    now = now or timezone.now()
    rule = withdrawal.policy_rule
    description = selectors.rule_description(rule) if rule is not None else "before the policy"
    live = live_approvals(withdrawal)
    pending = withdrawal.state == State.PENDING_APPROVAL
    return {
        "needs": _needs(
            withdrawal.approval_quorum,
            withdrawal.approval_role,
            _eligible_approvers(withdrawal),
            description,
        ),
        "policy_version": rule.policy.number if rule is not None else None,
        "given": len(approvers_of(live)),
        "flags": red_flags(withdrawal, now=now) if pending else [],
        "usd": selectors.usd_value(asset=withdrawal.asset, amount=withdrawal.amount),
        "expires_at": withdrawal.expires_at,
        "role_refusal": approval_refusal(withdrawal, viewer) if pending else "",
    }


def request_context(
    *, venue: Venue, address_id: int, amount: Decimal, now: datetime | None = None
) -> dict[str, Any]:
    """What ``policies/_request_info.html`` shows while the requester types an amount (for an
    address the preview has already found active on this venue)."""
    now = now or timezone.now()
    address = WhitelistedAddress.objects.get(pk=address_id, venue=venue)
    rule = rule_for(venue=venue, address=address, amount=amount)
    limits = _limits(rule, venue=venue, address=address, amount=amount, exclude=None, now=now)
    return {
        "rule": selectors.rule_description(rule),
        "quorum": rule.quorum,
        "role": role_label(rule.required_role) if rule.required_role else "",
        "expiry_hours": rule.expiry_hours,
        "limits": limits,
        "refusal": request_refusal(rule, venue=venue, address=address, amount=amount, now=now),
        "usd": selectors.usd_value(asset=address.asset, amount=amount),
    }
