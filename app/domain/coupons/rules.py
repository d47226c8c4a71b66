"""The rules a coupon template must keep, checked on creation and on every edit.

Every broken rule is reported at once (a ``FieldIssue`` each, with a stable code),
so an admin form can show them all.
"""

from __future__ import annotations

from datetime import datetime

from app.domain.coupons.model import CouponKind, TemplateDraft
from app.domain.shared.errors import FieldIssue, ValidationFailed

MAX_VALUE = 1_000_000_000  # points, like every amount of the ledger
MAX_QUANTITY = 1_000_000
MAX_PER_USER = 1_000
MAX_VALID_DAYS = 3_650
MAX_NAME_LENGTH = 100


def _is_aware(moment: datetime | None) -> bool:
    return moment is None or moment.utcoffset() is not None


def _moment_issues(draft: TemplateDraft) -> list[FieldIssue]:
    issues = [
        FieldIssue(code="timezone_required", message="Give a time zone (e.g. `Z` or `+02:00`).", field=field)
        for field, moment in (
            ("valid_from", draft.valid_from),
            ("valid_until", draft.valid_until),
            ("coupon_expires_at", draft.validity.expires_at),
        )
        if not _is_aware(moment)
    ]
    return issues


def _window_issues(draft: TemplateDraft, open_after: datetime | None) -> list[FieldIssue]:
    issues = []
    if draft.valid_until <= draft.valid_from:
        issues.append(
            FieldIssue(code="window_order", message="valid_until must be after valid_from.", field="valid_until")
        )
    if open_after is not None and draft.valid_until <= open_after:
        issues.append(
            FieldIssue(code="window_in_past", message="valid_until must be in the future.", field="valid_until")
        )
    validity = draft.validity
    if validity.expires_at is not None and validity.days is not None:
        issues.append(
            FieldIssue(
                code="validity_ambiguous",
                message="Give either coupon_expires_at or coupon_valid_days, not both.",
                field="coupon_valid_days",
            )
        )
    elif validity.expires_at is None and validity.days is None:
        issues.append(
            FieldIssue(
                code="validity_missing",
                message="Give coupon_expires_at (a fixed end) or coupon_valid_days (days after the claim).",
                field="coupon_valid_days",
            )
        )
    if validity.days is not None and not 1 <= validity.days <= MAX_VALID_DAYS:
        issues.append(
            FieldIssue(code="out_of_range", message=f"Must be 1 to {MAX_VALID_DAYS}.", field="coupon_valid_days")
        )
    if validity.expires_at is not None and validity.expires_at < draft.valid_until:
        # otherwise a coupon claimed late in the window would be born expired
        issues.append(
            FieldIssue(
                code="expires_before_window_ends",
                message="coupon_expires_at must not be before valid_until.",
                field="coupon_expires_at",
            )
        )
    return issues


def _amount_issues(draft: TemplateDraft, claimed_count: int) -> list[FieldIssue]:
    issues = []
    if not 0 < len(draft.name.strip()) <= MAX_NAME_LENGTH:
        issues.append(FieldIssue(code="invalid_name", message=f"1 to {MAX_NAME_LENGTH} characters.", field="name"))
    if not 0 < draft.value <= MAX_VALUE:
        issues.append(FieldIssue(code="invalid_value", message=f"Must be 1 to {MAX_VALUE} points.", field="value"))
    if not 0 < draft.total_quantity <= MAX_QUANTITY:
        issues.append(FieldIssue(code="out_of_range", message=f"Must be 1 to {MAX_QUANTITY}.", field="total_quantity"))
    elif draft.total_quantity < claimed_count:
        issues.append(
            FieldIssue(
                code="below_claimed",
                message=f"{claimed_count} coupons were claimed already; the total cannot be lower.",
                field="total_quantity",
            )
        )
    if not 0 < draft.per_user_limit <= MAX_PER_USER:
        issues.append(FieldIssue(code="out_of_range", message=f"Must be 1 to {MAX_PER_USER}.", field="per_user_limit"))
    return issues


def _min_reward_issues(draft: TemplateDraft) -> list[FieldIssue]:
    if draft.kind is CouponKind.POINTS_BONUS:
        if draft.min_reward is None:
            return []
        return [
            FieldIssue(
                code="min_reward_not_allowed",
                message="Only task_discount coupons have a min_reward.",
                field="min_reward",
            )
        ]
    if draft.min_reward is None:
        return [
            FieldIssue(
                code="min_reward_required", message="A task_discount coupon needs a min_reward.", field="min_reward"
            )
        ]
    if not draft.value < draft.min_reward <= MAX_VALUE:
        # a discounted task must still hold at least one point
        return [
            FieldIssue(
                code="min_reward_too_low",
                message=f"min_reward must be greater than value and at most {MAX_VALUE}.",
                field="min_reward",
            )
        ]
    return []


def check_template(draft: TemplateDraft, *, open_after: datetime | None, claimed_count: int = 0) -> None:
    """Refuse a template that breaks any rule, listing every broken one.

    ``open_after``: the claim window must end after this moment (now, when the window is set or moved).
    ``claimed_count``: how many were claimed already (the total may not go below it).

    Raises:
        ValidationFailed: code ``invalid_template``, one issue per broken rule.
    """
    issues = _moment_issues(draft)
    if not issues:  # comparing naive and aware moments is meaningless
        issues = _window_issues(draft, open_after)
    issues += _amount_issues(draft, claimed_count) + _min_reward_issues(draft)
    if issues:
        raise ValidationFailed("The coupon template is not valid.", code="invalid_template", issues=tuple(issues))
