"""HTTP under ``/v1/fuel``: sites, the review queue, cents-off vouchers at the pump, the retention report, settings.

Only tenants that enabled the plugin see these routes (others get 404 from core).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import (
    AwareDatetime,
    Conflict,
    CurrentPrincipal,
    CurrentProgram,
    CurrentRuntime,
    CurrentTenant,
    Db,
    NotFound,
    Page,
    ValidationFailed,
    approve_held,
    check_limit,
    cursor_uuid,
    decimal_bounds,
    decode_cursor,
    encode_cursor,
    get_redemption,
    new_id,
    page_of,
    reject_held,
    use_redemption,
    utcnow,
)
from plugins.fuel_station import rules
from plugins.fuel_station.models import FuelDiscount, FuelReview, FuelSite, FuelTransaction

SiteCode = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


#: A site's limit in litres: more than 0, at most 100,000, to 4 decimal places.
SiteLitres = Annotated[Decimal, decimal_bounds(gt=0, le=100_000, places=4)]
#: A fill-up's litres: more than 0, to the litre's places; at most the tenant's ``max_valid_litres`` (a setting of at
#: most 100,000, checked by the route).
FillUpLitres = Annotated[Decimal, decimal_bounds(gt=0, le=100_000, places=rules.LITRE_PLACES)]
#: A pump price: more than 0, at most 10,000 a litre, to 4 decimal places.
PricePerLitre = Annotated[Decimal, decimal_bounds(gt=0, le=10_000, places=4)]


# --- sites ----------------------------------------------------------------------------------------------------------


class SiteIn(msgspec.Struct, forbid_unknown_fields=True):
    #: What pumps and tills send as ``attributes.site``.
    code: SiteCode
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    participating: bool = True
    #: Overrides of the tenant's settings for this site (null: the tenant's).
    tank_size_litres: SiteLitres | None = None
    daily_max_fill_ups: Annotated[int, Meta(ge=1, le=100)] | None = None
    daily_max_litres: SiteLitres | None = None
    region: Annotated[str, Meta(min_length=1, max_length=100)] | None = None


class SiteUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    participating: bool | UnsetType = UNSET
    tank_size_litres: SiteLitres | UnsetType | None = UNSET
    daily_max_fill_ups: Annotated[int, Meta(ge=1, le=100)] | UnsetType | None = UNSET
    daily_max_litres: SiteLitres | UnsetType | None = UNSET
    region: Annotated[str, Meta(min_length=1, max_length=100)] | UnsetType | None = UNSET


class SiteOut(msgspec.Struct):
    id: uuid.UUID
    code: str
    name: str
    participating: bool
    tank_size_litres: Decimal | None
    daily_max_fill_ups: int | None
    daily_max_litres: Decimal | None
    region: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, site: FuelSite) -> SiteOut:
        return cls(
            site.id,
            site.code,
            site.name,
            site.participating,
            site.tank_size_litres,
            site.daily_max_fill_ups,
            site.daily_max_litres,
            site.region,
            site.created_at,
            site.updated_at,
        )


async def _get_site(db: AsyncSession, site_id: uuid.UUID) -> FuelSite:
    site: FuelSite | None = (await db.execute(select(FuelSite).where(FuelSite.id == site_id))).scalar_one_or_none()
    if site is None:
        raise NotFound("No such site.", field="site_id")
    return site


class SitesController(Controller):
    path = "/sites"
    tags = ["fuel"]

    @post(operation_id="fuelCreateSite", opt={"scope": "admin"})
    async def create_site(self, db: Db, principal: CurrentPrincipal, data: JSONBody[SiteIn]) -> SiteOut:
        """Add a site to the network. Only participating sites earn; limits override the tenant's settings."""
        exists = (await db.execute(select(FuelSite.id).where(FuelSite.code == data.code))).first()
        if exists is not None:
            raise Conflict("Another site already has this code.", field="code")
        now = utcnow()
        site = FuelSite(
            tenant_id=principal.tenant_id,
            id=new_id(),
            created_at=now,
            updated_at=now,
            **msgspec.structs.asdict(data),
        )
        db.add(site)
        try:
            await db.flush()
        except IntegrityError:
            raise Conflict("Another site already has this code.", field="code") from None
        return SiteOut.of(site)

    @get(operation_id="fuelListSites", opt={"scope": "members:read"})
    async def list_sites(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        participating: FromQuery[bool | None] = None,
        code: FromQuery[str | None] = None,
    ) -> Page[SiteOut]:
        """The network's sites, by code."""
        check_limit(limit)
        query = select(FuelSite).order_by(FuelSite.code).limit(limit + 1)
        if cursor:
            query = query.where(FuelSite.code > str(decode_cursor(cursor, 1)[0]))
        if participating is not None:
            query = query.where(FuelSite.participating.is_(participating))
        if code is not None:
            query = query.where(FuelSite.code == code)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda s: encode_cursor(s.code))
        return Page([SiteOut.of(s) for s in items], next_cursor)

    @get("/{site_id:uuid}", operation_id="fuelGetSite", opt={"scope": "members:read"})
    async def get_site(self, db: Db, site_id: FromPath[uuid.UUID]) -> SiteOut:
        return SiteOut.of(await _get_site(db, site_id))

    @patch("/{site_id:uuid}", operation_id="fuelUpdateSite", opt={"scope": "admin"})
    async def update_site(self, db: Db, site_id: FromPath[uuid.UUID], data: JSONBody[SiteUpdate]) -> SiteOut:
        """Change a site (its code stays: pumps send it). ``participating: false`` stops earning there at once."""
        site = await _get_site(db, site_id)
        for name, value in msgspec.structs.asdict(data).items():
            if value is not UNSET:
                setattr(site, name, value)
        site.updated_at = utcnow()
        await db.flush()
        return SiteOut.of(site)


