"""HTTP under ``/v1/utility``: service accounts, outages (notices, restoration, compensation), call tasks and
peak-time events."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import and_, func, select

from core import (
    AwareDatetime,
    Conflict,
    CurrentTenant,
    Db,
    NotFound,
    Page,
    TenantView,
    ValidationFailed,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
    get_member,
    new_id,
    page_of,
    utcnow,
)
from plugins.utility import outages as ops
from plugins.utility import peak, rules
from plugins.utility.models import (
    UtilityAccount,
    UtilityCallTask,
    UtilityCompensation,
    UtilityOutage,
    UtilityOutageAccount,
)
from plugins.utility.settings import UtilitySettings

Code = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")]
Text = Annotated[str, Meta(min_length=1, max_length=300)]
Limit = Annotated[int, Parameter(ge=1, le=500)]
Class = Literal["residential", "sme", "large", "public"]
#: Clocks of the outage system and Fealty's may differ a little: "now" is allowed this far ahead.
SKEW = timedelta(minutes=5)


def _settings(tenant: TenantView) -> UtilitySettings:
    return ops.settings_of(tenant)


# --- accounts --------------------------------------------------------------------------------------------------------


class PsrIn(msgspec.Struct, forbid_unknown_fields=True):
    """Priority Services Register needs: recorded only with the customer's consent, with where they came from."""

    needs: Annotated[list[Code], Meta(max_length=20)]
    consent: bool
    #: Who told us: ``customer-call``, ``web-form``, ``social-services``, ``another-supplier``...
    source: Annotated[str, Meta(min_length=1, max_length=80)]
    #: When to check the needs again (default: ``psr_review_days`` from now).
    review_date: date | None = None


class AccountIn(msgspec.Struct, forbid_unknown_fields=True):
    member_id: uuid.UUID
    account_number: Code
    premises_address: Text
    feeder: Code
    area: Code
    customer_class: Class = "residential"
    meter_id: Code | None = None
    credit_rating: Annotated[str, Meta(min_length=1, max_length=8)] | None = None
    account_manager: Annotated[str, Meta(min_length=1, max_length=120)] | None = None
    psr: PsrIn | None = None


class AccountUpdate(msgspec.Struct, forbid_unknown_fields=True):
    premises_address: Text | UnsetType = UNSET
    feeder: Code | UnsetType = UNSET
    area: Code | UnsetType = UNSET
    customer_class: Class | UnsetType = UNSET
    meter_id: Code | UnsetType | None = UNSET
    credit_rating: Annotated[str, Meta(min_length=1, max_length=8)] | UnsetType | None = UNSET
    account_manager: Annotated[str, Meta(min_length=1, max_length=120)] | UnsetType | None = UNSET
    #: null removes the needs (the customer withdrew consent, or no longer has them).
    psr: PsrIn | UnsetType | None = UNSET
    status: Literal["active", "closed"] | UnsetType = UNSET


class ServiceOut(msgspec.Struct):
    """How this account is served: a named manager for large customers (one-to-one, green channel), the SME
    level of its credit rating, the register's priority line for PSR customers."""

    channel: Literal["account_manager", "credit_rating", "priority_services", "standard"]
    account_manager: str | None
    credit_rating: str | None
    response_hours: int | None
    priority_line: bool
    events: bool
    restricted: bool


class PsrOut(msgspec.Struct):
    needs: list[str]
    consent: bool
    source: str | None
    recorded_at: datetime | None
    review_date: date | None
    review_due: bool


class AccountOut(msgspec.Struct):
    id: uuid.UUID
    member_id: uuid.UUID
    account_number: str
    premises_address: str
    meter_id: str | None
    feeder: str
    area: str
    customer_class: str
    credit_rating: str | None
    account_manager: str | None
    priority: bool
    psr: PsrOut
    service: ServiceOut
    paperless: bool
    autopay: bool
    status: str
    created_at: datetime
    updated_at: datetime


def service_of(a: Any, settings: UtilitySettings) -> ServiceOut:
    if a.customer_class == "large" and a.account_manager:
        return ServiceOut("account_manager", a.account_manager, a.credit_rating, 2, True, True, False)
    if a.customer_class == "sme" and a.credit_rating in settings.service_levels:
        level = settings.service_levels[a.credit_rating]
        return ServiceOut(
            "credit_rating",
            a.account_manager,
            a.credit_rating,
            level.response_hours,
            level.priority_line,
            level.events,
            level.restricted,
        )
    if a.psr:
        return ServiceOut("priority_services", a.account_manager, a.credit_rating, None, True, False, False)
    return ServiceOut("standard", a.account_manager, a.credit_rating, None, False, False, False)


