"""Cases as use cases: open one (idempotently by reference, routed by the plugins, announced), and read it as a
:class:`~core.plugin.types.CaseView`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.care.calendar import holidays_in
from core.cases import sla, workflow
from core.cases.models import CASE_CHANNELS, Case, CaseCategory, CaseHistory
from core.db.base import table_of
from core.errors import Conflict, NotFound, ValidationFailed
from core.ids import new_id
from core.members.views import load_member_view
from core.outbox.service import emit
from core.plugin.manager import plugins_of
from core.plugin.types import CASE_KINDS, CASE_PRIORITIES, CaseView, MemberView, TenantView

cases = table_of(Case)


def case_view(case: Case, category: str | None) -> CaseView:
    return CaseView(
        id=case.id,
        kind=case.kind,
        category=category,
        status=case.status,
        priority=case.priority,
        member_id=case.member_id,
        channel=case.channel,
        subject=case.subject,
        description=case.description,
        assignee=case.assignee,
        related={str(k): str(v) for k, v in (case.related or {}).items()},
        source=case.source,
        reference=case.reference,
        opened_at=case.opened_at,
        first_reply_due_at=case.first_reply_due_at,
        resolution_due_at=case.resolution_due_at,
    )


async def category_by_code(session: AsyncSession, code: str, *, field: str = "category") -> CaseCategory:
    found = (await session.execute(select(CaseCategory).where(CaseCategory.code == code))).scalar_one_or_none()
    if found is None:
        raise ValidationFailed(f"No case category has the code '{code}'.", field=field)
    return found


async def category_code(session: AsyncSession, category_id: uuid.UUID | None) -> str | None:
    if category_id is None:
        return None
    code: str | None = (
        await session.execute(select(CaseCategory.code).where(CaseCategory.id == category_id))
    ).scalar_one_or_none()
    return code


async def _holidays(
    session: AsyncSession, tenant: TenantView, start: datetime, category: CaseCategory
) -> frozenset[date]:
    hours = sla.BusinessHours.of(category.business_hours)
    if hours is None or not hours.holidays:
        return frozenset()
    minutes = max(category.first_reply_minutes or 0, category.resolution_minutes or 0)
    years = sla.years_spanned(start, minutes, hours)
    return frozenset(h.day for h in await holidays_in(session, tenant.id, years, tenant.country))


async def due_times(
    session: AsyncSession, tenant: TenantView, category: CaseCategory, start: datetime, *, first_reply: bool = True
) -> tuple[datetime | None, datetime | None]:
    """The first-reply and resolution due times of a case of ``category`` whose clocks start at ``start``."""
    zone = ZoneInfo(tenant.timezone)
    hours = sla.BusinessHours.of(category.business_hours)
    holidays = await _holidays(session, tenant, start, category)

    def due(minutes: int | None) -> datetime | None:
        return None if minutes is None else sla.due_at(start, minutes, zone, hours, holidays)

    return (due(category.first_reply_minutes) if first_reply else None), due(category.resolution_minutes)


def add_history(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    case: Case,
    *,
    action: str,
    from_status: str | None,
    actor: str,
    note: str | None,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        CaseHistory(
            tenant_id=tenant_id,
            id=new_id(),
            case_id=case.id,
            action=action,
            from_status=from_status,
            to_status=case.status,
            actor=actor,
            note=note,
            details=details or {},
            at=at,
        )
    )


async def classify(
    session: AsyncSession, tenant: TenantView, case: Case, category: CaseCategory, *, keep_priority: bool
) -> None:
    """Give the case its category: the SLA clocks from its opening, and the category's default priority unless one
    was chosen."""
    case.category_id = category.id
    if not keep_priority:
        case.priority = category.default_priority
    first, resolution = await due_times(session, tenant, category, case.opened_at)
    if case.first_replied_at is None:
        case.first_reply_due_at = first
    if case.resolved_at is None:
        case.resolution_due_at = resolution


async def open_case(
    session: AsyncSession,
    tenant: TenantView,
    now: datetime,
    *,
    member_id: uuid.UUID | None,
    subject: str,
    source: str,
    kind: str = "complaint",
    description: str = "",
    category: str | None = None,
    priority: str | None = None,
    channel: str = "plugin",
    related: dict[str, str] | None = None,
    reference: str | None = None,
    actor: str | None = None,
    contact: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    thread: str | None = None,
    opened_at: datetime | None = None,
) -> tuple[Case, bool]:
    """Open a case: received (then classified when it has a category), routed by the plugins' ``fealty_route_case``
    (assigned when they name an assignee), announced as ``case.opened``. The same ``reference`` answers the case it
    opened first, with False."""
    if kind not in CASE_KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(CASE_KINDS)}.", field="kind")
    if priority is not None and priority not in CASE_PRIORITIES:
        raise ValidationFailed(f"priority must be one of {', '.join(CASE_PRIORITIES)}.", field="priority")
    if channel not in CASE_CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(CASE_CHANNELS)}.", field="channel")
    subject = subject.strip()
    if not subject or len(subject) > 300:
        raise ValidationFailed("subject must have 1 to 300 characters.", field="subject")
    if reference is not None and not 0 < len(reference) <= 200:
        raise ValidationFailed("reference must have 1 to 200 characters.", field="reference")
    if reference is not None:
        existing = (await session.execute(select(Case).where(Case.reference == reference))).scalar_one_or_none()
        if existing is not None:
            return existing, False
    member: MemberView | None = await load_member_view(session, member_id) if member_id is not None else None
    found_category = await category_by_code(session, category) if category is not None else None
    opened = opened_at or now
    case_id = new_id()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # The reference's unique index settles two openers racing with one reference: the second gets the first's case.
    inserted = await session.execute(
        dialect.insert(cases)
        .values(
            tenant_id=tenant.id,
            id=case_id,
            kind=kind,
            category_id=None,
            status="received",
            priority=priority or "normal",
            member_id=member_id,
            contact=contact,
            channel=channel,
            subject=subject,
            description=description,
            assignee=None,
            related=dict(related or {}),
            attachments=list(attachments or []),
            thread=thread,
            source=source,
            reference=reference,
            opened_at=opened,
            reopened=0,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "reference"], index_where=cases.c.reference.isnot(None))
        .returning(cases.c.id)
    )
    if inserted.first() is None:
        existing = (await session.execute(select(Case).where(Case.reference == reference))).scalar_one()
        return existing, False
    case = (await session.execute(select(Case).where(Case.id == case_id))).scalar_one()
    who = actor or source
    add_history(session, tenant.id, case, action="receive", from_status=None, actor=who, note=None, at=opened)
    if found_category is not None:
        await classify(session, tenant, case, found_category, keep_priority=priority is not None)
        case.status = "classified"
        add_history(
            session,
            tenant.id,
            case,
            action="classify",
            from_status="received",
            actor=who,
            note=None,
            at=opened,
            details={"category": found_category.code},
        )
    await _route(session, tenant, now, case, member, found_category)
    await session.flush()
    code = await category_code(session, case.category_id)
    await emit(session, tenant.id, "case.opened", case_payload(case, code), member_id)
    return case, True


async def _route(
    session: AsyncSession,
    tenant: TenantView,
    now: datetime,
    case: Case,
    member: MemberView | None,
    category: CaseCategory | None,
) -> None:
    manager = plugins_of(session)
    if manager is None:
        return
    hooks = manager.for_tenant(tenant.plugin_settings.keys())
    if not hooks.implements("fealty_route_case"):
        return
    await session.flush()
    routing = await hooks.route_case(tenant, case_view(case, category.code if category else None), member, session, now)
    if routing is None:
        return
    changes: dict[str, Any] = {}
    if routing.priority is not None:
        if routing.priority not in CASE_PRIORITIES:
            raise ValidationFailed(f"A plugin routed the case to an unknown priority '{routing.priority}'.")
        case.priority = routing.priority
        changes["priority"] = routing.priority
    if routing.category is not None and (category is None or routing.category != category.code):
        routed = await category_by_code(session, routing.category)
        await classify(session, tenant, case, routed, keep_priority=True)
        changes["category"] = routed.code
    if routing.assignee is not None:
        case.assignee = routing.assignee[:120]
        changes["assignee"] = case.assignee
    if not changes:
        return
    before = case.status
    if case.assignee is not None and case.category_id is not None:
        case.status = "assigned"
    elif case.category_id is not None:
        case.status = "classified"
    add_history(
        session,
        tenant.id,
        case,
        action="route",
        from_status=before,
        actor="routing",
        note=routing.note,
        at=now,
        details=changes,
    )


def case_payload(case: Case, category: str | None) -> dict[str, Any]:
    """What webhooks say of a case."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": str(case.id),
        "kind": case.kind,
        "category": category,
        "status": case.status,
        "priority": case.priority,
        "member_id": str(case.member_id) if case.member_id else None,
        "channel": case.channel,
        "subject": case.subject,
        "assignee": case.assignee,
        "related": case.related or {},
        "source": case.source,
        "opened_at": iso(case.opened_at),
        "first_reply_due_at": iso(case.first_reply_due_at),
        "resolution_due_at": iso(case.resolution_due_at),
    }