# --- the review queue -----------------------------------------------------------------------------------------------


class FlagOut(msgspec.Struct):
    code: str
    detail: str


class DecisionOut(msgspec.Struct):
    """Who decided on a held transaction, when and why, whichever route decided it (this queue's or core's
    ``POST /v1/events/{id}/approve|reject``)."""

    #: approved or rejected; ``points`` is everything the approval awarded (0 for a rejection).
    decision: str
    reason: str
    decided_by: str
    decided_at: datetime
    points: int


class ReviewOut(msgspec.Struct):
    #: The core event's id (``GET /v1/events/{id}``).
    id: uuid.UUID
    event_id: str
    member_id: uuid.UUID
    site: str
    kind: str
    occurred_at: datetime
    litres: Decimal | None
    grade: str | None
    amount: Decimal
    currency: str
    #: held (waiting for a decision), awarded (approved) or rejected.
    status: str
    flags: list[FlagOut]
    #: Fuel and shop points it earned and still counts toward the monthly cap (less what a reversal took back); the
    #: decision says all the approval awarded.
    points: int
    decision: DecisionOut | None = None


class DecisionIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=300)]


def _decision(review: FuelReview | None) -> DecisionOut | None:
    if review is None:
        return None
    return DecisionOut(review.decision, review.reason, review.decided_by, review.decided_at, review.points)


def _review_out(row: Any) -> ReviewOut:
    tx, code, review = row[0], row[1], row[2]
    return ReviewOut(
        id=tx.id,
        event_id=tx.event_id,
        member_id=tx.member_id,
        site=code,
        kind=tx.kind,
        occurred_at=tx.occurred_at,
        litres=tx.litres,
        grade=tx.grade,
        amount=tx.amount,
        currency=tx.currency,
        status=tx.status,
        flags=[FlagOut(f["code"], f["detail"]) for f in tx.flags or []],
        points=tx.points - tx.reversed_points,
        decision=_decision(review),
    )


def _reviews_query() -> Any:
    return (
        select(FuelTransaction, FuelSite.code, FuelReview)
        .join(FuelSite, and_(FuelSite.tenant_id == FuelTransaction.tenant_id, FuelSite.id == FuelTransaction.site_id))
        .outerjoin(
            FuelReview,
            and_(FuelReview.tenant_id == FuelTransaction.tenant_id, FuelReview.transaction_id == FuelTransaction.id),
        )
    )


