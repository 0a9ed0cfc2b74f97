"""HTTP under ``/v1/microfinance``: borrowers, groups, products, loans and their states and schedules, follow-ups
(visits and tasks), networking-event invitations and the PAR report."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta
from sqlalchemy import and_, or_, select

from core import (
    Conflict,
    CurrentPrincipal,
    CurrentRuntime,
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
    new_id,
    page_of,
    request_care,
    utcnow,
)
from plugins.microfinance import followups, reports, rules, service
from plugins.microfinance.models import (
    Allocation,
    Bereavement,
    Borrower,
    Group,
    Instalment,
    Loan,
    LoanAction,
    Product,
    Repayment,
    Task,
    Visit,
)

Name = Annotated[str, Meta(min_length=1, max_length=100)]
Words = Annotated[str, Meta(min_length=1, max_length=500)]
LongText = Annotated[str, Meta(min_length=1, max_length=4000)]
Officer = Annotated[str, Meta(min_length=1, max_length=100)]
Code = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Count = Annotated[int, Meta(ge=1, le=520)]
MONEY_MAX = Decimal("1000000000")
WRITE = {"scope": "members:write", "problems": (409,)}
READ = {"scope": "members:read"}
ADMIN = {"scope": "admin", "problems": (409,)}


def money(value: Decimal, field: str, *, positive: bool = True) -> Decimal:
    """A finite amount within bounds (the schema says number or decimal string; this says which)."""
    if not value.is_finite() or value < 0 or (positive and value == 0) or value > MONEY_MAX:
        raise ValidationFailed(
            f"{field} must be a finite amount {'above' if positive else 'at least'} 0 and at most {MONEY_MAX}.",
            field=field,
        )
    return value


def _m(value: Decimal | None, currency: str) -> Decimal:
    """An amount read back from the database (4 places) shown in the currency's minor unit."""
    return rules.rounder(service.digits_of(currency))(Decimal(value or 0))


def _mn(value: Decimal | None, currency: str) -> Decimal | None:
    return None if value is None else _m(value, currency)


def rate(value: Decimal, field: str) -> Decimal:
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(1000):
        raise ValidationFailed(f"{field} must be between 0 and 1000 (percent a year).", field=field)
    return value


# --- borrowers ------------------------------------------------------------------------------------------------------


class BorrowerIn(msgspec.Struct, forbid_unknown_fields=True):
    household_income_monthly: Decimal
    business: Name | None = None
    village: Name | None = None
    officer: Officer | None = None


class TrainingIn(msgspec.Struct, forbid_unknown_fields=True):
    trained_on: date
    trainer: Name


class BereavementIn(msgspec.Struct, forbid_unknown_fields=True):
    starts_on: date
    ends_on: date
    note: Words | None = None


class BorrowerOut(msgspec.Struct):
    member_id: uuid.UUID
    external_id: str
    household_income_monthly: Decimal
    business: str | None
    village: str | None
    officer: str | None
    training_on: date | None
    trainer: str | None
    tier: str | None
    #: Progressive lending: the largest next loan after a clean cycle (null before the first clean cycle).
    next_loan_limit: Decimal | None
    clean_cycles: int
    group_id: uuid.UUID | None
    bereavements: list[dict[str, Any]]


async def _borrower_out(db: Any, b: Borrower, currency: str) -> BorrowerOut:
    member = await load_member_view(db, b.member_id)
    from plugins.microfinance.models import GroupMember

    group_id = (
        await db.execute(select(GroupMember.group_id).where(GroupMember.member_id == b.member_id))
    ).scalar_one_or_none()
    mourning = (
        await db.execute(
            select(Bereavement).where(Bereavement.member_id == b.member_id).order_by(Bereavement.starts_on)
        )
    ).scalars()
    return BorrowerOut(
        b.member_id,
        member.external_id,
        _m(b.household_income_monthly, currency),
        b.business,
        b.village,
        b.officer,
        b.training_on,
        b.trainer,
        member.tier,
        _mn(b.next_loan_limit, currency),
        b.clean_cycles,
        group_id,
        [{"id": str(m.id), "starts_on": m.starts_on.isoformat(), "ends_on": m.ends_on.isoformat()} for m in mourning],
    )


# --- groups ---------------------------------------------------------------------------------------------------------


class GroupIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    centre: Name
    #: 0 Monday .. 6 Sunday.
    meeting_day: Annotated[int, Meta(ge=0, le=6)]
    max_members: Annotated[int, Meta(ge=2, le=50)] | None = None


class GroupMemberIn(msgspec.Struct, forbid_unknown_fields=True):
    member_id: uuid.UUID
    leader: bool = False


class MeetingIn(msgspec.Struct, forbid_unknown_fields=True):
    held_on: date
    present: Annotated[list[uuid.UUID], Meta(max_length=50)]


class GroupOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    centre: str
    meeting_day: int
    leader_member_id: uuid.UUID | None
    max_members: int
    members: list[uuid.UUID]


class MeetingOut(msgspec.Struct):
    id: uuid.UUID
    group_id: uuid.UUID
    held_on: date
    present: list[uuid.UUID]
    absent: list[uuid.UUID]


