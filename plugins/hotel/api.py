"""HTTP under ``/v1/hotel``: a member's perks, stays and milestones, choosing a milestone, points-stay quotes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Meta
from sqlalchemy import select

from core import (
    CurrentTenant,
    Db,
    Page,
    ValidationFailed,
    check_limit,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
    get_member,
    load_member_view,
    page_of,
    utcnow,
)
from plugins.hotel import rules, service
from plugins.hotel.models import HotelMilestone, HotelStay
from plugins.hotel.settings import MilestoneChoice


class PerksOut(msgspec.Struct):
    member_id: uuid.UUID
    tier: str | None
    priority_check_in: bool
    late_checkout: str | None
    #: The welcome gift drawn from the member's stated preferences (null when the tier has no welcome gift).
    welcome_gift: str | None
    butler: bool
    tier_bonus_percent: int
    pre_arrival_notice: bool


def _plain(value: Decimal) -> Decimal:
    """``3`` rather than ``3.00000000`` or ``3E+1``; ``1.5`` rather than ``1.50000000``."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


class StayOut(msgspec.Struct):
    id: uuid.UUID
    reservation_id: str
    property: str
    brand: str | None
    property_category: str | None
    check_in: date
    check_out: date
    nights: int
    rooms: int
    rate_type: str
    booking_channel: str
    status: str
    payment_status: str
    last_event_id: str
    earning_event_id: str | None
    #: What the earning event gave: points, nights and stays (0 once reversed in full).
    base_points: int
    bonus_points: int
    qualifying_nights: int
    stay_credit: int
    credit_year: int | None
    updated_at: datetime
    #: The share of the earning event reversed through the API (a folio partly refunded), and the nights it still
    #: counts for status and milestones (``qualifying_nights`` less that share, as core's credits count them).
    reversed_share: Decimal
    counted_nights: Decimal

    @classmethod
    def of(cls, r: HotelStay) -> StayOut:
        return cls(
            r.id,
            r.reservation_id,
            r.property,
            r.brand,
            r.property_category,
            r.check_in,
            r.check_out,
            r.nights,
            r.rooms,
            r.rate_type,
            r.booking_channel,
            r.status,
            r.payment_status,
            r.last_event_id,
            r.earning_event_id,
            r.base_points,
            r.bonus_points,
            r.qualifying_nights,
            r.stay_credit,
            r.credit_year,
            r.updated_at,
            _plain(Decimal(r.reversed_share or 0)),
            _plain(rules.counted_nights(r.qualifying_nights, Decimal(r.reversed_share or 0))),
        )


class MilestoneOut(msgspec.Struct):
    id: uuid.UUID
    member_id: uuid.UUID
    year: int
    nights: int
    status: str
    options: list[dict[str, Any]]
    choice: str | None
    fulfilment: dict[str, Any]
    event_id: str
    offered_at: datetime
    decided_at: datetime | None

    @classmethod
    def of(cls, m: HotelMilestone) -> MilestoneOut:
        return cls(
            m.id,
            m.member_id,
            m.year,
            m.nights,
            m.status,
            list(m.options),
            m.choice,
            dict(m.fulfilment or {}),
            m.event_id,
            m.offered_at,
            m.decided_at,
        )


class MilestonesOut(msgspec.Struct):
    year: int
    #: Whole qualifying nights this calendar year (program time zone; a partial reversal can leave part of a night)
    #: and the next milestone, if any is left.
    nights_this_year: int
    next_milestone: int | None
    items: list[MilestoneOut]


class ChoiceIn(msgspec.Struct, forbid_unknown_fields=True):
    choice: MilestoneChoice


class QuoteIn(msgspec.Struct, forbid_unknown_fields=True):
    category: Annotated[str, Meta(min_length=1, max_length=16)]
    nights: Annotated[int, Meta(ge=1, le=365)]


class QuoteOut(msgspec.Struct):
    category: str
    nights: int
    nightly_points: int
    free_nights: int
    paid_nights: int
    points: int