async def _review(db: AsyncSession, event_id: uuid.UUID) -> ReviewOut:
    row = (await db.execute(_reviews_query().where(FuelTransaction.id == event_id))).first()
    if row is None:
        raise NotFound("No fuel event with this id.", field="event_id")
    return _review_out(row)


async def _flagged(db: AsyncSession, event_id: uuid.UUID) -> FuelTransaction:
    """A transaction that was held for review (waiting or decided): the only ones this queue decides."""
    tx: FuelTransaction | None = (
        await db.execute(select(FuelTransaction).where(FuelTransaction.id == event_id))
    ).scalar_one_or_none()
    if tx is None or not tx.flagged:
        raise NotFound("No fuel event held for review with this id.", field="event_id")
    return tx


class ReviewsController(Controller):
    path = "/reviews"
    tags = ["fuel"]

    @get(operation_id="fuelListReviews", opt={"scope": "members:read"})
    async def list_reviews(
        self,
        db: Db,
        status: FromQuery[Literal["held", "approved", "rejected", "all"]] = "held",
        member_id: FromQuery[uuid.UUID | None] = None,
        site: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[ReviewOut]:
        """Fill-ups flagged by the fraud rules, newest first, with every reason: ``held`` (the default) waits for a
        decision; ``approved`` and ``rejected`` show who decided and why."""
        check_limit(limit)
        query = (
            _reviews_query()
            .where(FuelTransaction.flagged.is_(True))
            .order_by(FuelTransaction.id.desc())
            .limit(limit + 1)
        )
        if status == "held":
            query = query.where(FuelTransaction.status == "held")
        elif status == "approved":
            query = query.where(FuelTransaction.status == "awarded")
        elif status == "rejected":
            query = query.where(FuelTransaction.status == "rejected")
        if member_id is not None:
            query = query.where(FuelTransaction.member_id == member_id)
        if site is not None:
            query = query.where(FuelSite.code == site)
        if cursor:
            query = query.where(FuelTransaction.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r[0].id))
        return Page([_review_out(r) for r in items], next_cursor)

    @get("/{event_id:uuid}", operation_id="fuelGetReview", opt={"scope": "members:read"})
    async def get_review(self, db: Db, event_id: FromPath[uuid.UUID]) -> ReviewOut:
        await _flagged(db, event_id)
        return await _review(db, event_id)

    @post("/{event_id:uuid}/approve", operation_id="fuelApproveReview", opt={"scope": "admin"}, status_code=200)
    async def approve(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        event_id: FromPath[uuid.UUID],
        data: JSONBody[DecisionIn],
    ) -> ReviewOut:
        """Approve a held fill-up: it earns now, exactly once however often (or however concurrently) this is
        called; a second decision is a 409. Who and why are recorded."""
        await _flagged(db, event_id)
        # Core claims it atomically; the plugin's fealty_event_processed records the decision with its points.
        assert principal.tenant_id is not None
        await approve_held(
            db, runtime, program, event_id, tenant_id=principal.tenant_id, actor=principal.actor, reason=data.reason
        )
        return await _review(db, event_id)

    @post("/{event_id:uuid}/reject", operation_id="fuelRejectReview", opt={"scope": "admin"}, status_code=200)
    async def reject(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        event_id: FromPath[uuid.UUID],
        data: JSONBody[DecisionIn],
    ) -> ReviewOut:
        """Reject a held fill-up: it never earns. Who and why are recorded."""
        await _flagged(db, event_id)
        assert principal.tenant_id is not None
        await reject_held(
            db, runtime, program, event_id, tenant_id=principal.tenant_id, actor=principal.actor, reason=data.reason
        )
        return await _review(db, event_id)


# --- cents off at the pump ------------------------------------------------------------------------------------------


class ApplyIn(msgspec.Struct, forbid_unknown_fields=True):
    #: The fill-up the voucher is used on.
    litres: FillUpLitres
    price_per_litre: PricePerLitre
    site: SiteCode | None = None
    reference: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    #: Work out the discount without using the voucher (to show it at the pump first).
    dry_run: bool = False