async def _group_out(db: Any, g: Group) -> GroupOut:
    return GroupOut(
        g.id, g.name, g.centre, g.meeting_day, g.leader_member_id, g.max_members, await service.group_members(db, g.id)
    )


# --- products -------------------------------------------------------------------------------------------------------


class ProductIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    interest_method: rules.Method
    #: Nominal annual rate in percent.
    annual_rate: Decimal
    frequency: rules.Frequency
    instalments: Count
    min_principal: Decimal
    max_principal: Decimal
    grace: Annotated[int, Meta(ge=0, le=519)] = 0
    instalment_fee: Decimal = Decimal(0)
    late_penalty: Decimal = Decimal(0)
    penalty_after_days: Annotated[int, Meta(ge=0, le=365)] = 1
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")] | None = None


class ProductPatch(msgspec.Struct, forbid_unknown_fields=True):
    active: bool


class ProductOut(msgspec.Struct):
    id: uuid.UUID
    code: str
    name: str
    currency: str
    interest_method: str
    annual_rate: Decimal
    frequency: str
    instalments: int
    grace: int
    instalment_fee: Decimal
    late_penalty: Decimal
    penalty_after_days: int
    min_principal: Decimal
    max_principal: Decimal
    active: bool

    @classmethod
    def of(cls, p: Product) -> ProductOut:
        return cls(
            p.id,
            p.code,
            p.name,
            p.currency,
            p.interest_method,
            p.annual_rate.normalize(),
            p.frequency,
            p.instalments,
            p.grace,
            _m(p.instalment_fee, p.currency),
            _m(p.late_penalty, p.currency),
            p.penalty_after_days,
            _m(p.min_principal, p.currency),
            _m(p.max_principal, p.currency),
            p.active,
        )


# --- loans ----------------------------------------------------------------------------------------------------------


class LoanIn(msgspec.Struct, forbid_unknown_fields=True):
    member_id: uuid.UUID
    product_id: uuid.UUID
    principal: Decimal
    instalments: Count | None = None
    purpose: Words | None = None
    officer: Officer | None = None


class ApproveIn(msgspec.Struct, forbid_unknown_fields=True):
    #: Required when the over-indebtedness check fails: why the loan is approved anyway (recorded).
    override_reason: Words | None = None


class DisburseIn(msgspec.Struct, forbid_unknown_fields=True):
    disbursed_on: date | None = None
    first_due_on: date | None = None


class ReasonIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Words


class RescheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    instalments: Count
    first_due_on: date
    reason: Words


class EmptyIn(msgspec.Struct, forbid_unknown_fields=True):
    pass


class LoanOut(msgspec.Struct):
    id: uuid.UUID
    member_id: uuid.UUID
    product_id: uuid.UUID
    group_id: uuid.UUID | None
    officer: str | None
    status: str
    principal: Decimal
    currency: str
    interest_method: str
    annual_rate: Decimal
    frequency: str
    instalments: int
    grace: int
    purpose: str | None
    applied_on: date
    approved_at: datetime | None
    signed_at: datetime | None
    disbursed_on: date | None
    first_due_on: date | None
    closed_on: date | None
    written_off_on: date | None
    indebtedness: dict[str, Any] | None
    override_reason: str | None
    outstanding_principal: Decimal
    days_past_due: int
    arrears_bucket: str
    classification: str | None
    max_days_past_due: int
    on_time_streak: int
    perfect: bool | None
    rebate_amount: Decimal | None
    note: str | None


async def _loan_out(db: Any, tenant: Any, loan: Loan) -> LoanOut:
    settings = service.settings_of(tenant)
    rows = await service.instalments_of(db, loan.id)
    today = service.today_of(tenant, utcnow())
    dpd = service.loan_days_past_due(rows, today) if loan.status in ("disbursed", "active") else 0
    outstanding = (
        sum((i.principal_due - i.principal_paid for i in rows), Decimal(0))
        if rows
        else (loan.principal if loan.status not in ("rejected",) else Decimal(0))
    )
    if loan.status == "written_off":
        outstanding = Decimal(0)
    bounds = settings.five_category_bounds
    return LoanOut(
        loan.id,
        loan.member_id,
        loan.product_id,
        loan.group_id,
        loan.officer,
        loan.status,
        _m(loan.principal, loan.currency),
        loan.currency,
        loan.interest_method,
        loan.annual_rate.normalize(),
        loan.frequency,
        loan.instalments,
        loan.grace,
        loan.purpose,
        loan.applied_on,
        loan.approved_at,
        loan.signed_at,
        loan.disbursed_on,
        loan.first_due_on,
        loan.closed_on,
        loan.written_off_on,
        loan.indebtedness,
        loan.override_reason,
        _m(outstanding, loan.currency),
        dpd,
        rules.bucket(dpd, settings.arrears_buckets),
        rules.five_category(dpd, bounds) if bounds else None,
        loan.max_days_past_due,
        loan.on_time_streak,
        loan.perfect,
        _mn(loan.rebate_amount, loan.currency),
        loan.note,
    )