def account_out(a: UtilityAccount, settings: UtilitySettings, today: date) -> AccountOut:
    return AccountOut(
        a.id,
        a.member_id,
        a.account_number,
        a.premises_address,
        a.meter_id,
        a.feeder,
        a.area,
        a.customer_class,
        a.credit_rating,
        a.account_manager,
        bool(a.psr or a.customer_class in settings.priority_classes),
        PsrOut(
            list(a.psr_needs or []),
            a.psr_consent,
            a.psr_source,
            a.psr_recorded_at,
            a.psr_review_date,
            bool(a.psr and a.psr_review_date is not None and a.psr_review_date <= today),
        ),
        service_of(a, settings),
        a.paperless,
        a.autopay,
        a.status,
        a.created_at,
        a.updated_at,
    )


def _check_rating(customer_class: str, rating: str | None, settings: UtilitySettings) -> None:
    if rating is None:
        return
    if customer_class != "sme":
        raise ValidationFailed("Only SME accounts have a credit rating.", field="credit_rating")
    if rating not in settings.service_levels:
        known = ", ".join(sorted(settings.service_levels))
        raise ValidationFailed(f"Unknown credit rating; the tenant's ratings are {known}.", field="credit_rating")


def _apply_psr(account: UtilityAccount, psr: PsrIn | None, settings: UtilitySettings, now: datetime) -> None:
    if psr is None or not psr.needs:
        account.psr_needs, account.psr, account.medical = [], False, False
        account.psr_consent = bool(psr and psr.consent)
        account.psr_source = psr.source if psr else None
        account.psr_recorded_at = now if psr else None
        account.psr_review_date = None
        return
    allowed = settings.psr_categories()
    for i, need in enumerate(psr.needs):
        if need not in allowed:
            raise ValidationFailed(
                f"Unknown need {need!r}; the register's categories are {', '.join(allowed)}.", field=f"psr.needs[{i}]"
            )
    if not psr.consent:
        raise ValidationFailed("Needs are recorded only with the customer's consent.", field="psr.consent")
    today = now.date()
    if psr.review_date is not None and psr.review_date <= today:
        raise ValidationFailed("The review date must be in the future.", field="psr.review_date")
    account.psr_needs = list(dict.fromkeys(psr.needs))
    account.psr, account.medical = True, "medical_equipment" in psr.needs
    account.psr_consent, account.psr_source, account.psr_recorded_at = True, psr.source, now
    account.psr_review_date = psr.review_date or today + timedelta(days=settings.psr_review_days)