class DiscountOut(msgspec.Struct):
    redemption_id: uuid.UUID
    litres: Decimal
    litres_discounted: Decimal
    price_per_litre: Decimal
    #: What the voucher is worth per litre, and what was given (less when a limit applied).
    voucher_off_per_litre: Decimal
    off_per_litre: Decimal
    amount_off: Decimal
    price_after: Decimal
    currency: str
    limited_by: list[str]
    used: bool


class StepOut(msgspec.Struct):
    points: int
    off_per_litre: Decimal


class StepsOut(msgspec.Struct):
    currency: str
    minimum: int
    step: int
    max_off_per_litre: Decimal
    floor_price_per_litre: Decimal
    max_litres: Decimal
    steps: list[StepOut]


class RedemptionsController(Controller):
    path = "/"
    tags = ["fuel"]

    @post(
        "/redemptions/{redemption_id:uuid}/apply",
        operation_id="fuelApplyCentsOff",
        opt={"scope": "rewards:write"},
        status_code=200,
    )
    async def apply(
        self,
        tenant_view: CurrentTenant,
        db: Db,
        principal: CurrentPrincipal,
        redemption_id: FromPath[uuid.UUID],
        data: JSONBody[ApplyIn],
    ) -> DiscountOut:
        """Use a cents-off voucher on a fill-up: the discount is worked out at the pump price (never below the floor
        price, at most the per-litre maximum, on at most the litre cap) and the voucher is used, once."""
        settings = tenant_view.settings_for("fuel")
        if data.litres > settings.max_valid_litres:
            # The static part of the rule is declared (FillUpLitres); this part is the tenant's setting.
            raise ValidationFailed(f"litres must be at most {settings.max_valid_litres} (a fill-up).", field="litres")
        assert principal.tenant_id is not None
        redemption = await get_redemption(db, principal.tenant_id, redemption_id)
        fulfilment = dict(redemption.fulfilment or {})
        if fulfilment.get("kind") != "fuel.cents_off":
            raise Conflict("This redemption is not a cents-off voucher.", field="redemption_id")
        voucher_off = Decimal(fulfilment["off_per_litre"])
        result = rules.discount(data.litres, data.price_per_litre, voucher_off, settings)
        if not data.dry_run:
            now = utcnow()
            await use_redemption(
                db,
                tenant_id=principal.tenant_id,
                redemption_id=redemption_id,
                actor=principal.actor,
                now=now,
                location=data.site,
                reference=data.reference or f"{result.amount_off} off {result.litres_discounted} L",
            )
            db.add(
                FuelDiscount(
                    tenant_id=principal.tenant_id,
                    id=new_id(),
                    redemption_id=redemption_id,
                    member_id=redemption.member_id,
                    site_code=data.site,
                    litres=result.litres,
                    litres_discounted=result.litres_discounted,
                    price_per_litre=result.price_per_litre,
                    off_per_litre=result.off_per_litre,
                    amount_off=result.amount_off,
                    currency=tenant_view.currency,
                    limited_by=list(result.limited_by),
                    applied_by=principal.actor,
                    applied_at=now,
                )
            )
            await db.flush()
        return DiscountOut(
            redemption_id=redemption_id,
            litres=result.litres,
            litres_discounted=result.litres_discounted,
            price_per_litre=result.price_per_litre,
            voucher_off_per_litre=voucher_off,
            off_per_litre=result.off_per_litre,
            amount_off=result.amount_off,
            price_after=result.price_after,
            currency=tenant_view.currency,
            limited_by=list(result.limited_by),
            used=not data.dry_run,
        )

    @get("/redemption-steps", operation_id="fuelRedemptionSteps", opt={"scope": "members:read"})
    async def steps(
        self,
        tenant_view: CurrentTenant,
        points: FromQuery[Annotated[int, Meta(ge=0)] | None] = None,
    ) -> StepsOut:
        """The amounts points can be redeemed in and what each takes off a litre (up to ``points`` when given):
        the points costs a ``fuel.cents_off`` reward may have."""
        if points is not None and points < 0:
            raise ValidationFailed("points must not be negative.", field="points")
        settings = tenant_view.settings_for("fuel")
        ceiling = points if points is not None else 10**12
        steps = rules.redemption_steps(ceiling, settings)
        return StepsOut(
            currency=tenant_view.currency,
            minimum=settings.redemption_min_points,
            step=settings.redemption_step_points,
            max_off_per_litre=settings.max_off_per_litre,
            floor_price_per_litre=settings.floor_price_per_litre,
            max_litres=settings.discount_max_litres,
            steps=[StepOut(p, rules.off_per_litre_for(p, settings)) for p in steps],
        )

    @get("/settings", operation_id="fuelGetSettings", opt={"scope": "admin"})
    async def get_settings(self, tenant_view: CurrentTenant) -> dict[str, Any]:
        """The tenant's fuel settings in force, defaults filled in (change them with ``PATCH /v1/program``)."""
        result: dict[str, Any] = msgspec.to_builtins(tenant_view.settings_for("fuel"))
        return result


