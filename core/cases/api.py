"""HTTP: case categories (``/v1/case-categories``), cases (``/v1/cases``: open, search, read, history, the workflow's
steps as ``POST /v1/cases/{case_id}/{action}``) and members' replies (``POST /v1/care/replies``)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import and_, exists, or_, select

from core.care import feedback
from core.cases import metrics as _metrics  # noqa: F401  (the breach counter is on /metrics from the start)
from core.cases import replies, service, workflow
from core.cases.models import CASE_CHANNELS, Case, CaseCategory, CaseHistory
from core.clock import utcnow
from core.db.lookup import one_or_404
from core.errors import Conflict, ValidationFailed
from core.http.auth import Principal
from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, CurrentTenant, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.members.service import get_member
from core.plugin.types import CASE_KINDS, CASE_PRIORITIES
from core.validation import AwareDatetime

CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
HHMM = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Hours = Annotated[float, Meta(gt=0, le=8760)]
Note = Annotated[str, Meta(min_length=1, max_length=4000)]
Priority = Literal["low", "normal", "high", "urgent"]
Kind = Literal["complaint", "request", "question", "compliment"]
Channel = Literal["email", "sms", "phone", "web", "app", "store", "letter", "social", "reply", "plugin"]
Status = Literal["received", "classified", "assigned", "investigating", "resolved", "replied", "closed"]
assert set(CASE_PRIORITIES) == set(Priority.__args__)  # type: ignore[attr-defined]
assert set(CASE_KINDS) == set(Kind.__args__)  # type: ignore[attr-defined]
assert set(CASE_CHANNELS) == set(Channel.__args__)  # type: ignore[attr-defined]


def _actor(principal: Principal) -> str:
    return str(principal.actor)


# --- categories -------------------------------------------------------------------------------------------------------


class BusinessHoursIn(msgspec.Struct, forbid_unknown_fields=True):
    #: ISO weekdays (1 = Monday .. 7 = Sunday) with working hours.
    days: Annotated[list[Annotated[int, Meta(ge=1, le=7)]], Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: [1, 2, 3, 4, 5]
    )
    start: HHMM = "09:00"
    end: HHMM = "18:00"
    #: Skip the tenant's holidays (``/v1/care/calendar``).
    holidays: bool = True


class CategoryIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$")]
    #: The name per locale: ``{"en": "Billing", "zh-CN": "账单"}``.
    names: Annotated[
        dict[Annotated[str, Meta(min_length=2, max_length=35)], Annotated[str, Meta(min_length=1, max_length=120)]],
        Meta(min_length=1, max_length=20),
    ]
    default_priority: Priority = "normal"
    first_reply_hours: Hours | None = None
    resolution_hours: Hours | None = None
    #: Count SLA hours only within these local hours (and outside holidays); null: round the clock.
    business_hours: BusinessHoursIn | None = None
    #: Who is told of a breach, beyond the ``case.sla_breached`` webhook (carried in its data).
    notify: Annotated[list[Annotated[str, Meta(min_length=1, max_length=120)]], Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )


class CategoryUpdate(msgspec.Struct, forbid_unknown_fields=True):
    names: (
        Annotated[
            dict[Annotated[str, Meta(min_length=2, max_length=35)], Annotated[str, Meta(min_length=1, max_length=120)]],
            Meta(min_length=1, max_length=20),
        ]
        | UnsetType
    ) = UNSET
    default_priority: Priority | UnsetType = UNSET
    first_reply_hours: Hours | UnsetType | None = UNSET
    resolution_hours: Hours | UnsetType | None = UNSET
    business_hours: BusinessHoursIn | UnsetType | None = UNSET
    notify: Annotated[list[Annotated[str, Meta(min_length=1, max_length=120)]], Meta(max_length=20)] | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class CategoryOut(msgspec.Struct):
    id: uuid.UUID
    code: str
    names: dict[str, str]
    default_priority: str
    first_reply_hours: float | None
    resolution_hours: float | None
    business_hours: dict[str, Any] | None
    notify: list[str]
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, row: CaseCategory) -> CategoryOut:
        def hours(minutes: int | None) -> float | None:
            return None if minutes is None else round(minutes / 60, 4)

        return cls(
            row.id,
            row.code,
            dict(row.names),
            row.default_priority,
            hours(row.first_reply_minutes),
            hours(row.resolution_minutes),
            row.business_hours,
            list(row.notify or []),
            row.active,
            row.created_at,
        )


def _business_hours(value: BusinessHoursIn | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if value.end <= value.start:
        raise ValidationFailed("business_hours.end must be after business_hours.start.", field="business_hours.end")
    return {"days": sorted(set(value.days)), "start": value.start, "end": value.end, "holidays": value.holidays}


async def _category(db: Db, category_id: uuid.UUID) -> CaseCategory:
    found: CaseCategory = await one_or_404(
        db, select(CaseCategory).where(CaseCategory.id == category_id), "No such case category.", field="category_id"
    )
    return found


class CaseCategoriesController(Controller):
    path = "/v1/case-categories"
    tags = ["cases"]
    opt = {"scope": "admin"}

    @post(operation_id="createCaseCategory", opt={"problems": (409,)})
    async def create(self, db: Db, principal: CurrentPrincipal, data: JSONBody[CategoryIn]) -> CategoryOut:
        """A kind of case with its default priority and SLA (hours to the first reply and to resolution)."""
        if not CODE.match(data.code):
            raise ValidationFailed("code: lower-case letters, digits, '.', '-' and '_'.", field="code")
        if (await db.execute(select(CaseCategory.id).where(CaseCategory.code == data.code))).first():
            raise Conflict("Another case category has this code.", field="code")
        now = utcnow()
        row = CaseCategory(
            tenant_id=principal.tenant_id,
            id=uuid.uuid4(),
            code=data.code,
            names=dict(data.names),
            default_priority=data.default_priority,
            first_reply_minutes=service.hours_to_minutes(data.first_reply_hours),
            resolution_minutes=service.hours_to_minutes(data.resolution_hours),
            business_hours=_business_hours(data.business_hours),
            notify=list(data.notify),
            active=True,
            created_at=now,
            updated_at=now,
        )
        db.add(row)
        await db.flush()
        return CategoryOut.of(row)

    @get(operation_id="listCaseCategories", opt={"scope": "members:read"})
    async def list_categories(self, db: Db) -> list[CategoryOut]:
        rows = (await db.execute(select(CaseCategory).order_by(CaseCategory.code))).scalars().all()
        return [CategoryOut.of(r) for r in rows]

    @get("/{category_id:uuid}", operation_id="getCaseCategory", opt={"scope": "members:read"})
    async def get_category(self, db: Db, category_id: FromPath[uuid.UUID]) -> CategoryOut:
        return CategoryOut.of(await _category(db, category_id))

    @patch("/{category_id:uuid}", operation_id="updateCaseCategory")
    async def update_category(
        self, db: Db, category_id: FromPath[uuid.UUID], data: JSONBody[CategoryUpdate]
    ) -> CategoryOut:
        """Change a category; open cases keep the due times they were given."""
        row = await _category(db, category_id)
        if not isinstance(data.names, UnsetType):
            row.names = dict(data.names)
        if not isinstance(data.default_priority, UnsetType):
            row.default_priority = data.default_priority
        if not isinstance(data.first_reply_hours, UnsetType):
            row.first_reply_minutes = service.hours_to_minutes(data.first_reply_hours)
        if not isinstance(data.resolution_hours, UnsetType):
            row.resolution_minutes = service.hours_to_minutes(data.resolution_hours)
        if not isinstance(data.business_hours, UnsetType):
            row.business_hours = _business_hours(data.business_hours)
        if not isinstance(data.notify, UnsetType):
            row.notify = list(data.notify)
        if not isinstance(data.active, UnsetType):
            row.active = data.active
        row.updated_at = utcnow()
        await db.flush()
        return CategoryOut.of(row)

    @delete("/{category_id:uuid}", operation_id="deleteCaseCategory", opt={"problems": (409,)})
    async def delete_category(self, db: Db, category_id: FromPath[uuid.UUID]) -> None:
        """Delete a category no case has; one that cases have is kept for the record (``PATCH {"active": false}``)."""
        row = await _category(db, category_id)
        if (await db.execute(select(Case.id).where(Case.category_id == row.id).limit(1))).first():
            raise Conflict("Cases have this category: deactivate it instead.", field="category_id")
        await db.delete(row)


# --- cases ------------------------------------------------------------------------------------------------------------


class AttachmentIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    url: Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"^(https?|s3)://")]
    content_type: Annotated[str, Meta(max_length=100)] | None = None


class RelatedIn(msgspec.Struct, forbid_unknown_fields=True):
    event_id: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    redemption_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    #: A plugin's object: ``utility.outage:7``, ``hotel.stay:123``.
    object: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class CaseIn(msgspec.Struct, forbid_unknown_fields=True):
    subject: Annotated[str, Meta(min_length=1, max_length=300)]
    kind: Kind = "complaint"
    channel: Channel = "web"
    description: Annotated[str, Meta(max_length=20000)] = ""
    member_id: uuid.UUID | None = None
    #: An unknown contact (phone, email or name), matched to a member later.
    contact: Annotated[str, Meta(min_length=1, max_length=320)] | None = None
    category: Annotated[str, Meta(min_length=1, max_length=40)] | None = None
    priority: Priority | None = None
    related: RelatedIn | None = None
    attachments: Annotated[list[AttachmentIn], Meta(max_length=20)] = msgspec.field(default_factory=list)
    #: When it was received, if earlier than now (a letter, a call logged later); SLA clocks start then.
    received_at: AwareDatetime | None = None


class CaseUpdate(msgspec.Struct, forbid_unknown_fields=True):
    #: Match an unknown contact to a member.
    member_id: uuid.UUID | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    subject: Annotated[str, Meta(min_length=1, max_length=300)] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=20000)] | UnsetType = UNSET
    attachments: Annotated[list[AttachmentIn], Meta(max_length=20)] | UnsetType = UNSET


class CaseOut(msgspec.Struct):
    id: uuid.UUID
    kind: str
    category: str | None
    status: str
    priority: str
    member_id: uuid.UUID | None
    contact: str | None
    channel: str
    subject: str
    description: str
    assignee: str | None
    related: dict[str, Any]
    attachments: list[dict[str, Any]]
    source: str
    opened_at: datetime
    first_reply_due_at: datetime | None
    resolution_due_at: datetime | None
    first_replied_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    #: Whether a clock ran out (first reply or resolution), and when each breach was recorded.
    breached: bool
    first_reply_breached_at: datetime | None
    resolution_breached_at: datetime | None
    resolution: dict[str, Any] | None
    goodwill: dict[str, Any] | None
    reopened: int
    #: What can be done next (``POST /v1/cases/{id}/{action}``).
    allowed_actions: list[str]
    updated_at: datetime

    @classmethod
    def of(cls, case: Case, category: str | None) -> CaseOut:
        return cls(
            case.id,
            case.kind,
            category,
            case.status,
            case.priority,
            case.member_id,
            case.contact,
            case.channel,
            case.subject,
            case.description,
            case.assignee,
            dict(case.related or {}),
            list(case.attachments or []),
            case.source,
            case.opened_at,
            case.first_reply_due_at,
            case.resolution_due_at,
            case.first_replied_at,
            case.resolved_at,
            case.closed_at,
            case.first_reply_breached_at is not None or case.resolution_breached_at is not None,
            case.first_reply_breached_at,
            case.resolution_breached_at,
            case.resolution,
            case.goodwill_given,
            case.reopened,
            workflow.allowed_actions(case.status),
            case.updated_at,
        )


class HistoryOut(msgspec.Struct):
    id: uuid.UUID
    action: str
    from_status: str | None
    to_status: str
    actor: str
    note: str | None
    details: dict[str, Any]
    at: datetime


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Note | None = None


class SaidIn(msgspec.Struct, forbid_unknown_fields=True):
    #: What was said to the member.
    note: Note


class ClassifyIn(msgspec.Struct, forbid_unknown_fields=True):
    category: Annotated[str, Meta(min_length=1, max_length=40)]
    priority: Priority | None = None
    note: Note | None = None


class AssignIn(msgspec.Struct, forbid_unknown_fields=True):
    assignee: Annotated[str, Meta(min_length=1, max_length=120)]
    note: Note | None = None


class GoodwillIn(msgspec.Struct, forbid_unknown_fields=True):
    points: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    reward_id: uuid.UUID | None = None


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    #: Why it happened.
    cause: Annotated[str, Meta(min_length=1, max_length=4000)]
    #: What changes so it does not happen again.
    prevention: Annotated[str, Meta(min_length=1, max_length=4000)]
    summary: Annotated[str, Meta(max_length=4000)] | None = None
    #: A goodwill gesture, given once per case through the ledger.
    goodwill: GoodwillIn | None = None
    note: Note | None = None


async def _out(db: Db, case: Case) -> CaseOut:
    return CaseOut.of(case, await service.category_code(db, case.category_id))


async def _reference_checks(db: Db, related: RelatedIn | None) -> dict[str, str]:
    if related is None:
        return {}
    from core.care.models import CareMessage
    from core.events.models import Event
    from core.rewards.models import Redemption

    if (
        related.event_id is not None
        and not (await db.execute(select(Event.id).where(Event.event_id == related.event_id))).first()
    ):
        raise ValidationFailed("No event has this event_id.", field="related.event_id")
    if (
        related.redemption_id is not None
        and not (await db.execute(select(Redemption.id).where(Redemption.id == related.redemption_id))).first()
    ):
        raise ValidationFailed("No such redemption.", field="related.redemption_id")
    if (
        related.message_id is not None
        and not (await db.execute(select(CareMessage.id).where(CareMessage.id == related.message_id))).first()
    ):
        raise ValidationFailed("No such message.", field="related.message_id")
    return {k: str(v) for k, v in msgspec.to_builtins(related).items() if v is not None}


class CasesController(Controller):
    path = "/v1/cases"
    tags = ["cases"]
    opt = {"scope": "members:write"}

    @post(operation_id="createCase")
    async def create(
        self, db: Db, principal: CurrentPrincipal, tenant_view: CurrentTenant, data: JSONBody[CaseIn]
    ) -> CaseOut:
        """Register a complaint, service request, question or compliment: received (classified when it has a
        category; its SLA clocks start at ``received_at``), routed by the plugins, announced as ``case.opened``."""
        now = utcnow()
        if data.received_at is not None and data.received_at > now:
            raise ValidationFailed("received_at is in the future.", field="received_at")
        if data.member_id is not None:
            await get_member(db, data.member_id)
        if data.member_id is None and data.contact is None:
            raise ValidationFailed("Give the member_id, or the contact of someone not yet a member.", field="member_id")
        related = await _reference_checks(db, data.related)
        case, _ = await service.open_case(
            db,
            tenant_view,
            now,
            member_id=data.member_id,
            subject=data.subject,
            source="api",
            kind=data.kind,
            description=data.description,
            category=data.category,
            priority=data.priority,
            channel=data.channel,
            related=related,
            actor=_actor(principal),
            contact=data.contact,
            attachments=[msgspec.to_builtins(a) for a in data.attachments],
            thread=f"member:{data.member_id}" if data.member_id else None,
            opened_at=data.received_at,
        )
        return await _out(db, case)

    @get(operation_id="listCases", opt={"scope": "members:read"})
    async def list_cases(
        self,
        db: Db,
        member_id: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[Status | None] = None,
        category: FromQuery[Annotated[str, Meta(min_length=1, max_length=40)] | None] = None,
        assignee: FromQuery[Annotated[str, Meta(min_length=1, max_length=120)] | None] = None,
        kind: FromQuery[Kind | None] = None,
        breached: FromQuery[bool | None] = None,
        since: FromQuery[AwareDatetime | None] = None,
        until: FromQuery[AwareDatetime | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[CaseOut]:
        """Search cases, newest first: by member, status, category, assignee, kind, breach (``breached=true``: a
        clock ran out) and time opened (``since`` inclusive, ``until`` exclusive)."""
        check_limit(limit)
        query = select(Case).order_by(Case.id.desc()).limit(limit + 1)
        if member_id is not None:
            query = query.where(Case.member_id == member_id)
        if status is not None:
            query = query.where(Case.status == status)
        if category is not None:
            query = query.where(
                exists().where(
                    and_(
                        CaseCategory.tenant_id == Case.tenant_id,
                        CaseCategory.id == Case.category_id,
                        CaseCategory.code == category,
                    )
                )
            )
        if assignee is not None:
            query = query.where(Case.assignee == assignee)
        if kind is not None:
            query = query.where(Case.kind == kind)
        if breached is not None:
            flagged = or_(Case.first_reply_breached_at.isnot(None), Case.resolution_breached_at.isnot(None))
            query = query.where(flagged if breached else ~flagged)
        if since is not None:
            query = query.where(Case.opened_at >= since)
        if until is not None:
            query = query.where(Case.opened_at < until)
        if cursor:
            query = query.where(Case.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        codes = {
            r.id: r.code
            for r in (
                await db.execute(
                    select(CaseCategory.id, CaseCategory.code).where(
                        CaseCategory.id.in_({c.category_id for c in items if c.category_id})
                    )
                )
            ).all()
        }
        return Page([CaseOut.of(c, codes.get(c.category_id) if c.category_id else None) for c in items], next_cursor)

    @get("/{case_id:uuid}", operation_id="getCase", opt={"scope": "members:read"})
    async def get_case(self, db: Db, case_id: FromPath[uuid.UUID]) -> CaseOut:
        return await _out(db, await service.get_case(db, case_id))

    @patch("/{case_id:uuid}", operation_id="updateCase")
    async def update_case(self, db: Db, case_id: FromPath[uuid.UUID], data: JSONBody[CaseUpdate]) -> CaseOut:
        """Match the contact to a member, change the priority, subject, description or attachments (the status
        changes only through the workflow's steps)."""
        case = await service.get_case(db, case_id, lock=True)
        if not isinstance(data.member_id, UnsetType):
            await get_member(db, data.member_id)
            case.member_id = data.member_id
        if not isinstance(data.priority, UnsetType):
            case.priority = data.priority
        if not isinstance(data.subject, UnsetType):
            case.subject = data.subject
        if not isinstance(data.description, UnsetType):
            case.description = data.description
        if not isinstance(data.attachments, UnsetType):
            case.attachments = [msgspec.to_builtins(a) for a in data.attachments]
        case.updated_at = utcnow()
        await db.flush()
        return await _out(db, case)

    @get("/{case_id:uuid}/history", operation_id="getCaseHistory", opt={"scope": "members:read"})
    async def history(self, db: Db, case_id: FromPath[uuid.UUID]) -> list[HistoryOut]:
        """Every step of the case, oldest first: action, from and to status, actor, note, details."""
        await service.get_case(db, case_id)
        rows = (
            await db.execute(
                select(CaseHistory).where(CaseHistory.case_id == case_id).order_by(CaseHistory.at, CaseHistory.id)
            )
        ).scalars()
        return [
            HistoryOut(r.id, r.action, r.from_status, r.to_status, r.actor, r.note, dict(r.details or {}), r.at)
            for r in rows
        ]

    async def _act(
        self,
        db: Db,
        principal: Principal,
        tenant_view: Any,
        case_id: uuid.UUID,
        action: service.Action,
        give: Any = None,
    ) -> CaseOut:
        case = await service.act(db, tenant_view, utcnow(), case_id, action, give_goodwill=give)
        return await _out(db, case)

    @post("/{case_id:uuid}/classify", operation_id="classifyCase", status_code=200, opt={"problems": (409,)})
    async def classify(
        self,
        db: Db,
        principal: CurrentPrincipal,
        tenant_view: CurrentTenant,
        case_id: FromPath[uuid.UUID],
        data: JSONBody[ClassifyIn],
    ) -> CaseOut:
        """Give the case its category (its SLA clocks from when it was received) and, optionally, a priority."""
        action = service.Action(
            "classify", _actor(principal), data.note, category=data.category, priority=data.priority
        )
        return await self._act(db, principal, tenant_view, case_id, action)

    @post("/{case_id:uuid}/assign", operation_id="assignCase", status_code=200, opt={"problems": (409,)})
    async def assign(
        self,
        db: Db,
        principal: CurrentPrincipal,
        tenant_view: CurrentTenant,
        case_id: FromPath[uuid.UUID],
        data: JSONBody[AssignIn],
    ) -> CaseOut:
        """Give the case to someone (again: reassign)."""
        action = service.Action("assign", _actor(principal), data.note, assignee=data.assignee)
        return await self._act(db, principal, tenant_view, case_id, action)

    @post("/{case_id:uuid}/investigate", operation_id="investigateCase", status_code=200, opt={"problems": (409,)})
    async def investigate(
        self,
        db: Db,
        principal: CurrentPrincipal,
        tenant_view: CurrentTenant,
        case_id: FromPath[uuid.UUID],
        data: JSONBody[NoteIn],
    ) -> CaseOut:
        """Start investigating."""
        return await self._act(
            db, principal, tenant_view, case_id, service.Action("investigate", _actor(principal), data.note)
        )

    @post("/{case_id:uuid}/resolve", operation_id="resolveCase", status_code=200, opt={"problems": (409,)})
    async def resolve(
        self,
        db: Db,
        principal: CurrentPrincipal,
        tenant_view: CurrentTenant,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        case_id: FromPath[uuid.UUID],
        data: JSONBody[ResolveIn],
    ) -> CaseOut:
        """Resolve it: the cause, the prevention, and an optional goodwill gesture (points, or a reward), given once
        per case through the ledger however often it is resolved."""
        now = utcnow()
        actor = _actor(principal)
        tenant_id = principal.tenant_id
        assert tenant_id is not None

        async def give(case: Case, goodwill: service.Goodwill) -> dict[str, Any]:
            if goodwill.points is not None:
                return await service.credit_goodwill(db, tenant_id, case, goodwill.points, actor=actor, now=now)
            from core.rewards import service as rewards

            assert goodwill.reward_id is not None and case.member_id is not None
            reward = await rewards.get_reward(db, goodwill.reward_id)
            credited = (
                await service.credit_goodwill(db, tenant_id, case, reward.points_cost, actor=actor, now=now)
                if reward.points_cost > 0
                else {}
            )
            outcome = await rewards.redeem(
                db,
                tenant_id=tenant_id,
                member_id=case.member_id,
                reward_id=reward.id,
                program=program,
                plugins=runtime.plugins,
                actor=actor,
                now=now,
            )
            return {**credited, "reward_id": str(reward.id), "redemption_id": str(outcome.redemption.id)}

        goodwill = (
            service.Goodwill(data.goodwill.points, data.goodwill.reward_id) if data.goodwill is not None else None
        )
        action = service.Action(
            "resolve",
            actor,
            data.note,
            cause=data.cause,
            prevention=data.prevention,
            summary=data.summary,
            goodwill=goodwill,
        )
        return await self._act(db, principal, tenant_view, case_id, action, give)

    @post("/{case_id:uuid}/respond", operation_id="respondToCase", status_code=200, opt={"problems": (409,)})
    async def respond(
        self,
        db: Db,
        principal: CurrentPrincipal,
        tenant_view: CurrentTenant,
        case_id: FromPath[uuid.UUID],
        data: JSONBody[SaidIn],
    ) -> CaseOut:
        """A word to the member before the resolution (stops the first-reply clock; the status stays)."""
        return await self._act(
            db, principal, tenant_view, case_id, service.Action("respond", _actor(principal), data.note)
        )

    @post("/{case_id:uuid}/reply", operation_id="replyToCase", status_code=200, opt={"problems": (409,)})
    async def reply(
        self,
        db: Db,
        principal: CurrentPrincipal,
        tenant_view: CurrentTenant,
        case_id: FromPath[uuid.UUID],
        data: JSONBody[SaidIn],
    ) -> CaseOut:
        """Tell the member the resolution."""
        return await self._act(
            db, principal, tenant_view, case_id, service.Action("reply", _actor(principal), data.note)
        )

    @post("/{case_id:uuid}/close", operation_id="closeCase", status_code=200, opt={"problems": (409,)})
    async def close(
        self,
        db: Db,
        principal: CurrentPrincipal,
        tenant_view: CurrentTenant,
        case_id: FromPath[uuid.UUID],
        data: JSONBody[NoteIn],
    ) -> CaseOut:
        """Close it (announced as ``case.closed``: the survey invitation's occasion)."""
        return await self._act(
            db, principal, tenant_view, case_id, service.Action("close", _actor(principal), data.note)
        )

    @post("/{case_id:uuid}/reopen", operation_id="reopenCase", status_code=200, opt={"problems": (409,)})
    async def reopen(
        self,
        db: Db,
        principal: CurrentPrincipal,
        tenant_view: CurrentTenant,
        case_id: FromPath[uuid.UUID],
        data: JSONBody[NoteIn],
    ) -> CaseOut:
        """Reopen a resolved, replied or closed case: back to investigating, its resolution clock started again."""
        return await self._act(
            db, principal, tenant_view, case_id, service.Action("reopen", _actor(principal), data.note)
        )


# --- inbound replies -----------------------------------------------------------------------------------------------


class ReplyIn(msgspec.Struct, forbid_unknown_fields=True):
    channel: Literal["sms", "email"]
    text: Annotated[str, Meta(min_length=1, max_length=4000)]
    #: The address it came from (phone for sms, email for email).
    address: Annotated[str, Meta(min_length=1, max_length=320)] | None = None
    member_id: uuid.UUID | None = None
    #: The care message it answers, when known (``/v1/messages``).
    message_id: uuid.UUID | None = None
    received_at: AwareDatetime | None = None


class ReplyOut(msgspec.Struct):
    id: uuid.UUID
    #: ``opted_out``, ``claimed`` (by a plugin), ``case_opened`` or ``case_threaded``.
    outcome: str
    member_ids: list[uuid.UUID]
    case_id: uuid.UUID | None
    claimed_by: str | None
    claim: dict[str, Any] | None


class RepliesController(Controller):
    path = "/v1/care/replies"
    tags = ["care"]

    @post(operation_id="receiveCareReply", status_code=200, opt={"scope": "members:write"})
    async def receive(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        tenant_view: CurrentTenant,
        data: JSONBody[ReplyIn],
    ) -> ReplyOut:
        """A member's reply to a message: STOP (and UNSUBSCRIBE, 退订, TD...) opts the member out at once; anything
        else is offered to the plugins, then joins the open case of its thread or opens one (category ``reply``)."""
        now = utcnow()
        if data.received_at is not None and data.received_at > now:
            raise ValidationFailed("received_at is in the future.", field="received_at")
        if data.address is None and data.member_id is None and data.message_id is None:
            raise ValidationFailed("Give the address, the member_id or the message_id.", field="address")
        address = None
        if data.address is not None:
            address = feedback.canonical(data.channel, data.address, program.country)
            if address is None:
                kind = "email address" if data.channel == "email" else "phone number"
                raise ValidationFailed(f"address is not a valid {kind}.", field="address")
        outcome = await replies.receive(
            db,
            tenant_view,
            now,
            channel=data.channel,
            text=data.text,
            address=address,
            member_id=data.member_id,
            message_id=data.message_id,
            received_at=data.received_at,
            actor=_actor(principal),
        )
        return ReplyOut(
            outcome.id, outcome.outcome, outcome.member_ids, outcome.case_id, outcome.claimed_by, outcome.claim
        )


CASE_ROUTES = [CaseCategoriesController, CasesController, RepliesController]