class InstalmentOut(msgspec.Struct):
    no: int
    due_on: date
    principal: Decimal
    interest: Decimal
    fee: Decimal
    penalty: Decimal
    total: Decimal
    paid: Decimal
    principal_paid: Decimal
    interest_paid: Decimal
    fee_paid: Decimal
    penalty_paid: Decimal
    #: Principal still owed after this instalment, as scheduled.
    balance: Decimal
    paid_off_on: date | None
    #: ``paid`` (on time), ``paid_late``, ``partly_paid``, ``overdue``, ``due`` (not yet late).
    state: str
    days_past_due: int


class ScheduleOut(msgspec.Struct):
    loan_id: uuid.UUID
    #: True before disbursement: what the schedule would be if disbursed today (nothing stored).
    preview: bool
    currency: str
    total_principal: Decimal
    total_interest: Decimal
    total_fees: Decimal
    instalments: list[InstalmentOut]


class RepaymentOut(msgspec.Struct):
    id: uuid.UUID
    event_id: uuid.UUID
    source_event_id: str
    paid_at: datetime
    paid_on: date
    amount: Decimal
    reversed_at: datetime | None
    allocations: list[dict[str, Any]]


class ActionOut(msgspec.Struct):
    id: uuid.UUID
    action: str
    from_status: str | None
    to_status: str
    actor: str | None
    reason: str | None
    details: dict[str, Any]
    at: datetime


# --- follow-ups -----------------------------------------------------------------------------------------------------


class VisitIn(msgspec.Struct, forbid_unknown_fields=True):
    loan_id: uuid.UUID
    officer: Officer
    visited_on: date
    place: Name
    #: The borrower's signature on the form (a scan's reference, a signature pad's id).
    signature_ref: Annotated[str, Meta(min_length=1, max_length=200)]
    kind: Literal["use_of_funds", "monthly", "other"] = "monthly"
    use_of_funds: LongText | None = None
    business_state: LongText | None = None
    needs: LongText | None = None
    feedback: LongText | None = None
    #: Open a service case (a ``request``) for the needs voiced, routed like any case (``/v1/cases``).
    open_case: bool = False


class VisitOut(msgspec.Struct):
    id: uuid.UUID
    loan_id: uuid.UUID
    member_id: uuid.UUID
    kind: str
    officer: str
    visited_on: date
    place: str
    use_of_funds: str | None
    business_state: str | None
    needs: str | None
    feedback: str | None
    signature_ref: str
    case_id: uuid.UUID | None

    @classmethod
    def of(cls, v: Visit) -> VisitOut:
        return cls(
            v.id,
            v.loan_id,
            v.member_id,
            v.kind,
            v.officer,
            v.visited_on,
            v.place,
            v.use_of_funds,
            v.business_state,
            v.needs,
            v.feedback,
            v.signature_ref,
            v.case_id,
        )


class TaskOut(msgspec.Struct):
    id: uuid.UUID
    kind: str
    reason: str
    loan_id: uuid.UUID | None
    member_id: uuid.UUID
    officer: str | None
    due_on: date
    state: str
    visit_id: uuid.UUID | None
    note: str | None
    created_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, t: Task) -> TaskOut:
        return cls(
            t.id,
            t.kind,
            t.reason,
            t.loan_id,
            t.member_id,
            t.officer,
            t.due_on,
            t.state,
            t.visit_id,
            t.note,
            t.created_at,
            t.closed_at,
        )


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Words | None = None


class NetworkingIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    held_on: date
    place: Name
    #: Invite only the borrowers of groups in this centre (all borrowers when left out).
    centre: Name | None = None


class InvitedOut(msgspec.Struct):
    invited: int


class ParLine(msgspec.Struct):
    key: str | None
    loans: int
    outstanding_principal: Decimal
    at_risk_principal: Decimal
    loans_at_risk: int
    par: Decimal


class ParOut(msgspec.Struct):
    as_of: date
    days: int
    currency: str
    portfolio: ParLine
    #: Arrears ageing: loans and outstanding principal per bucket of days past due.
    ageing: list[ParLine]
    by_officer: list[ParLine]
    by_group: list[ParLine]
    by_centre: list[ParLine]
    by_product: list[ParLine]


def _line(key: str | None, line: reports.Line) -> ParLine:
    d = line.as_dict()
    return ParLine(
        key,
        d["loans"],
        Decimal(d["outstanding_principal"]),
        Decimal(d["at_risk_principal"]),
        d["loans_at_risk"],
        Decimal(d["par"]),
    )