# --- measures -------------------------------------------------------------------------------------------------------


class RetentionFigures(msgspec.Struct):
    #: Members with activity in the earlier window.
    cohort: int
    #: Of those, who came back in the later window (to the same site, for a site).
    returned: int
    #: Of those, who had no activity anywhere in the network in the later window.
    churned: int
    return_rate: Decimal | None
    churn_rate: Decimal | None


class SiteRetention(RetentionFigures):
    site_id: uuid.UUID | None = None
    code: str | None = None
    name: str | None = None


class RetentionOut(msgspec.Struct):
    as_of: datetime
    days: int
    cohort_from: datetime
    cohort_until: datetime
    network: RetentionFigures
    sites: list[SiteRetention]


class ReportsController(Controller):
    path = "/reports"
    tags = ["fuel"]

    @get("/retention", operation_id="fuelRetentionReport", opt={"scope": "reports:read"})
    async def retention(
        self,
        db: Db,
        principal: CurrentPrincipal,
        days: FromQuery[Annotated[int, Meta(ge=1, le=366)]] = 30,
        as_of: FromQuery[AwareDatetime | None] = None,
    ) -> RetentionOut:
        """Return rate and churn rate per site and for the network: the cohort is who filled up or shopped in the
        ``days`` before the last ``days``; *returned* came back in the last ``days`` (to the same site, for a site);
        *churned* had no activity anywhere in the network in the last ``days``."""
        from plugins.fuel_station import service

        assert principal.tenant_id is not None
        if not 1 <= days <= 366:
            raise ValidationFailed("days must be between 1 and 366.", field="days")
        end = as_of or utcnow()
        if end.tzinfo is None:
            raise ValidationFailed("as_of needs a time zone offset.", field="as_of")
        network, per_site = await service.retention(db, principal.tenant_id, end, days)
        names = {
            s.id: s
            for s in (
                await db.execute(select(FuelSite).where(FuelSite.id.in_([r.site_id for r in per_site])))
            ).scalars()
        }

        def figures(row: service.RetentionRow) -> dict[str, Any]:
            return {
                "cohort": row.cohort,
                "returned": row.returned,
                "churned": row.churned,
                "return_rate": rules.rate(row.returned, row.cohort),
                "churn_rate": rules.rate(row.churned, row.cohort),
            }

        sites = sorted(
            (
                SiteRetention(
                    site_id=r.site_id,
                    code=names[r.site_id].code if r.site_id in names else None,
                    name=names[r.site_id].name if r.site_id in names else None,
                    **figures(r),
                )
                for r in per_site
            ),
            key=lambda s: s.code or "",
        )
        return RetentionOut(
            as_of=end,
            days=days,
            cohort_from=end - timedelta(days=2 * days),
            cohort_until=end - timedelta(days=days),
            network=RetentionFigures(**figures(network)),
            sites=sites,
        )


CONTROLLERS: list[Any] = [SitesController, ReviewsController, RedemptionsController, ReportsController]
