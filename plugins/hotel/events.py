"""The event types a hotel's systems send, with their attribute schemas and cross-field checks."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core import EventType, FieldIssue

STAY = "hotel.stay"
GIFT = "hotel.points_gift"
TRANSFER = "hotel.points_transfer"

Status = Literal["booked", "in_house", "checked_out", "cancelled", "no_show"]
PaymentStatus = Literal["paid", "pending", "failed"]
MAX_NIGHTS = 365
MAX_MONEY = Decimal("1e9")


class FolioLine(msgspec.Struct, forbid_unknown_fields=True):
    """One folio line: a category, its amount before tax, and the tax on it, kept apart."""

    category: Annotated[str, Meta(min_length=1, max_length=40)]
    amount: Decimal
    tax: Decimal = Decimal(0)
    #: Which of the reservation's rooms it was charged to (1..rooms); None: the reservation as a whole.
    room: Annotated[int, Meta(ge=1, le=99)] | None = None
    #: When given, must be the event's currency.
    currency: Annotated[str, Meta(min_length=3, max_length=3)] | None = None
    description: Annotated[str, Meta(max_length=200)] | None = None


class StayAttributes(msgspec.Struct, forbid_unknown_fields=True):
    """A reservation as the property management system describes it now. Each change of status (booked, in house,
    checked out, cancelled, no-show, a failed payment) is a new event with its own ``event_id``."""

    reservation_id: Annotated[str, Meta(min_length=1, max_length=64)]
    property: Annotated[str, Meta(min_length=1, max_length=64)]
    check_in: date
    check_out: date
    status: Status
    brand: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    property_category: Annotated[str, Meta(min_length=1, max_length=16)] | None = None
    rooms: Annotated[int, Meta(ge=1, le=99)] = 1
    rate_type: Annotated[str, Meta(min_length=1, max_length=40)] = "standard"
    booking_channel: Annotated[str, Meta(min_length=1, max_length=40)] = "direct"
    payment_status: PaymentStatus = "paid"
    folio: Annotated[list[FolioLine], Meta(max_length=500)] = msgspec.field(default_factory=list)


class GiftAttributes(msgspec.Struct, forbid_unknown_fields=True):
    """Points given to the member (bought for them as a gift, a goodwill gesture): ``quantity`` is the points."""

    from_name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    message: Annotated[str, Meta(max_length=500)] | None = None


class TransferAttributes(msgspec.Struct, forbid_unknown_fields=True):
    """Points moved to the member from another member (``from_member_id``), who is debited: ``quantity`` points."""

    from_member_id: uuid.UUID
    message: Annotated[str, Meta(max_length=500)] | None = None


EVENT_TYPES = [
    EventType(
        STAY,
        "A hotel reservation and its updates (booked, in_house, checked_out, cancelled, no_show; payment failed): "
        "earns on eligible folio charges after check-out; nights and stays count toward status.",
        attributes=StayAttributes,
    ),
    EventType(
        GIFT,
        "Points gifted to the member (quantity = points). Not activity: it does not keep points from expiring.",
        attributes=GiftAttributes,
        requires_quantity=True,
        counts_as_activity=False,
    ),
    EventType(
        TRANSFER,
        "Points transferred to the member from another member, who is debited (quantity = points). Not activity.",
        attributes=TransferAttributes,
        requires_quantity=True,
        counts_as_activity=False,
    ),
]


def stay_issues(stay: StayAttributes, event_currency: str | None, program_currency: str) -> list[FieldIssue]:
    """Cross-field checks of a stay: dates, amounts, rooms and currencies."""
    issues: list[FieldIssue] = []
    if stay.check_out <= stay.check_in:
        issues.append(FieldIssue("attributes.check_out", "check-out must be at least one day after check-in"))
    elif (stay.check_out - stay.check_in).days > MAX_NIGHTS:
        issues.append(FieldIssue("attributes.check_out", f"a stay lasts at most {MAX_NIGHTS} nights"))
    currency = event_currency or program_currency
    if stay.folio and currency != program_currency:
        issues.append(
            FieldIssue(
                "currency",
                f"the folio is in {currency} but the program earns in {program_currency}: convert it before sending",
            )
        )
    for i, line in enumerate(stay.folio):
        for name in ("amount", "tax"):
            value: Decimal = getattr(line, name)
            if not value.is_finite() or abs(value) >= MAX_MONEY:
                issues.append(FieldIssue(f"attributes.folio[{i}].{name}", f"{name} is not a usable number"))
            elif value < 0:
                issues.append(
                    FieldIssue(
                        f"attributes.folio[{i}].{name}",
                        f"{name} must not be negative (send the corrected folio, not a negative line)",
                    )
                )
        if line.currency is not None and line.currency.upper() != currency:
            issues.append(
                FieldIssue(
                    f"attributes.folio[{i}].currency",
                    f"this line is in {line.currency.upper()}, the folio in {currency}: one currency per folio",
                )
            )
        if line.room is not None and line.room > stay.rooms:
            issues.append(
                FieldIssue(f"attributes.folio[{i}].room", f"room {line.room} of a reservation of {stay.rooms} room(s)")
            )
    return issues