async def get_case(session: AsyncSession, case_id: uuid.UUID, *, lock: bool = False) -> Case:
    query = select(Case).where(Case.id == case_id)
    if lock:
        query = query.with_for_update()
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise NotFound("No case with this id.", field="case_id")
    return found


async def ensure_category(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    now: datetime,
    code: str,
    *,
    names: dict[str, str],
    first_reply_hours: float | None,
    resolution_hours: float | None,
    default_priority: str,
    business_hours: bool,
) -> bool:
    """Create the category unless the tenant has one with ``code`` (never overwrites); whether it did."""
    if default_priority not in CASE_PRIORITIES:
        raise ValidationFailed(
            f"default_priority must be one of {', '.join(CASE_PRIORITIES)}.", field="default_priority"
        )
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = table_of(CaseCategory)
    result = await session.execute(
        dialect.insert(table)
        .values(
            tenant_id=tenant_id,
            id=new_id(),
            code=code,
            names=dict(names),
            default_priority=default_priority,
            first_reply_minutes=hours_to_minutes(first_reply_hours),
            resolution_minutes=hours_to_minutes(resolution_hours),
            business_hours={"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00", "holidays": True}
            if business_hours
            else None,
            notify=[],
            active=True,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "code"])
        .returning(table.c.id)
    )
    return result.first() is not None