class MicrofinanceController(Controller):
    path = "/"

    # borrowers

    @put("/borrowers/{member_id:uuid}", operation_id="microfinancePutBorrower", opt=WRITE, status_code=200)
    async def put_borrower(
        self, db: Db, tenant_view: CurrentTenant, member_id: FromPath[uuid.UUID], data: JSONBody[BorrowerIn]
    ) -> BorrowerOut:
        """Make a member a borrower, or update the lending fields (household income a month, business, village,
        loan officer)."""
        await get_member(db, member_id)
        income = money(data.household_income_monthly, "household_income_monthly", positive=False)
        now = utcnow()
        borrower = (
            await db.execute(select(Borrower).where(Borrower.member_id == member_id).with_for_update())
        ).scalar_one_or_none()
        if borrower is None:
            borrower = Borrower(member_id=member_id, clean_cycles=0, created_at=now)
            db.add(borrower)
        borrower.household_income_monthly = income
        borrower.business, borrower.village, borrower.officer = data.business, data.village, data.officer
        borrower.updated_at = now
        await db.flush()
        return await _borrower_out(db, borrower, tenant_view.currency)

    @get("/borrowers/{member_id:uuid}", operation_id="microfinanceGetBorrower", opt=READ)
    async def get_borrower(self, db: Db, tenant_view: CurrentTenant, member_id: FromPath[uuid.UUID]) -> BorrowerOut:
        """The borrower with their tier, progressive-lending limit and group."""
        return await _borrower_out(db, await service.get_borrower(db, member_id), tenant_view.currency)

    @get("/borrowers", operation_id="microfinanceListBorrowers", opt=READ)
    async def list_borrowers(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        officer: FromQuery[Officer | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[BorrowerOut]:
        check_limit(limit)
        query = select(Borrower).order_by(Borrower.member_id).limit(limit + 1)
        if officer:
            query = query.where(Borrower.officer == officer)
        if cursor:
            query = query.where(Borrower.member_id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda b: encode_cursor(b.member_id))
        return Page([await _borrower_out(db, b, tenant_view.currency) for b in items], next_cursor)

    @post("/borrowers/{member_id:uuid}/training", operation_id="microfinanceRecordTraining", opt=WRITE, status_code=200)
    async def training(
        self, db: Db, tenant_view: CurrentTenant, member_id: FromPath[uuid.UUID], data: JSONBody[TrainingIn]
    ) -> BorrowerOut:
        """Record the borrower's integrity training (date and trainer): a contract cannot be signed without it."""
        borrower = await service.get_borrower(db, member_id, lock=True)
        if data.trained_on > service.today_of(tenant_view, utcnow()):
            raise ValidationFailed("Training cannot be recorded for a future day.", field="trained_on")
        borrower.training_on, borrower.trainer, borrower.updated_at = data.trained_on, data.trainer, utcnow()
        await db.flush()
        return await _borrower_out(db, borrower, tenant_view.currency)

    @post("/borrowers/{member_id:uuid}/bereavements", operation_id="microfinanceRecordBereavement", opt=WRITE)
    async def bereavement(
        self, db: Db, tenant_view: CurrentTenant, member_id: FromPath[uuid.UUID], data: JSONBody[BereavementIn]
    ) -> BorrowerOut:
        """Record a bereavement: no collection contact from ``starts_on`` to ``ends_on`` (local days)."""
        borrower = await service.get_borrower(db, member_id)
        if data.ends_on < data.starts_on:
            raise ValidationFailed("ends_on is on or after starts_on.", field="ends_on")
        if (data.ends_on - data.starts_on).days > 366:
            raise ValidationFailed("A bereavement is recorded for at most a year.", field="ends_on")
        db.add(
            Bereavement(
                id=new_id(),
                member_id=member_id,
                starts_on=data.starts_on,
                ends_on=data.ends_on,
                note=data.note,
                created_at=utcnow(),
            )
        )
        await db.flush()
        return await _borrower_out(db, borrower, tenant_view.currency)

    # groups

    @post("/groups", operation_id="microfinanceCreateGroup", opt=WRITE)
    async def create_group(self, db: Db, tenant_view: CurrentTenant, data: JSONBody[GroupIn]) -> GroupOut:
        """A joint-liability group (default five members), its centre and meeting day."""
        taken = (await db.execute(select(Group.id).where(Group.name == data.name))).scalar_one_or_none()
        if taken is not None:
            raise Conflict("A group of that name exists.", field="name")
        group = Group(
            id=new_id(),
            name=data.name,
            centre=data.centre,
            meeting_day=data.meeting_day,
            max_members=data.max_members or service.settings_of(tenant_view).group_size,
            created_at=utcnow(),
        )
        db.add(group)
        await db.flush()
        return await _group_out(db, group)

    @get("/groups", operation_id="microfinanceListGroups", opt=READ)
    async def list_groups(
        self,
        db: Db,
        centre: FromQuery[Name | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[GroupOut]:
        check_limit(limit)
        query = select(Group).order_by(Group.id).limit(limit + 1)
        if centre:
            query = query.where(Group.centre == centre)
        if cursor:
            query = query.where(Group.id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda g: encode_cursor(g.id))
        return Page([await _group_out(db, g) for g in items], next_cursor)

    @get("/groups/{group_id:uuid}", operation_id="microfinanceGetGroup", opt=READ)
    async def get_group(self, db: Db, group_id: FromPath[uuid.UUID]) -> GroupOut:
        return await _group_out(db, await service.get_group(db, group_id))

    @post("/groups/{group_id:uuid}/members", operation_id="microfinanceAddGroupMember", opt=WRITE, status_code=200)
    async def add_member(self, db: Db, group_id: FromPath[uuid.UUID], data: JSONBody[GroupMemberIn]) -> GroupOut:
        """Join a borrower to the group (one group at a time, up to the group's size); ``leader`` makes them its
        leader."""
        group = await service.get_group(db, group_id, lock=True)
        await service.add_group_member(db, group, data.member_id, utcnow())
        if data.leader:
            group.leader_member_id = data.member_id
        await db.flush()
        return await _group_out(db, group)

    @post("/groups/{group_id:uuid}/meetings", operation_id="microfinanceRecordMeeting", opt=WRITE)
    async def meeting(
        self, db: Db, tenant_view: CurrentTenant, group_id: FromPath[uuid.UUID], data: JSONBody[MeetingIn]
    ) -> MeetingOut:
        """A meeting held, with who was present (the other members are recorded absent)."""
        group = await service.get_group(db, group_id, lock=True)
        if data.held_on > service.today_of(tenant_view, utcnow()):
            raise ValidationFailed("A meeting is recorded once held.", field="held_on")
        meeting, members = await service.record_meeting(db, group, data.held_on, list(data.present), utcnow())
        present = [m for m in members if m in data.present]
        return MeetingOut(meeting.id, group.id, meeting.held_on, present, [m for m in members if m not in present])

    # products

    @post("/products", operation_id="microfinanceCreateProduct", opt=ADMIN)
    async def create_product(self, db: Db, tenant_view: CurrentTenant, data: JSONBody[ProductIn]) -> ProductOut:
        """A loan product: term, frequency, interest method and rate, fee per instalment, late penalty, grace on
        principal, principal limits. The currency is the program's."""
        currency = data.currency or tenant_view.currency
        if currency != tenant_view.currency:
            raise ValidationFailed(
                f"Products lend in the program's currency, {tenant_view.currency}.", field="currency"
            )
        if data.grace >= data.instalments:
            raise ValidationFailed("grace must be less than instalments.", field="grace")
        low = money(data.min_principal, "min_principal")
        high = money(data.max_principal, "max_principal")
        if high < low:
            raise ValidationFailed("max_principal is at least min_principal.", field="max_principal")
        r = rules.rounder(service.digits_of(currency))
        for name in ("min_principal", "max_principal", "instalment_fee", "late_penalty"):
            value = money(getattr(data, name), name, positive=False)
            if r(value) != value:
                raise ValidationFailed(f"{name} has more decimals than {currency} allows.", field=name)
        taken = (await db.execute(select(Product.id).where(Product.code == data.code))).scalar_one_or_none()
        if taken is not None:
            raise Conflict("A product with that code exists.", field="code")
        product = Product(
            id=new_id(),
            code=data.code,
            name=data.name,
            currency=currency,
            interest_method=data.interest_method,
            annual_rate=rate(data.annual_rate, "annual_rate"),
            frequency=data.frequency,
            instalments=data.instalments,
            grace=data.grace,
            instalment_fee=data.instalment_fee,
            late_penalty=data.late_penalty,
            penalty_after_days=data.penalty_after_days,
            min_principal=low,
            max_principal=high,
            active=True,
            created_at=utcnow(),
        )
        db.add(product)
        await db.flush()
        return ProductOut.of(product)

    @get("/products", operation_id="microfinanceListProducts", opt=READ)
    async def list_products(self, db: Db) -> list[ProductOut]:
        rows = (await db.execute(select(Product).order_by(Product.code))).scalars()
        return [ProductOut.of(p) for p in rows]

    @get("/products/{product_id:uuid}", operation_id="microfinanceGetProduct", opt=READ)
    async def get_product(self, db: Db, product_id: FromPath[uuid.UUID]) -> ProductOut:
        return ProductOut.of(await service.get_product(db, product_id))

    @patch("/products/{product_id:uuid}", operation_id="microfinanceUpdateProduct", opt=ADMIN)
    async def update_product(self, db: Db, product_id: FromPath[uuid.UUID], data: JSONBody[ProductPatch]) -> ProductOut:
        """Withdraw a product (``active: false``) or offer it again; its terms never change (loans copy them)."""
        product = await service.get_product(db, product_id)
        product.active = data.active
        await db.flush()
        return ProductOut.of(product)

    # loans

    @post("/loans", operation_id="microfinanceApplyForLoan", opt=WRITE)
    async def apply(
        self, db: Db, tenant_view: CurrentTenant, principal: CurrentPrincipal, data: JSONBody[LoanIn]
    ) -> LoanOut:
        """A loan application on a product's terms (copied now: a product changed later does not change it)."""
        money(data.principal, "principal")
        loan = await service.apply_for_loan(db, tenant_view, data, utcnow(), principal.actor)
        return await _loan_out(db, tenant_view, loan)

    @get("/loans", operation_id="microfinanceListLoans", opt=READ)
    async def list_loans(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        member_id: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[
            Literal["applied", "approved", "signed", "disbursed", "active", "closed", "written_off", "rejected"] | None
        ] = None,
        officer: FromQuery[Officer | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[LoanOut]:
        check_limit(limit)
        query = select(Loan).order_by(Loan.id.desc()).limit(limit + 1)
        for column, value in ((Loan.member_id, member_id), (Loan.status, status), (Loan.officer, officer)):
            if value is not None:
                query = query.where(column == value)
        if cursor:
            query = query.where(Loan.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        return Page([await _loan_out(db, tenant_view, loan) for loan in items], next_cursor)

    @get("/loans/{loan_id:uuid}", operation_id="microfinanceGetLoan", opt=READ)
    async def get_loan(self, db: Db, tenant_view: CurrentTenant, loan_id: FromPath[uuid.UUID]) -> LoanOut:
        """The loan with its outstanding principal, days past due, arrears bucket and classification today."""
        return await _loan_out(db, tenant_view, await service.get_loan(db, loan_id))

    @post("/loans/{loan_id:uuid}/approve", operation_id="microfinanceApproveLoan", opt=ADMIN, status_code=200)
    async def approve(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        principal: CurrentPrincipal,
        loan_id: FromPath[uuid.UUID],
        data: JSONBody[ApproveIn],
    ) -> LoanOut:
        """Approve after the over-indebtedness check (all the borrower's instalments at most the tenant's share of
        monthly household income); over it, only with an ``override_reason``, recorded with the figures."""
        loan = await service.get_loan(db, loan_id, lock=True)
        await service.approve(db, tenant_view, loan, data.override_reason, utcnow(), principal.actor)
        return await _loan_out(db, tenant_view, loan)

    @post("/loans/{loan_id:uuid}/sign", operation_id="microfinanceSignLoan", opt=WRITE, status_code=200)
    async def sign(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        principal: CurrentPrincipal,
        loan_id: FromPath[uuid.UUID],
        data: JSONBody[EmptyIn],
    ) -> LoanOut:
        """The contract signed: only once the borrower's integrity training is recorded."""
        loan = await service.get_loan(db, loan_id, lock=True)
        await service.sign(db, tenant_view, loan, utcnow(), principal.actor)
        return await _loan_out(db, tenant_view, loan)

    @post("/loans/{loan_id:uuid}/disburse", operation_id="microfinanceDisburseLoan", opt=ADMIN, status_code=200)
    async def disburse(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        principal: CurrentPrincipal,
        loan_id: FromPath[uuid.UUID],
        data: JSONBody[DisburseIn],
    ) -> LoanOut:
        """Disburse: the schedule is generated and fixed now; the use-of-funds visit is due within 30 days."""
        loan = await service.get_loan(db, loan_id, lock=True)
        await service.disburse(db, tenant_view, loan, data.disbursed_on, data.first_due_on, utcnow(), principal.actor)
        return await _loan_out(db, tenant_view, loan)

    @post("/loans/{loan_id:uuid}/reject", operation_id="microfinanceRejectLoan", opt=ADMIN, status_code=200)
    async def reject(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        principal: CurrentPrincipal,
        loan_id: FromPath[uuid.UUID],
        data: JSONBody[ReasonIn],
    ) -> LoanOut:
        loan = await service.get_loan(db, loan_id, lock=True)
        await service.reject(db, loan, data.reason, utcnow(), principal.actor)
        return await _loan_out(db, tenant_view, loan)

    @post("/loans/{loan_id:uuid}/write-off", operation_id="microfinanceWriteOffLoan", opt=ADMIN, status_code=200)
    async def write_off(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        principal: CurrentPrincipal,
        loan_id: FromPath[uuid.UUID],
        data: JSONBody[ReasonIn],
    ) -> LoanOut:
        loan = await service.get_loan(db, loan_id, lock=True)
        await service.write_off(db, tenant_view, loan, data.reason, utcnow(), principal.actor)
        return await _loan_out(db, tenant_view, loan)

    @post("/loans/{loan_id:uuid}/reschedule", operation_id="microfinanceRescheduleLoan", opt=ADMIN, status_code=200)
    async def reschedule(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        principal: CurrentPrincipal,
        loan_id: FromPath[uuid.UUID],
        data: JSONBody[RescheduleIn],
    ) -> ScheduleOut:
        """An explicit reschedule, recorded with the schedule before and after (``GET .../actions``)."""
        loan = await service.get_loan(db, loan_id, lock=True)
        await service.reschedule(
            db, tenant_view, loan, data.instalments, data.first_due_on, data.reason, utcnow(), principal.actor
        )
        return await _schedule(db, tenant_view, loan)

    @get("/loans/{loan_id:uuid}/schedule", operation_id="microfinanceLoanSchedule", opt=READ)
    async def schedule(self, db: Db, tenant_view: CurrentTenant, loan_id: FromPath[uuid.UUID]) -> ScheduleOut:
        """The repayment schedule with what was paid into each instalment (a preview before disbursement)."""
        return await _schedule(db, tenant_view, await service.get_loan(db, loan_id))

    @get("/loans/{loan_id:uuid}/repayments", operation_id="microfinanceLoanRepayments", opt=READ)
    async def repayments(self, db: Db, loan_id: FromPath[uuid.UUID]) -> list[RepaymentOut]:
        """Repayments as applied, oldest first, with what each paid into which instalment."""
        currency = (await service.get_loan(db, loan_id)).currency
        rows = (
            await db.execute(select(Repayment).where(Repayment.loan_id == loan_id).order_by(Repayment.paid_at))
        ).scalars()
        allocations: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for a in (await db.execute(select(Allocation).where(Allocation.loan_id == loan_id))).scalars():
            allocations.setdefault(a.repayment_id, []).append(
                {
                    "instalment": a.instalment_no,
                    "penalty": str(_m(a.penalty, currency)),
                    "fee": str(_m(a.fee, currency)),
                    "interest": str(_m(a.interest, currency)),
                    "principal": str(_m(a.principal, currency)),
                    "reversed": a.reversed,
                }
            )
        return [
            RepaymentOut(
                r.id,
                r.event_id,
                r.source_event_id,
                r.paid_at,
                r.paid_on,
                _m(r.amount, currency),
                r.reversed_at,
                sorted(allocations.get(r.id, []), key=lambda a: a["instalment"]),
            )
            for r in rows
        ]

    @get("/loans/{loan_id:uuid}/actions", operation_id="microfinanceLoanActions", opt=READ)
    async def actions(self, db: Db, loan_id: FromPath[uuid.UUID]) -> list[ActionOut]:
        """Every state change and reschedule of the loan, who made it and why."""
        await service.get_loan(db, loan_id)
        rows = (
            await db.execute(select(LoanAction).where(LoanAction.loan_id == loan_id).order_by(LoanAction.at))
        ).scalars()
        return [ActionOut(a.id, a.action, a.from_status, a.to_status, a.actor, a.reason, a.details, a.at) for a in rows]

    # follow-ups

    @get("/follow-ups", operation_id="microfinanceWorklist", opt=READ)
    async def worklist(
        self,
        db: Db,
        officer: FromQuery[Officer | None] = None,
        due_before: FromQuery[date | None] = None,
        task_state: Annotated[Literal["open", "done", "cancelled"], QueryParameter(name="state")] = "open",
        loan_id: FromQuery[uuid.UUID | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[TaskOut]:
        """The officer's worklist: follow-up tasks by due date (``due_before`` excludes that day)."""
        check_limit(limit)
        query = select(Task).where(Task.state == task_state).order_by(Task.due_on, Task.id).limit(limit + 1)
        if officer:
            query = query.where(Task.officer == officer)
        if due_before:
            query = query.where(Task.due_on < due_before)
        if loan_id:
            query = query.where(Task.loan_id == loan_id)
        if cursor:
            day, last = decode_cursor(cursor, 2)
            after = date.fromisoformat(str(day))
            query = query.where(or_(Task.due_on > after, and_(Task.due_on == after, Task.id > cursor_uuid(last))))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda t: encode_cursor(t.due_on.isoformat(), t.id))
        return Page([TaskOut.of(t) for t in items], next_cursor)

    @post("/follow-ups/{task_id:uuid}/complete", operation_id="microfinanceCompleteTask", opt=WRITE, status_code=200)
    async def complete(self, db: Db, task_id: FromPath[uuid.UUID], data: JSONBody[NoteIn]) -> TaskOut:
        return TaskOut.of(await followups.close_task(db, task_id, "done", data.note, utcnow()))

    @post("/follow-ups/{task_id:uuid}/cancel", operation_id="microfinanceCancelTask", opt=WRITE, status_code=200)
    async def cancel(self, db: Db, task_id: FromPath[uuid.UUID], data: JSONBody[NoteIn]) -> TaskOut:
        return TaskOut.of(await followups.close_task(db, task_id, "cancelled", data.note, utcnow()))

    @post("/follow-ups/visits", operation_id="microfinanceRecordVisit", opt=WRITE)
    async def record_visit(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        runtime: CurrentRuntime,
        principal: CurrentPrincipal,
        data: JSONBody[VisitIn],
    ) -> VisitOut:
        """A follow-up visit's form, signed by the borrower: use of funds, state of the business, needs and
        feedback. It closes the loan's open visit tasks; with ``open_case`` the needs voiced open a service case."""
        now = utcnow()
        if data.visited_on > service.today_of(tenant_view, now):
            raise ValidationFailed("A visit is recorded once made.", field="visited_on")
        if data.open_case and not data.needs:
            raise ValidationFailed("A case is opened for the needs voiced: give needs.", field="needs")
        visit = await followups.record_visit(db, tenant_view, data, now)
        if data.open_case and data.needs:
            services = runtime.plugins.services(db, tenant_view, now)
            case = await services.open_case(
                visit.member_id,
                subject=f"Needs voiced in a follow-up visit on {visit.visited_on.isoformat()}",
                source=service.PLUGIN,
                kind="request",
                description=data.needs,
                related={"object": f"microfinance.visit:{visit.id}", "loan": str(visit.loan_id)},
                reference=f"microfinance.visit-needs:{visit.id}",
                actor=principal.actor,
            )
            visit.case_id = case.id
            await db.flush()
        return VisitOut.of(visit)

    @get("/follow-ups/visits", operation_id="microfinanceListVisits", opt=READ)
    async def list_visits(
        self,
        db: Db,
        loan_id: FromQuery[uuid.UUID | None] = None,
        officer: FromQuery[Officer | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[VisitOut]:
        check_limit(limit)
        query = select(Visit).order_by(Visit.id.desc()).limit(limit + 1)
        if loan_id:
            query = query.where(Visit.loan_id == loan_id)
        if officer:
            query = query.where(Visit.officer == officer)
        if cursor:
            query = query.where(Visit.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda v: encode_cursor(v.id))
        return Page([VisitOut.of(v) for v in items], next_cursor)

    # care

    @post("/networking-events", operation_id="microfinanceInviteNetworkingEvent", opt=ADMIN)
    async def networking(self, db: Db, tenant_view: CurrentTenant, data: JSONBody[NetworkingIn]) -> InvitedOut:
        """Invite borrowers (of one centre, or all) to a networking event between clients: an ordinary care
        occasion (``microfinance.networking_event``, marketing: consent and caps apply)."""
        from plugins.microfinance.models import GroupMember

        query = select(Borrower.member_id)
        if data.centre:
            query = (
                query.join(
                    GroupMember,
                    (GroupMember.tenant_id == Borrower.tenant_id) & (GroupMember.member_id == Borrower.member_id),
                )
                .join(Group, (Group.tenant_id == GroupMember.tenant_id) & (Group.id == GroupMember.group_id))
                .where(Group.centre == data.centre)
            )
        invited = 0
        key = f"{data.name}:{data.held_on.isoformat()}"
        for member_id in (await db.execute(query)).scalars():
            invited += bool(
                await request_care(
                    db,
                    tenant_id=tenant_view.id,
                    member_id=member_id,
                    kind="microfinance.networking_event",
                    purpose="marketing",
                    source=service.PLUGIN,
                    dedupe_key=f"microfinance.networking:{key}:{member_id}",
                    payload={"event_name": data.name, "held_on": data.held_on.isoformat(), "place": data.place},
                )
            )
        return InvitedOut(invited)

    # reports

    @get("/reports/par", operation_id="microfinancePar", opt={"scope": "reports:read"})
    async def par(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        as_of: FromQuery[date | None] = None,
        days: Annotated[int, QueryParameter(ge=0, le=3650)] = 30,
    ) -> ParOut:
        """PAR(days) at the end of local day ``as_of`` (today by default), from the repayment history: the
        outstanding principal of loans with an instalment more than ``days`` late over the gross outstanding
        principal; for the portfolio and per officer, group, centre and product, with the arrears ageing table."""
        settings = service.settings_of(tenant_view)
        today = service.today_of(tenant_view, utcnow())
        day = as_of or today
        if day > today:
            raise ValidationFailed("as_of is today or a past day.", field="as_of")
        threshold = days
        report = await reports.par(
            db, tenant_view.id, day, threshold, list(settings.arrears_buckets), service.digits_of(tenant_view.currency)
        )

        def lines(name: str) -> list[ParLine]:
            return [_line(k, v) for k, v in sorted(report.by[name].items())]

        return ParOut(
            day,
            threshold,
            tenant_view.currency,
            _line(None, report.portfolio),
            [_line(k, v) for k, v in report.ageing.items()],
            lines("officer"),
            lines("group"),
            lines("centre"),
            lines("product"),
        )


async def _schedule(db: Any, tenant: Any, loan: Loan) -> ScheduleOut:
    today = service.today_of(tenant, utcnow())
    if loan.disbursed_on is None:
        table = service.preview_schedule(loan, tenant, today)
        zero = rules.rounder(service.digits_of(loan.currency))(Decimal(0))
        out = [
            InstalmentOut(
                i.no,
                i.due_on,
                i.principal,
                i.interest,
                i.fee,
                zero,
                i.total,
                zero,
                zero,
                zero,
                zero,
                zero,
                i.balance,
                None,
                "due",
                0,
            )
            for i in table
        ]
        return ScheduleOut(
            loan.id,
            True,
            loan.currency,
            sum((i.principal for i in table), Decimal(0)),
            sum((i.interest for i in table), Decimal(0)),
            sum((i.fee for i in table), Decimal(0)),
            out,
        )
    rows: list[Instalment] = await service.instalments_of(db, loan.id)
    balance = sum((i.principal_due for i in rows), Decimal(0))
    out = []
    for i in rows:
        balance -= i.principal_due
        paid = i.principal_paid + i.interest_paid + i.fee_paid + i.penalty_paid
        if i.paid_off_on is not None:
            state = "paid" if i.paid_off_on <= i.due_on else "paid_late"
        elif i.due_on < today:
            state = "partly_paid" if paid > 0 else "overdue"
        else:
            state = "partly_paid" if paid > 0 else "due"
        late = (today - i.due_on).days if i.paid_off_on is None and i.due_on < today else 0
        c = loan.currency
        out.append(
            InstalmentOut(
                i.no,
                i.due_on,
                _m(i.principal_due, c),
                _m(i.interest_due, c),
                _m(i.fee_due, c),
                _m(i.penalty_due, c),
                _m(i.principal_due + i.interest_due + i.fee_due + i.penalty_due, c),
                _m(paid, c),
                _m(i.principal_paid, c),
                _m(i.interest_paid, c),
                _m(i.fee_paid, c),
                _m(i.penalty_paid, c),
                _m(balance, c),
                i.paid_off_on,
                state,
                late,
            )
        )
    return ScheduleOut(
        loan.id,
        False,
        loan.currency,
        _m(sum((i.principal_due for i in rows), Decimal(0)), loan.currency),
        _m(sum((i.interest_due for i in rows), Decimal(0)), loan.currency),
        _m(sum((i.fee_due for i in rows), Decimal(0)), loan.currency),
        out,
    )


ROUTES: list[Any] = [MicrofinanceController]
