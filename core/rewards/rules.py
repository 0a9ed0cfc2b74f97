"""Pure rules of the catalogue: voucher codes, and whether a member may redeem a reward now (no I/O)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.errors import (
    FealtyError,
    InsufficientPoints,
    LimitReached,
    NotEligible,
    OutOfStock,
    RewardUnavailable,
)

#: Crockford's base32: no I, L, O or U, so a code read aloud or typed from paper is unambiguous.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
GROUP = 4
#: What a typist may confuse, read as Crockford's decoding does.
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_voucher_code() -> str:
    """12 random Crockford base32 characters (60 bits) as ``XXXX-XXXX-XXXX``."""
    return format_code("".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH)))


def format_code(raw: str) -> str:
    return "-".join(raw[i : i + GROUP] for i in range(0, len(raw), GROUP))


def normalise_voucher_code(text: str) -> str | None:
    """The canonical form of a code as typed or scanned (any case, with or without hyphens or spaces, I/L for 1
    and O for 0), or None when it cannot be a voucher code."""
    raw = text.strip().upper().replace("-", "").replace(" ", "").translate(_READ_AS)
    if len(raw) != CODE_LENGTH or any(c not in ALPHABET for c in raw):
        return None
    return format_code(raw)


def effective_status(status: str, expires_at: datetime | None, now: datetime) -> str:
    """An issued voucher past its ``expires_at`` is expired, even before the expiry job has marked it so."""
    if status == "issued" and expires_at is not None and expires_at <= now:
        return "expired"
    return status


@dataclass(frozen=True, slots=True)
class Terms:
    """What the rules need of a reward."""

    active: bool
    points_cost: int
    stock: int | None = None
    per_member_limit: int | None = None
    min_tier_rank: int | None = None
    tier_codes: Sequence[str] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    """What the rules need of the member: current tier, how often they redeemed the reward (cancelled redemptions
    not counted) and their available points (None: not checked here, the ledger's debit decides)."""

    tier_code: str | None
    tier_rank: int | None
    redeemed: int
    available: int | None = None


def refusal(terms: Terms, standing: Standing, now: datetime) -> FealtyError | None:
    """Why the member cannot redeem the reward now (the first reason, in the order a member would fix them),
    or None when they can."""
    if not terms.active:
        return RewardUnavailable("This reward is no longer offered.", field="reward_id", reason="inactive")
    if terms.valid_from is not None and now < terms.valid_from:
        return RewardUnavailable(
            f"This reward can be redeemed from {terms.valid_from.isoformat()}.",
            field="reward_id",
            reason="not_yet_valid",
            valid_from=terms.valid_from.isoformat(),
        )
    if terms.valid_until is not None and now >= terms.valid_until:
        return RewardUnavailable(
            f"This reward could be redeemed until {terms.valid_until.isoformat()}.",
            field="reward_id",
            reason="ended",
            valid_until=terms.valid_until.isoformat(),
        )
    if not tier_allows(terms, standing.tier_code, standing.tier_rank):
        return NotEligible(
            "The member's tier does not give access to this reward.",
            field="member_id",
            tier=standing.tier_code,
            min_tier_rank=terms.min_tier_rank,
            tier_codes=list(terms.tier_codes),
        )
    if terms.per_member_limit is not None and standing.redeemed >= terms.per_member_limit:
        return LimitReached(
            f"The member has redeemed this reward {standing.redeemed} times; the limit is {terms.per_member_limit}.",
            field="reward_id",
            limit=terms.per_member_limit,
        )
    if terms.stock is not None and terms.stock <= 0:
        return OutOfStock("This reward is out of stock.", field="reward_id")
    if standing.available is not None and standing.available < terms.points_cost:
        return InsufficientPoints(
            f"The member has {max(standing.available, 0)} points available; {terms.points_cost} are needed.",
            field="points",
            available=max(standing.available, 0),
            requested=terms.points_cost,
        )
    return None


def tier_allows(terms: Terms, tier_code: str | None, tier_rank: int | None) -> bool:
    """Both restrictions apply when both are set; a member without a tier passes only an unrestricted reward."""
    if terms.min_tier_rank is not None and (tier_rank is None or tier_rank < terms.min_tier_rank):
        return False
    return not terms.tier_codes or tier_code in terms.tier_codes