def hours_to_minutes(hours: float | None) -> int | None:
    return None if hours is None else max(1, round(hours * 60))


# --- the workflow -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goodwill:
    """A goodwill gesture with a resolution: points, or a reward (its points credited, then redeemed)."""

    points: int | None = None
    reward_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Action:
    """One step asked of a case, with what the step needs."""

    name: str
    actor: str
    note: str | None = None
    category: str | None = None
    priority: str | None = None
    assignee: str | None = None
    cause: str | None = None
    prevention: str | None = None
    summary: str | None = None
    goodwill: Goodwill | None = None


async def act(
    session: AsyncSession,
    tenant: TenantView,
    now: datetime,
    case_id: uuid.UUID,
    action: Action,
    *,
    give_goodwill: Callable[[Case, Goodwill], Awaitable[dict[str, Any]]] | None = None,
) -> Case:
    """Move a case one step (under its row lock): a 409 naming the allowed actions when the step is not allowed from
    its status; the step kept in the history; announced as ``case.<status>`` (``case.responded`` for a response)."""
    case = await get_case(session, case_id, lock=True)
    before = case.status
    after = workflow.next_status(before, action.name)
    if after is None:
        allowed = workflow.allowed_actions(before)
        raise Conflict(
            f"A case that is {before} cannot be {action.name}d; allowed: {', '.join(allowed) or 'none'}.",
            field="action",
            case_status=before,
            allowed=allowed,
        )
    details: dict[str, Any] = {}
    if action.name == "classify":
        if action.category is None:
            raise ValidationFailed("Name the case's category.", field="category")
        category = await category_by_code(session, action.category)
        if action.priority is not None:
            case.priority = action.priority
        await classify(session, tenant, case, category, keep_priority=action.priority is not None)
        details = {"category": category.code, "priority": case.priority}
    elif action.name == "assign":
        if not action.assignee:
            raise ValidationFailed("Name the assignee.", field="assignee")
        case.assignee = action.assignee
        details = {"assignee": action.assignee}
        if before == "investigating":
            after = "investigating"  # a new hand on a case under investigation keeps investigating it
    elif action.name == "resolve":
        if not action.cause or not action.prevention:
            raise ValidationFailed(
                "A resolution records the cause and the prevention (what changes so it does not happen again).",
                field="cause" if not action.cause else "prevention",
            )
        case.resolution = {"cause": action.cause, "prevention": action.prevention, "summary": action.summary}
        case.resolved_at = now
        details = {"cause": action.cause, "prevention": action.prevention}
        if action.goodwill is not None:
            details["goodwill"] = await _goodwill(case, action.goodwill, give_goodwill)
    elif action.name in ("reply", "respond"):
        if not action.note:
            raise ValidationFailed("Say what was replied to the member.", field="note")
        if case.first_replied_at is None:
            case.first_replied_at = now
    elif action.name == "close":
        case.closed_at = now
        if case.member_id is not None:
            await _closed_occasion(session, tenant, now, case)
    elif action.name == "reopen":
        case.reopened += 1
        case.resolved_at = None
        case.closed_at = None
        case.resolution_breached_at = None
        current = await _category(session, case.category_id)
        # The resolution clock starts again from the reopening.
        case.resolution_due_at = (
            (await due_times(session, tenant, current, now, first_reply=False))[1] if current else None
        )
    case.status = after
    case.updated_at = now
    add_history(
        session,
        tenant.id,
        case,
        action=action.name,
        from_status=before,
        actor=action.actor,
        note=action.note,
        at=now,
        details=details,
    )
    await session.flush()
    code = await category_code(session, case.category_id)
    kind = "case.responded" if action.name == "respond" else f"case.{after}"
    await emit(session, tenant.id, kind, {**case_payload(case, code), "action": action.name}, case.member_id)
    return case