async def _account(db: Db, tenant_id: uuid.UUID, account_id: uuid.UUID, field: str = "account_id") -> UtilityAccount:
    found = (
        await db.execute(
            select(UtilityAccount).where(UtilityAccount.tenant_id == tenant_id, UtilityAccount.id == account_id)
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("No such account.", field=field)
    return found


class AccountsController(Controller):
    path = "/accounts"

    @post(operation_id="utilityCreateAccount", opt={"scope": "members:write"})
    async def create_account(self, db: Db, tenant_view: CurrentTenant, data: JSONBody[AccountIn]) -> AccountOut:
        """Open a service account for a member (a member may hold several)."""
        settings, now = _settings(tenant_view), utcnow()
        await get_member(db, data.member_id)
        _check_rating(data.customer_class, data.credit_rating, settings)
        taken = (
            await db.execute(
                select(UtilityAccount.id).where(
                    UtilityAccount.tenant_id == tenant_view.id, UtilityAccount.account_number == data.account_number
                )
            )
        ).first()
        if taken is not None:
            raise Conflict("Another account has this account number.", field="account_number")
        account = UtilityAccount(
            tenant_id=tenant_view.id,
            id=new_id(),
            member_id=data.member_id,
            account_number=data.account_number,
            premises_address=data.premises_address,
            meter_id=data.meter_id,
            feeder=data.feeder,
            area=data.area,
            customer_class=data.customer_class,
            credit_rating=data.credit_rating,
            account_manager=data.account_manager,
            paperless=False,
            autopay=False,
            status="active",
            created_at=now,
            updated_at=now,
        )
        _apply_psr(account, data.psr, settings, now)
        db.add(account)
        await ops.flush_unique(db, "account_number", "Another account has this account number.")
        return account_out(account, settings, now.date())

    @get(operation_id="utilityListAccounts", opt={"scope": "members:read"})
    async def list_accounts(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        member_id: FromQuery[uuid.UUID | None] = None,
        feeder: FromQuery[str | None] = None,
        area: FromQuery[str | None] = None,
        customer_class: FromQuery[Class | None] = None,
        psr: FromQuery[bool | None] = None,
        review_due: FromQuery[bool | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[AccountOut]:
        """Accounts by id; filters by member, feeder, area, class, PSR, and PSR records due for review."""
        settings, today = _settings(tenant_view), utcnow().date()
        query = (
            select(UtilityAccount)
            .where(UtilityAccount.tenant_id == tenant_view.id)
            .order_by(UtilityAccount.id)
            .limit(limit + 1)
        )
        for column, value in (
            (UtilityAccount.member_id, member_id),
            (UtilityAccount.feeder, feeder),
            (UtilityAccount.area, area),
            (UtilityAccount.customer_class, customer_class),
            (UtilityAccount.psr, psr),
        ):
            if value is not None:
                query = query.where(column == value)
        if review_due:
            query = query.where(UtilityAccount.psr.is_(True), UtilityAccount.psr_review_date <= today)
        if cursor:
            query = query.where(UtilityAccount.id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda a: encode_cursor(a.id))
        return Page([account_out(a, settings, today) for a in items], next_cursor)

    @get("/{account_id:uuid}", operation_id="utilityGetAccount", opt={"scope": "members:read"})
    async def get_account(self, db: Db, tenant_view: CurrentTenant, account_id: FromPath[uuid.UUID]) -> AccountOut:
        return account_out(await _account(db, tenant_view.id, account_id), _settings(tenant_view), utcnow().date())

    @patch("/{account_id:uuid}", operation_id="utilityUpdateAccount", opt={"scope": "members:write"})
    async def update_account(
        self, db: Db, tenant_view: CurrentTenant, account_id: FromPath[uuid.UUID], data: JSONBody[AccountUpdate]
    ) -> AccountOut:
        """Change an account; ``psr`` replaces the register record (null removes it). The account number stays."""
        settings, now = _settings(tenant_view), utcnow()
        account = await _account(db, tenant_view.id, account_id)
        customer_class = data.customer_class if data.customer_class is not UNSET else account.customer_class
        rating = data.credit_rating if data.credit_rating is not UNSET else account.credit_rating
        if customer_class != "sme" and data.credit_rating is UNSET:
            rating = None
        _check_rating(customer_class, rating, settings)
        if data.psr is not UNSET:
            _apply_psr(account, data.psr, settings, now)
        for name in ("premises_address", "feeder", "area", "customer_class", "meter_id", "account_manager", "status"):
            value = getattr(data, name)
            if value is not UNSET:
                setattr(account, name, value)
        account.credit_rating = rating
        account.updated_at = now
        await db.flush()
        return account_out(account, settings, now.date())


# --- outages ---------------------------------------------------------------------------------------------------------


class OutageIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["planned", "unplanned"]
    #: Planned: when the supply goes off; unplanned: when it was lost (not in the future).
    starts_at: AwareDatetime
    feeders: Annotated[list[Code], Meta(max_length=500)] = msgspec.field(default_factory=list)
    areas: Annotated[list[Code], Meta(max_length=500)] = msgspec.field(default_factory=list)
    #: Planned: when it comes back (required).
    ends_at: AwareDatetime | None = None
    #: Unplanned: the estimated restoration time.
    etr: AwareDatetime | None = None
    reason: Text | None = None
    contact_line: Annotated[str, Meta(min_length=1, max_length=40)] | None = None
    #: ``normal`` weather, a severe-weather category or an exempt one (the tenant's settings).
    category: Code = "normal"
    #: The outage system's id: a second outage with it is refused (409).
    reference: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class OutageUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Planned (scheduled): a new window is told to everyone already told. Unplanned (confirmed): an ETR change
    beyond the tenant's threshold is told to everyone still out; more feeders or areas alert their accounts."""

    starts_at: AwareDatetime | UnsetType = UNSET
    ends_at: AwareDatetime | UnsetType = UNSET
    etr: AwareDatetime | UnsetType | None = UNSET
    feeders: Annotated[list[Code], Meta(max_length=500)] | UnsetType = UNSET
    areas: Annotated[list[Code], Meta(max_length=500)] | UnsetType = UNSET
    reason: Text | UnsetType | None = UNSET
    contact_line: Annotated[str, Meta(min_length=1, max_length=40)] | UnsetType | None = UNSET
    category: Code | UnsetType = UNSET


class RestoreIn(msgspec.Struct, forbid_unknown_fields=True):
    #: When the supply came back (default: now).
    restored_at: AwareDatetime | None = None


class ClaimIn(msgspec.Struct, forbid_unknown_fields=True):
    """A customer the automatic payment missed (an account not on the outage's feeders or areas)."""

    account_id: uuid.UUID
    #: When this account lost supply (default: the outage's start) and got it back (default: its restoration).
    out_from: AwareDatetime | None = None
    restored_at: AwareDatetime | None = None


class OutageOut(msgspec.Struct):
    id: uuid.UUID
    reference: str | None
    kind: str
    status: str
    feeders: list[str]
    areas: list[str]
    starts_at: datetime
    ends_at: datetime | None
    etr: datetime | None
    reason: str | None
    contact_line: str | None
    category: str
    window_version: int
    etr_version: int
    affected_accounts: int
    confirmed_at: datetime | None
    restored_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: What this request told, stage by stage (``{"alert": 120}``).
    told: dict[str, int] = msgspec.field(default_factory=dict)


def outage_out(o: Any, told: list[ops.Told] | None = None) -> OutageOut:
    counts: dict[str, int] = {}
    for t in told or []:
        if t.accounts:
            counts[t.stage] = counts.get(t.stage, 0) + t.accounts
    return OutageOut(
        o.id,
        o.reference,
        o.kind,
        o.status,
        list(o.feeders or []),
        list(o.areas or []),
        o.starts_at,
        o.ends_at,
        o.etr,
        o.reason,
        o.contact_line,
        o.category,
        o.window_version,
        o.etr_version,
        o.affected_accounts,
        o.confirmed_at,
        o.restored_at,
        o.cancelled_at,
        o.created_at,
        o.updated_at,
        counts,
    )


async def _outage(db: Db, tenant_id: uuid.UUID, outage_id: uuid.UUID, *, lock: bool = False) -> Any:
    row = await ops.lock_outage(db, tenant_id, outage_id) if lock else await ops.get_outage(db, tenant_id, outage_id)
    if row is None:
        raise NotFound("No such outage.", field="outage_id")
    return row


class AffectedOut(msgspec.Struct):
    account_id: uuid.UUID
    member_id: uuid.UUID
    customer_class: str
    priority: bool
    medical: bool
    source: str
    out_from: datetime
    restored_at: datetime | None
    reopened_at: datetime | None
    stages: list[str]


class CompensationOut(msgspec.Struct):
    id: uuid.UUID
    outage_id: uuid.UUID
    account_id: uuid.UUID
    member_id: uuid.UUID
    category: str
    kind: str
    hours: Decimal
    amount: Decimal
    paid_amount: Decimal
    currency: str
    basis: str
    increments: int
    method: str
    points: int
    status: str
    source: str
    created_at: datetime
    paid_at: datetime | None

    @classmethod
    def of(cls, c: Any) -> CompensationOut:
        return cls(
            c.id,
            c.outage_id,
            c.account_id,
            c.member_id,
            c.category,
            c.kind,
            (Decimal(c.minutes) / 60).quantize(Decimal("0.01")),
            Decimal(c.amount),
            Decimal(c.paid_amount),
            c.currency,
            c.basis,
            c.increments,
            c.method,
            c.points,
            c.status,
            c.source,
            c.created_at,
            c.paid_at,
        )


class ReportLine(msgspec.Struct):
    kind: str
    basis: str
    accounts: int
    hours: Decimal
    amount: Decimal


class CompensationReport(msgspec.Struct):
    """Per outage: accounts, hours and amounts, by customer kind and basis; then the accounts, a page at a time."""

    outage_id: uuid.UUID
    category: str
    currency: str
    accounts: int
    owed_accounts: int
    hours: Decimal
    amount: Decimal
    paid_amount: Decimal
    lines: list[ReportLine]
    items: list[CompensationOut]
    next_cursor: str | None


def _check_outage_in(data: OutageIn, settings: UtilitySettings, now: datetime) -> None:
    if not data.feeders and not data.areas:
        raise ValidationFailed("Name the affected feeders or areas.", field="feeders")
    if data.category not in settings.weather_categories():
        raise ValidationFailed(
            f"Unknown category; the tenant's are {', '.join(settings.weather_categories())}.", field="category"
        )
    if data.kind == "planned":
        if data.ends_at is None:
            raise ValidationFailed("A planned outage needs its end.", field="ends_at")
        if data.ends_at <= data.starts_at:
            raise ValidationFailed("The end must be after the start.", field="ends_at")
        if data.starts_at <= now:
            raise ValidationFailed("A planned outage starts in the future.", field="starts_at")
        if data.etr is not None:
            raise ValidationFailed("A planned outage has a window, not an ETR.", field="etr")
    else:
        if data.ends_at is not None:
            raise ValidationFailed("An unplanned outage ends when it is restored.", field="ends_at")
        if data.starts_at > now + SKEW:
            raise ValidationFailed("An unplanned outage has already started.", field="starts_at")
        if data.etr is not None and data.etr <= data.starts_at:
            raise ValidationFailed("The ETR must be after the start.", field="etr")


class OutagesController(Controller):
    path = "/outages"

    @post(operation_id="utilityCreateOutage", opt={"scope": "admin"})
    async def create_outage(self, db: Db, tenant_view: CurrentTenant, data: JSONBody[OutageIn]) -> OutageOut:
        """A planned outage (notices at the lead times; any stage already due goes now, marked late when it is) or a
        confirmed unplanned one (a safety alert to every affected account, queued in this transaction; a call task
        for each medical-equipment customer)."""
        settings, now = _settings(tenant_view), utcnow()
        _check_outage_in(data, settings, now)
        outage_id = await ops.insert_outage(
            db,
            tenant_view.id,
            {
                "id": new_id(),
                "reference": data.reference,
                "kind": data.kind,
                "status": "scheduled" if data.kind == "planned" else "confirmed",
                "feeders": sorted(set(data.feeders)),
                "areas": sorted(set(data.areas)),
                "starts_at": data.starts_at,
                "ends_at": data.ends_at,
                "etr": data.etr,
                "reason": data.reason,
                "contact_line": data.contact_line,
                "category": data.category,
                "window_version": 0,
                "etr_version": 0,
                "affected_accounts": 0,
                "confirmed_at": now if data.kind == "unplanned" else None,
                "created_at": now,
                "updated_at": now,
            },
        )
        if outage_id is None:
            raise Conflict("Another outage has this reference.", field="reference")
        outage = await _outage(db, tenant_view.id, outage_id)
        await ops.snapshot(db, tenant_view, outage, now)
        outage = await _outage(db, tenant_view.id, outage_id)
        if data.kind == "planned":
            told = await ops.advance_planned(db, tenant_view, outage, now)
        else:
            told = [await ops.alert(db, tenant_view, outage, now)]
        return outage_out(outage, told)

    @get(operation_id="utilityListOutages", opt={"scope": "members:read"})
    async def list_outages(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        kind: FromQuery[Literal["planned", "unplanned"] | None] = None,
        status: FromQuery[Literal["scheduled", "confirmed", "restored", "cancelled"] | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[OutageOut]:
        """Outages, newest first."""
        o = ops.outages
        query = select(o).where(o.c.tenant_id == tenant_view.id).order_by(o.c.id.desc()).limit(limit + 1)
        if kind:
            query = query.where(o.c.kind == kind)
        if status:
            query = query.where(o.c.status == status)
        if cursor:
            query = query.where(o.c.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        return Page([outage_out(r) for r in items], next_cursor)

    @get("/{outage_id:uuid}", operation_id="utilityGetOutage", opt={"scope": "members:read"})
    async def get_outage(self, db: Db, tenant_view: CurrentTenant, outage_id: FromPath[uuid.UUID]) -> OutageOut:
        return outage_out(await _outage(db, tenant_view.id, outage_id))

    @patch("/{outage_id:uuid}", operation_id="utilityUpdateOutage", opt={"scope": "admin"})
    async def update_outage(
        self, db: Db, tenant_view: CurrentTenant, outage_id: FromPath[uuid.UUID], data: JSONBody[OutageUpdate]
    ) -> OutageOut:
        """Edit an outage. The row is locked while the change is compared and told, so two edits take turns and each
        real change is told once (``changed:<n>``, ``etr:<n>``); an edit that changes nothing tells nothing."""
        settings, now = _settings(tenant_view), utcnow()
        outage = await _outage(db, tenant_view.id, outage_id, lock=True)
        if outage.status in ("cancelled", "restored") and any(
            getattr(data, f) is not UNSET for f in ("starts_at", "ends_at", "etr", "feeders", "areas")
        ):
            raise Conflict(f"The outage is {outage.status}.", field="outage_id")
        changes: dict[str, Any] = {}
        for name in ("reason", "contact_line"):
            value = getattr(data, name)
            if value is not UNSET:
                changes[name] = value
        if data.category is not UNSET:
            if data.category not in settings.weather_categories():
                raise ValidationFailed("Unknown category.", field="category")
            if outage.restored_at is not None and data.category != outage.category:
                raise Conflict("Compensation was computed with the outage's category.", field="category")
            changes["category"] = data.category
        told: list[ops.Told] = []
        places = {
            "feeders": sorted(set(outage.feeders or []) | set(data.feeders or [])) if data.feeders else None,
            "areas": sorted(set(outage.areas or []) | set(data.areas or [])) if data.areas else None,
        }
        for name, value in places.items():
            if value is not None and value != sorted(getattr(outage, name) or []):
                changes[name] = value
        window = (outage.starts_at, outage.ends_at)
        etr_told = False
        if outage.kind == "planned":
            if data.etr is not UNSET:
                raise ValidationFailed("A planned outage has a window, not an ETR.", field="etr")
            starts = data.starts_at if data.starts_at is not UNSET else outage.starts_at
            ends = data.ends_at if data.ends_at is not UNSET else outage.ends_at
            if ends is not None and ends <= starts:
                raise ValidationFailed("The end must be after the start.", field="ends_at")
            if (starts, ends) != window:
                if starts <= now:
                    raise ValidationFailed("A planned outage starts in the future.", field="starts_at")
                changes.update(starts_at=starts, ends_at=ends, window_version=outage.window_version + 1)
        else:
            if data.starts_at is not UNSET or data.ends_at is not UNSET:
                raise ValidationFailed("An unplanned outage's start is when it was lost.", field="starts_at")
            if data.etr is not UNSET and data.etr != outage.etr:
                if data.etr is not None and data.etr <= outage.starts_at:
                    raise ValidationFailed("The ETR must be after the start.", field="etr")
                changes["etr"] = data.etr
                if rules.etr_changed(outage.etr, data.etr, settings):
                    changes["etr_version"] = outage.etr_version + 1
                    etr_told = True
        if not changes:
            return outage_out(outage)
        changes["updated_at"] = now
        await ops.update_outage(db, tenant_view.id, outage_id, changes)
        fresh = await _outage(db, tenant_view.id, outage_id)
        if "feeders" in changes or "areas" in changes:
            await ops.snapshot(db, tenant_view, fresh, now)
            fresh = await _outage(db, tenant_view.id, outage_id)
            if fresh.kind == "unplanned" and fresh.status == "confirmed":
                told.append(await ops.alert(db, tenant_view, fresh, now))
        if "window_version" in changes:
            told.extend(await ops.window_changed(db, tenant_view, fresh, window, now))
        elif fresh.kind == "planned":
            told.extend(await ops.advance_planned(db, tenant_view, fresh, now))
        if etr_told:
            told.append(await ops.etr_update(db, tenant_view, fresh, outage.etr, now))
        return outage_out(fresh, told)

    @post("/{outage_id:uuid}/cancel", operation_id="utilityCancelOutage", opt={"scope": "admin"}, status_code=200)
    async def cancel_outage(self, db: Db, tenant_view: CurrentTenant, outage_id: FromPath[uuid.UUID]) -> OutageOut:
        """Cancel a planned outage: everyone already told hears it is off (once, however often this is sent)."""
        now = utcnow()
        outage = await _outage(db, tenant_view.id, outage_id, lock=True)
        if outage.kind != "planned":
            raise Conflict("An unplanned outage is restored, not cancelled.", field="outage_id")
        if outage.status == "cancelled":
            return outage_out(outage)
        if outage.status == "restored":
            raise Conflict("The outage took place: it is restored.", field="outage_id")
        await ops.update_outage(
            db, tenant_view.id, outage_id, {"status": "cancelled", "cancelled_at": now, "updated_at": now}
        )
        fresh = await _outage(db, tenant_view.id, outage_id)
        return outage_out(fresh, [await ops.cancelled(db, tenant_view, fresh, now)])

    @post("/{outage_id:uuid}/restore", operation_id="utilityRestoreOutage", opt={"scope": "admin"}, status_code=200)
    async def restore_outage(
        self, db: Db, tenant_view: CurrentTenant, outage_id: FromPath[uuid.UUID], data: JSONBody[RestoreIn]
    ) -> OutageOut:
        """Restore an outage: every account still out is restored and told, and what each is owed is computed
        (once per account) and paid. A planned outage is restored when the supply came back (after its start): an
        account told its window with the required notice is owed compensation only for an overrun past the window's
        end; any other like an unplanned outage's."""
        now = utcnow()
        restored_at = data.restored_at or now
        outage = await _outage(db, tenant_view.id, outage_id, lock=True)
        if outage.status == "restored":
            return outage_out(outage)
        if outage.status == "cancelled":
            raise Conflict("The outage was cancelled.", field="outage_id")
        if restored_at <= outage.starts_at:
            raise ValidationFailed("Restoration comes after the start.", field="restored_at")
        if restored_at > now + SKEW:
            raise ValidationFailed("Restoration cannot be in the future.", field="restored_at")
        await ops.update_outage(
            db, tenant_view.id, outage_id, {"status": "restored", "restored_at": restored_at, "updated_at": now}
        )
        fresh = await _outage(db, tenant_view.id, outage_id)
        told, _ = await ops.restore(db, tenant_view, fresh, restored_at, now)
        await ops.pay_due(db, tenant_view, now, limit=ops.INLINE_PAYMENTS)
        return outage_out(fresh, [told])

    @get("/{outage_id:uuid}/accounts", operation_id="utilityListOutageAccounts", opt={"scope": "members:read"})
    async def list_affected(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        outage_id: FromPath[uuid.UUID],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[AffectedOut]:
        """The accounts the outage affects, with the stages each was told."""
        await _outage(db, tenant_view.id, outage_id)
        oa = ops.affected
        query = (
            select(oa)
            .where(oa.c.tenant_id == tenant_view.id, oa.c.outage_id == outage_id)
            .order_by(oa.c.account_id)
            .limit(limit + 1)
        )
        if cursor:
            query = query.where(oa.c.account_id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.account_id))
        stages = await ops.stages_of(db, tenant_view.id, outage_id, [r.account_id for r in items])
        return Page(
            [
                AffectedOut(
                    r.account_id,
                    r.member_id,
                    r.customer_class,
                    r.priority,
                    r.medical,
                    r.source,
                    r.out_from,
                    r.restored_at,
                    r.reopened_at,
                    stages.get(r.account_id, []),
                )
                for r in items
            ],
            next_cursor,
        )

    @post(
        "/{outage_id:uuid}/accounts/{account_id:uuid}/still-out",
        operation_id="utilityStillOut",
        opt={"scope": "admin"},
        status_code=200,
    )
    async def still_out(
        self, db: Db, tenant_view: CurrentTenant, outage_id: FromPath[uuid.UUID], account_id: FromPath[uuid.UUID]
    ) -> AffectedOut:
        """The customer says the power is still out after the restoration: the outage is reopened for this account
        (restored again on its own; its compensation then counts the longer outage)."""
        now = utcnow()
        outage = await _outage(db, tenant_view.id, outage_id, lock=True)
        row = await ops.reopen(db, tenant_view, outage, account_id, now)
        return AffectedOut(
            row.account_id,
            row.member_id,
            row.customer_class,
            row.priority,
            row.medical,
            row.source,
            row.out_from,
            row.restored_at,
            row.reopened_at,
            (await ops.stages_of(db, tenant_view.id, outage_id, [account_id])).get(account_id, []),
        )

    @post(
        "/{outage_id:uuid}/accounts/{account_id:uuid}/restore",
        operation_id="utilityRestoreAccount",
        opt={"scope": "admin"},
        status_code=200,
    )
    async def restore_account(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        outage_id: FromPath[uuid.UUID],
        account_id: FromPath[uuid.UUID],
        data: JSONBody[RestoreIn],
    ) -> AffectedOut:
        """Restore one reopened account: it is told, and its compensation is recomputed (the difference paid)."""
        now = utcnow()
        restored_at = data.restored_at or now
        outage = await _outage(db, tenant_view.id, outage_id, lock=True)
        if restored_at > now + SKEW:
            raise ValidationFailed("Restoration cannot be in the future.", field="restored_at")
        row = await ops.restore_one(db, tenant_view, outage, account_id, restored_at, now)
        await ops.pay_due(db, tenant_view, now, limit=ops.INLINE_PAYMENTS)
        return AffectedOut(
            row.account_id,
            row.member_id,
            row.customer_class,
            row.priority,
            row.medical,
            row.source,
            row.out_from,
            row.restored_at,
            row.reopened_at,
            (await ops.stages_of(db, tenant_view.id, outage_id, [account_id])).get(account_id, []),
        )

    @post("/{outage_id:uuid}/claims", operation_id="utilityClaimCompensation", opt={"scope": "admin"})
    async def claim(
        self, db: Db, tenant_view: CurrentTenant, outage_id: FromPath[uuid.UUID], data: JSONBody[ClaimIn]
    ) -> CompensationOut:
        """A claim for a restored outage by an account the automatic payment did not cover, within the claim window
        (``claim_window_days`` after restoration). An account already compensated is a 409."""
        settings, now = _settings(tenant_view), utcnow()
        outage = await _outage(db, tenant_view.id, outage_id, lock=True)
        await _account(db, tenant_view.id, data.account_id)
        if outage.status != "restored" or outage.restored_at is None:
            raise Conflict("Claims are for restored outages.", field="outage_id")
        if now > outage.restored_at + timedelta(days=settings.claim_window_days):
            raise Conflict(f"Claims close {settings.claim_window_days} days after restoration.", field="outage_id")
        out_from = data.out_from or outage.starts_at
        restored_at = data.restored_at or outage.restored_at
        if restored_at <= out_from:
            raise ValidationFailed("Restoration comes after the start.", field="restored_at")
        if restored_at > now + SKEW:
            raise ValidationFailed("Restoration cannot be in the future.", field="restored_at")
        if out_from < outage.starts_at:
            raise ValidationFailed("The supply was lost at the outage's start at the earliest.", field="out_from")
        row = await ops.claim(db, tenant_view, outage, data.account_id, out_from, restored_at, now)
        await ops.pay_due(db, tenant_view, now, limit=ops.INLINE_PAYMENTS)
        return CompensationOut.of(await ops.compensation_of(db, tenant_view.id, row))

    @get("/{outage_id:uuid}/compensation", operation_id="utilityCompensationReport", opt={"scope": "reports:read"})
    async def report(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        outage_id: FromPath[uuid.UUID],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[Limit] = 50,
    ) -> CompensationReport:
        """The outage's compensation: totals by customer kind and basis, then each account, a page at a time."""
        outage = await _outage(db, tenant_view.id, outage_id)
        c = ops.compensations
        base = and_(c.c.tenant_id == tenant_view.id, c.c.outage_id == outage_id)
        lines = (
            await db.execute(
                select(c.c.kind, c.c.basis, func.count(), func.sum(c.c.minutes), func.sum(c.c.amount))
                .where(base)
                .group_by(c.c.kind, c.c.basis)
                .order_by(c.c.kind, c.c.basis)
            )
        ).all()
        totals = (
            await db.execute(
                select(func.count(), func.sum(c.c.minutes), func.sum(c.c.amount), func.sum(c.c.paid_amount)).where(base)
            )
        ).one()
        owed = (await db.execute(select(func.count()).where(base, c.c.amount > 0))).scalar_one()
        query = select(c).where(base).order_by(c.c.account_id).limit(limit + 1)
        if cursor:
            query = query.where(c.c.account_id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.account_id))

        def hours(minutes: Any) -> Decimal:
            return (Decimal(minutes or 0) / 60).quantize(Decimal("0.01"))

        cents = Decimal("0.01")
        return CompensationReport(
            outage.id,
            outage.category,
            tenant_view.currency,
            int(totals[0] or 0),
            int(owed),
            hours(totals[1]),
            Decimal(totals[2] or 0).quantize(cents),
            Decimal(totals[3] or 0).quantize(cents),
            [ReportLine(k, b, int(n), hours(m), Decimal(a or 0).quantize(cents)) for k, b, n, m, a in lines],
            [CompensationOut.of(r) for r in items],
            next_cursor,
        )


# --- call tasks ------------------------------------------------------------------------------------------------------


class CallTaskOut(msgspec.Struct):
    id: uuid.UUID
    outage_id: uuid.UUID
    account_id: uuid.UUID
    reason: str
    assignee: str
    status: str
    due_at: datetime
    note: str | None
    created_at: datetime
    done_at: datetime | None


class TaskDoneIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, Meta(min_length=1, max_length=500)] | None = None


def _task_out(t: Any) -> CallTaskOut:
    return CallTaskOut(
        t.id, t.outage_id, t.account_id, t.reason, t.assignee, t.status, t.due_at, t.note, t.created_at, t.done_at
    )


class CallTasksController(Controller):
    path = "/call-tasks"

    @get(operation_id="utilityListCallTasks", opt={"scope": "members:read"})
    async def list_tasks(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        status: FromQuery[Literal["open", "done"] | None] = "open",
        assignee: FromQuery[str | None] = None,
        outage_id: FromQuery[uuid.UUID | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[CallTaskOut]:
        """Calls owed to priority customers (a personal call before a planned outage; medical-equipment customers
        in an unplanned one), by the account manager or the priority desk."""
        t = ops.tasks
        query = select(t).where(t.c.tenant_id == tenant_view.id).order_by(t.c.id).limit(limit + 1)
        if status:
            query = query.where(t.c.status == status)
        if assignee:
            query = query.where(t.c.assignee == assignee)
        if outage_id:
            query = query.where(t.c.outage_id == outage_id)
        if cursor:
            query = query.where(t.c.id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        return Page([_task_out(r) for r in items], next_cursor)

    @post("/{task_id:uuid}/done", operation_id="utilityCompleteCallTask", opt={"scope": "admin"}, status_code=200)
    async def done(
        self, db: Db, tenant_view: CurrentTenant, task_id: FromPath[uuid.UUID], data: JSONBody[TaskDoneIn]
    ) -> CallTaskOut:
        task = (
            await db.execute(
                select(UtilityCallTask)
                .where(UtilityCallTask.tenant_id == tenant_view.id, UtilityCallTask.id == task_id)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if task is None:
            raise NotFound("No such call task.", field="task_id")
        if task.status == "open":
            task.status, task.done_at, task.note = "done", utcnow(), data.note
            await db.flush()
        return _task_out(task)


ROUTES: list[Any] = [AccountsController, OutagesController, CallTasksController, *peak.ROUTES]

__all__ = ["ROUTES", "UtilityCompensation", "UtilityOutage", "UtilityOutageAccount"]
