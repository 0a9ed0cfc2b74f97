"""The catalogue's pure rules: voucher codes and who may redeem what, table-driven."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from core.rewards import rules

NOW = datetime(2031, 5, 1, 12, tzinfo=UTC)
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def test_voucher_codes_are_crockford_base32_in_three_groups_and_do_not_repeat() -> None:
    codes = {rules.new_voucher_code() for _ in range(5000)}
    assert len(codes) == 5000
    assert all(CODE.match(c) for c in codes)
    # Every symbol of the alphabet turns up; none outside it (no I, L, O, U).
    assert set("".join(codes).replace("-", "")) == set(rules.ALPHABET)


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("ABCD-EFGH-JKMN", "ABCD-EFGH-JKMN"),
        ("abcdefghjkmn", "ABCD-EFGH-JKMN"),
        (" abcd efgh jkmn ", "ABCD-EFGH-JKMN"),
        ("O0IL-1234-5678", "0011-1234-5678"),  # read as Crockford does
        ("ABCD-EFGH-JKM", None),  # too short
        ("ABCD-EFGH-JKMNP", None),  # too long
        ("ABCD-EFGH-JKMU", None),  # U is not a symbol
        ("ABCD-EFGH-JKM!", None),
        ("", None),
    ],
)
def test_codes_are_read_as_typed_or_scanned(typed: str, canonical: str | None) -> None:
    assert rules.normalise_voucher_code(typed) == canonical


def _terms(**kw: object) -> rules.Terms:
    return rules.Terms(**({"active": True, "points_cost": 100} | kw))  # type: ignore[arg-type]


def _standing(**kw: object) -> rules.Standing:
    return rules.Standing(**({"tier_code": None, "tier_rank": None, "redeemed": 0, "available": 1000} | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("terms", "standing", "slug", "reason"),
    [
        ({}, {}, None, None),
        ({"active": False}, {}, "reward-unavailable", "inactive"),
        ({"valid_from": NOW + timedelta(seconds=1)}, {}, "reward-unavailable", "not_yet_valid"),
        ({"valid_from": NOW}, {}, None, None),
        ({"valid_until": NOW}, {}, "reward-unavailable", "ended"),
        ({"valid_until": NOW + timedelta(seconds=1)}, {}, None, None),
        ({"min_tier_rank": 1}, {}, "not-eligible", None),
        ({"min_tier_rank": 2}, {"tier_code": "silver", "tier_rank": 1}, "not-eligible", None),
        ({"min_tier_rank": 1}, {"tier_code": "silver", "tier_rank": 1}, None, None),
        ({"tier_codes": ("gold",)}, {"tier_code": "silver", "tier_rank": 1}, "not-eligible", None),
        ({"tier_codes": ("gold", "silver")}, {"tier_code": "silver", "tier_rank": 1}, None, None),
        (
            {"min_tier_rank": 2, "tier_codes": ("silver",)},
            {"tier_code": "silver", "tier_rank": 1},
            "not-eligible",
            None,
        ),
        ({"per_member_limit": 2}, {"redeemed": 1}, None, None),
        ({"per_member_limit": 2}, {"redeemed": 2}, "redemption-limit-reached", None),
        ({"stock": 0}, {}, "out-of-stock", None),
        ({"stock": 1}, {}, None, None),
        ({}, {"available": 99}, "insufficient-points", None),
        ({}, {"available": 100}, None, None),
        ({}, {"available": None}, None, None),  # not checked: the ledger's debit decides
        # The first reason a member would have to fix wins.
        ({"active": False, "stock": 0}, {"available": 0}, "reward-unavailable", "inactive"),
        ({"min_tier_rank": 1, "stock": 0}, {"available": 0}, "not-eligible", None),
        ({"stock": 0}, {"available": 0}, "out-of-stock", None),
    ],
)
def test_who_may_redeem_what(terms: dict, standing: dict, slug: str | None, reason: str | None) -> None:
    refusal = rules.refusal(_terms(**terms), _standing(**standing), NOW)
    if slug is None:
        assert refusal is None
        return
    assert refusal is not None and refusal.slug == slug and refusal.status == 409
    assert refusal.extra.get("reason") == reason


@pytest.mark.parametrize(
    ("status", "expires_at", "seen"),
    [
        ("issued", None, "issued"),
        ("issued", NOW + timedelta(seconds=1), "issued"),
        ("issued", NOW, "expired"),
        ("used", NOW - timedelta(days=1), "used"),
        ("cancelled", NOW - timedelta(days=1), "cancelled"),
    ],
)
def test_an_issued_voucher_past_its_expiry_is_expired(status: str, expires_at: datetime | None, seen: str) -> None:
    assert rules.effective_status(status, expires_at, NOW) == seen