class HotelController(Controller):
    path = "/"

    @get("/members/{member_id:uuid}/perks", operation_id="hotelMemberPerks", opt={"scope": "members:read"})
    async def perks(
        self,
        tenant_view: CurrentTenant,
        db: Db,
        member_id: FromPath[uuid.UUID],
    ) -> PerksOut:
        """What the member's tier gets at the hotel, with the welcome gift drawn from their stated preferences
        (``attributes.preferences``)."""
        member = await load_member_view(db, member_id)
        settings = service.settings_of(tenant_view)
        return msgspec.convert(service.perks_of(member, settings), PerksOut)

    @get("/members/{member_id:uuid}/stays", operation_id="hotelListStays", opt={"scope": "members:read"})
    async def stays(
        self,
        db: Db,
        member_id: FromPath[uuid.UUID],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[StayOut]:
        """The member's reservations as last reported, newest first, with what each earned and counted."""
        check_limit(limit)
        await get_member(db, member_id)
        query = select(HotelStay).where(HotelStay.member_id == member_id).order_by(HotelStay.id.desc()).limit(limit + 1)
        if cursor:
            query = query.where(HotelStay.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        return Page([StayOut.of(r) for r in items], next_cursor)

    @get("/members/{member_id:uuid}/milestones", operation_id="hotelListMilestones", opt={"scope": "members:read"})
    async def milestones(
        self,
        tenant_view: CurrentTenant,
        db: Db,
        member_id: FromPath[uuid.UUID],
    ) -> MilestonesOut:
        """The member's milestone choices (offered, chosen, withdrawn) and this year's nights."""
        items = await service.member_milestones(db, member_id)
        settings = service.settings_of(tenant_view)
        year = utcnow().astimezone(ZoneInfo(tenant_view.timezone)).year
        nights = int(await service.year_nights(db, member_id, year))
        upcoming = [m for m in rules.milestones(settings) if m > nights]
        return MilestonesOut(year, nights, upcoming[0] if upcoming else None, [MilestoneOut.of(m) for m in items])

    @post(
        "/members/{member_id:uuid}/milestones/{milestone_id:uuid}/choose",
        operation_id="hotelChooseMilestone",
        opt={"scope": "members:write"},
        status_code=200,
    )
    async def choose(
        self,
        tenant_view: CurrentTenant,
        db: Db,
        member_id: FromPath[uuid.UUID],
        milestone_id: FromPath[uuid.UUID],
        data: JSONBody[ChoiceIn],
    ) -> MilestoneOut:
        """Take one of the milestone's choices: points are credited at once; vouchers and suite upgrades become a
        service request for the hotel (``hotel.milestone_choice``)."""
        await get_member(db, member_id)
        milestone = await service.choose_milestone(db, tenant_view, member_id, milestone_id, data.choice, utcnow())
        return MilestoneOut.of(milestone)

    @post(
        "/quotes/points-stay",
        operation_id="hotelQuotePointsStay",
        opt={"scope": "members:read", "allowed_when_suspended": True},  # a quote writes nothing
        status_code=200,
    )
    async def quote(
        self,
        tenant_view: CurrentTenant,
        data: JSONBody[QuoteIn],
    ) -> QuoteOut:
        """The points price of a points stay: the category's nightly points, every 5th night free (at most 4 free
        nights a stay), all by the program's settings. Nothing is written."""
        settings = service.settings_of(tenant_view)
        try:
            quote = rules.quote_points_stay(data.category, data.nights, settings)
        except KeyError:
            raise ValidationFailed(
                f"No free-night price for category {data.category} (known: {sorted(settings.free_night_points)}).",
                field="category",
            ) from None
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="nights") from None
        return QuoteOut(
            quote.category, quote.nights, quote.nightly_points, quote.free_nights, quote.paid_nights, quote.points
        )


ROUTES: list[Any] = [HotelController]