async def _category(session: AsyncSession, category_id: uuid.UUID | None) -> CaseCategory | None:
    if category_id is None:
        return None
    found: CaseCategory | None = (
        await session.execute(select(CaseCategory).where(CaseCategory.id == category_id))
    ).scalar_one_or_none()
    return found


async def _goodwill(
    case: Case,
    goodwill: Goodwill,
    give: Callable[[Case, Goodwill], Awaitable[dict[str, Any]]] | None,
) -> dict[str, Any]:
    """Give the gesture once per case (the case row is locked: a second resolution, or a retry, finds it given)."""
    if case.goodwill_given is not None:
        return {**case.goodwill_given, "already_given": True}
    if case.member_id is None:
        raise ValidationFailed("A goodwill gesture needs the case's member.", field="goodwill")
    if (goodwill.points is None) == (goodwill.reward_id is None):
        raise ValidationFailed("Give goodwill points or a reward_id, not both.", field="goodwill")
    if give is None:
        raise ValidationFailed("No goodwill can be given here.", field="goodwill")
    given = await give(case, goodwill)
    case.goodwill_points = goodwill.points
    case.goodwill_reward_id = goodwill.reward_id
    case.goodwill_given = given
    return given


async def credit_goodwill(
    session: AsyncSession, tenant_id: uuid.UUID, case: Case, points: int, *, actor: str, now: datetime
) -> dict[str, Any]:
    """The gesture's points, through the ledger (an ``earn`` entry whose cause names the case)."""
    from core.ledger import service as ledger
    from core.ledger.policy import policy_of
    from core.program.settings import load_program_settings

    assert case.member_id is not None
    program = await load_program_settings(session, tenant_id)
    posted = await ledger.credit(
        session,
        tenant_id=tenant_id,
        member_id=case.member_id,
        points=points,
        kind="earn",
        cause=ledger.Cause("admin", id=f"case:{case.id}", reason="goodwill", actor=actor),
        policy=policy_of(program),
        now=now,
        details={"case_id": str(case.id)},
    )
    await emit(
        session,
        tenant_id,
        "points.earned",
        {
            "member_id": str(case.member_id),
            "points": points,
            "source": "case",
            "reason": "goodwill",
            "reference": f"case:{case.id}",
        },
        case.member_id,
    )
    return {"points": points, "entry_id": str(posted.entry_id)}


async def _closed_occasion(session: AsyncSession, tenant: TenantView, now: datetime, case: Case) -> None:
    """The care engine's ``case.closed`` occasion (once per closing: a reopened case closed again is another), and
    the invitations of the surveys that follow a closed case."""
    from core.care.service import request_care

    assert case.member_id is not None
    code = await category_code(session, case.category_id)
    await request_care(
        session,
        tenant_id=tenant.id,
        member_id=case.member_id,
        kind="case.closed",
        purpose="service",
        source="cases",
        dedupe_key=f"case.closed:{case.id}:{case.reopened}",
        payload={"case_id": str(case.id), "subject": case.subject, "category": code or "", "kind": case.kind},
        now=now,
    )
    from core.surveys.service import invite_after_case

    await invite_after_case(session, tenant.id, case.member_id, f"case.closed:{case.id}:{case.reopened}", code, now)
