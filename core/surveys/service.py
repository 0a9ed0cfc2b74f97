"""Surveys as use cases: check a definition, invite members (set-based, once per occasion, through the care engine),
record a response (once per invitation), and compute results (response rate, counts per level, each factor's
standardised value, NPS; by tier, segment or period) -- also in the form the AHP satisfaction index reads."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.errors import Conflict, LinkExpired, NotFound, ValidationFailed
from core.ids import new_id
from core.members.views import load_member_view
from core.surveys import results as maths
from core.surveys.links import response_url
from core.surveys.models import Survey, SurveyAnswer, SurveyInvitation, SurveyResponse

invitations = table_of(SurveyInvitation)
responses = table_of(SurveyResponse)
answers = table_of(SurveyAnswer)
GroupBy = Literal["tier", "segment", "month", "week", "day"]
INVITATION_TRIGGER = "survey.invitation"


# --- the definition ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    code: str
    text: str
    factor: str
    parent: str | None


@dataclass(frozen=True)
class Factor:
    code: str
    name: str
    parent: str | None
    #: The leaf factors whose answers it counts (itself for a leaf).
    leaves: tuple[str, ...]


@dataclass(frozen=True)
class Definition:
    factors: tuple[Factor, ...]
    questions: tuple[Question, ...]
    levels: tuple[tuple[str, str, Decimal], ...]

    @property
    def x_max(self) -> Decimal:
        return max(value for _, _, value in self.levels)

    def question(self, code: str) -> Question | None:
        return next((q for q in self.questions if q.code == code), None)


def definition_of(factors: Sequence[dict[str, Any]], levels: Sequence[dict[str, Any]]) -> Definition:
    """The survey's factor tree, questions and levels, checked: two levels of factors at most, codes unique, every
    leaf factor with questions, five levels with values best first."""
    found: list[Factor] = []
    questions: list[Question] = []
    seen: set[str] = set()

    def code_of(value: Any, path: str) -> str:
        code = str(value)
        if code in seen:
            raise ValidationFailed(f"The code '{code}' is used twice.", field=f"{path}.code")
        seen.add(code)
        return code

    def add_questions(items: Sequence[dict[str, Any]], factor: str, parent: str | None, path: str) -> None:
        if not items:
            raise ValidationFailed("A factor without sub-factors needs questions.", field=f"{path}.questions")
        for k, q in enumerate(items):
            questions.append(Question(code_of(q["code"], f"{path}.questions[{k}]"), str(q["text"]), factor, parent))

    for i, top in enumerate(factors):
        path = f"factors[{i}]"
        code = code_of(top["code"], path)
        subs = top.get("factors") or []
        if subs and top.get("questions"):
            raise ValidationFailed("A factor has sub-factors or questions, not both.", field=f"{path}.questions")
        if subs:
            leaves = []
            for j, sub in enumerate(subs):
                sub_path = f"{path}.factors[{j}]"
                if sub.get("factors"):
                    raise ValidationFailed("Factors go two levels deep at most.", field=f"{sub_path}.factors")
                sub_code = code_of(sub["code"], sub_path)
                add_questions(sub.get("questions") or [], sub_code, code, sub_path)
                found.append(Factor(sub_code, str(sub["name"]), code, (sub_code,)))
                leaves.append(sub_code)
            found.append(Factor(code, str(top["name"]), None, tuple(leaves)))
        else:
            add_questions(top.get("questions") or [], code, None, path)
            found.append(Factor(code, str(top["name"]), None, (code,)))
    if len(levels) != 5:
        raise ValidationFailed("A survey has five answer levels.", field="levels")
    values = [Decimal(str(level["value"])) for level in levels]
    if any(b > a for a, b in pairwise(values)) or values[0] <= 0:
        raise ValidationFailed("Level values go from the best (highest, above 0) down.", field="levels")
    keys = [str(level["key"]) for level in levels]
    if len(set(keys)) != 5:
        raise ValidationFailed("Level keys must differ.", field="levels")
    # Parents after their children above; list them parent first.
    order = {f.code: n for n, f in enumerate(found)}
    ordered = sorted(found, key=lambda f: (order[f.parent] if f.parent else order[f.code], f.parent is not None))
    return Definition(
        tuple(ordered),
        tuple(questions),
        tuple((keys[n], str(levels[n].get("label", keys[n])), values[n]) for n in range(5)),
    )


def survey_definition(survey: Survey) -> Definition:
    return definition_of(survey.factors, survey.levels)


async def get_survey(session: AsyncSession, survey_id: uuid.UUID) -> Survey:
    found = (await session.execute(select(Survey).where(Survey.id == survey_id))).scalar_one_or_none()
    if found is None:
        raise NotFound("No such survey.", field="survey_id")
    return found


# --- invitations ---


async def invite(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey: Survey,
    invitees: Sequence[tuple[uuid.UUID, str]],
    now: datetime,
) -> int:
    """Invite ``(member_id, occasion)`` pairs: one invitation per survey and occasion (a second copy is skipped by
    the unique key), each announced to the care engine as a ``survey.invitation`` occasion with its signed link;
    the tenant's care rules for that trigger send it (consent, quiet hours and caps apply). Returns how many were
    new."""
    if survey.status != "active":
        raise Conflict("Only an active survey invites.", field="status")
    if not invitees:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    expires = now + timedelta(days=survey.link_days)
    made = 0
    from core.care.messages import OccasionIn, raise_occasions

    for start in range(0, len(invitees), 1000):
        batch = invitees[start : start + 1000]
        rows = (
            await session.execute(
                dialect.insert(invitations)
                .values(
                    [
                        {
                            "tenant_id": tenant_id,
                            "id": new_id(),
                            "survey_id": survey.id,
                            "member_id": member_id,
                            "occasion": occasion[:250],
                            "created_at": now,
                            "expires_at": expires,
                            "responded_at": None,
                        }
                        for member_id, occasion in batch
                    ]
                )
                .on_conflict_do_nothing(index_elements=["tenant_id", "survey_id", "occasion"])
                .returning(invitations.c.id, invitations.c.member_id)
            )
        ).all()
        occasions = [
            OccasionIn(
                INVITATION_TRIGGER,
                f"{INVITATION_TRIGGER}:{row.id}",
                row.member_id,
                now,
                {
                    "survey_id": str(survey.id),
                    "survey_name": survey.name,
                    "survey_url": await response_url(session, tenant_id, row.id),
                    "expires_at": expires.isoformat(),
                    "invitation_id": str(row.id),
                },
                "surveys",
            )
            for row in rows
        ]
        await raise_occasions(session, tenant_id, occasions, now=now)
        made += len(rows)
    return made


async def invite_after_case(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    occasion: str,
    category: str | None,
    now: datetime,
) -> int:
    """Invite the member to every active survey that follows a closed case (of its category, when it names some)."""
    surveys = (await session.execute(select(Survey).where(Survey.status == "active"))).scalars().all()
    made = 0
    for survey in surveys:
        rule = survey.invite_on or {}
        if rule.get("trigger") != "case.closed":
            continue
        wanted = rule.get("categories") or []
        if wanted and category not in wanted:
            continue
        made += await invite(session, tenant_id, survey, [(member_id, occasion)], now)
    return made


async def invite_after_events(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> int:
    """Invite the members whose event of the survey's type happened ``days`` ago (once per event), for every active
    survey that follows events: one query per survey over the last two days' window."""
    from core.events.models import Event

    surveys = (await session.execute(select(Survey).where(Survey.status == "active"))).scalars().all()
    made = 0
    for survey in surveys:
        rule = survey.invite_on or {}
        if rule.get("trigger") != "event":
            continue
        due = now - timedelta(days=int(rule.get("days", 1)))
        found = (
            await session.execute(
                select(Event.member_id, Event.event_id).where(
                    Event.type == rule.get("event_type"),
                    Event.status == "awarded",
                    Event.member_id.isnot(None),
                    Event.occurred_at <= due,
                    Event.occurred_at > due - timedelta(days=2),
                )
            )
        ).all()
        made += await invite(session, tenant_id, survey, [(r.member_id, f"event:{r.event_id}") for r in found], now)
    return made


# --- responses ---


@dataclass(frozen=True)
class Answers:
    #: Question code -> level (its key, or 1..5 best first).
    levels: dict[str, str | int]
    nps: int | None = None
    comment: str | None = None


def _level(definition: Definition, question: str, given: str | int) -> tuple[int, Decimal]:
    keys = [key for key, _, _ in definition.levels]
    if isinstance(given, int) and not isinstance(given, bool) and 1 <= given <= 5:
        index = given - 1
    elif isinstance(given, str) and given in keys:
        index = keys.index(given)
    else:
        raise ValidationFailed(
            f"Answer with one of {', '.join(keys)} (or 1-5, best first).", field=f"answers.{question}"
        )
    return index + 1, definition.levels[index][2]


async def record(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey: Survey,
    given: Answers,
    now: datetime,
    *,
    member_id: uuid.UUID | None,
    invitation: SurveyInvitation | None,
    channel: str,
) -> uuid.UUID:
    """Record one response (all checks first: nothing is written for a bad answer). An invitation is used once,
    before it expires (one atomic update: of two answers at once, one is refused)."""
    definition = survey_definition(survey)
    if survey.status != "active":
        raise Conflict("This survey is not open for answers.", field="survey_id")
    if not given.levels:
        raise ValidationFailed("Answer at least one question.", field="answers")
    rows = []
    for code, level in given.levels.items():
        question = definition.question(code)
        if question is None:
            raise ValidationFailed(f"'{code}' is not a question of this survey.", field=f"answers.{code}")
        rows.append((question, *_level(definition, code, level)))
    if given.nps is not None and survey.nps_question is None:
        raise ValidationFailed("This survey does not ask the recommendation question.", field="nps")
    if given.nps is not None and not 0 <= given.nps <= 10:
        raise ValidationFailed("nps is 0 to 10.", field="nps")
    if given.comment and not survey.allow_comment:
        raise ValidationFailed("This survey takes no comment.", field="comment")
    if invitation is not None:
        used = await session.execute(
            update(invitations)
            .where(
                invitations.c.tenant_id == tenant_id,
                invitations.c.id == invitation.id,
                invitations.c.responded_at.is_(None),
                invitations.c.expires_at > now,
            )
            .values(responded_at=now)
            .returning(invitations.c.id)
        )
        if used.first() is None:
            if invitation.responded_at is not None or invitation.expires_at > now:
                raise Conflict("This survey was already answered with this link: thank you.", field="token")
            raise LinkExpired("This survey link has expired.", field="token")
        member_id = invitation.member_id
    tier, segments = None, []
    if member_id is not None:
        view = await load_member_view(session, member_id)
        tier, segments = view.tier, sorted(await member_segments(session, tenant_id, member_id, now))
    response_id = new_id()
    session.add(
        SurveyResponse(
            tenant_id=tenant_id,
            id=response_id,
            survey_id=survey.id,
            invitation_id=invitation.id if invitation else None,
            member_id=member_id,
            channel=channel,
            nps=given.nps,
            comment=(given.comment or None) and given.comment[:4000],
            tier=tier,
            segments=segments,
            submitted_at=now,
        )
    )
    await session.flush()
    await session.execute(
        answers.insert(),
        [
            {
                "tenant_id": tenant_id,
                "response_id": response_id,
                "question": q.code,
                "survey_id": survey.id,
                "factor": q.factor,
                "parent_factor": q.parent,
                "level": level,
                "value": value,
            }
            for q, level, value in rows
        ],
    )
    return response_id


async def member_segments(session: AsyncSession, tenant_id: uuid.UUID, member_id: uuid.UUID, now: datetime) -> set[str]:
    """The tenant's segments the member is in now (core's segment rules, as events and care evaluate them)."""
    from core.ledger.models import PointBalance
    from core.members.models import Member
    from core.program.config import load_config
    from core.program.settings import load_program_settings
    from core.qualification import service as metrics
    from core.segments.service import member_facts, metric_windows, segments_of

    program = await load_program_settings(session, tenant_id)
    config = await load_config(session, program.config_version)
    if not config.segments:
        return set()
    member = (await session.execute(select(Member).where(Member.id == member_id))).scalar_one()
    last = (
        await session.execute(select(PointBalance.last_activity_at).where(PointBalance.member_id == member_id))
    ).scalar_one_or_none()
    windows = metric_windows(config.segments)
    sums = await metrics.sums(session, tenant_id, [member_id], windows, metrics.local_day(now, program.tz))
    facts = member_facts(
        tier=config.tiers_by_id.get(member.tier_id) if member.tier_id else None,
        attributes=member.attributes,
        locale=member.locale,
        timezone=member.timezone,
        enrolled_at=member.created_at,
        last_activity_at=last,
        birthday=member.birthday,
        now=now,
        sums=sums.get(member_id, {}),
    )
    return segments_of(config.segments, facts)


# --- results ---


@dataclass
class _Tally:
    responses: set[uuid.UUID] = field(default_factory=set)
    #: question -> level -> n
    questions: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    nps: list[int] = field(default_factory=list)


def _period(at: datetime, zone: ZoneInfo, group_by: str) -> str:
    local = at.astimezone(zone).date()
    if group_by == "month":
        return f"{local:%Y-%m}"
    if group_by == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.isoformat()


def _groups(row: Any, group_by: str | None, zone: ZoneInfo) -> Iterable[str]:
    if group_by is None:
        return ("program",)
    if group_by == "tier":
        return (f"tier:{row.tier}" if row.tier else "tier:none",)
    if group_by == "segment":
        return [f"segment:{s}" for s in row.segments or []] or ["segment:none"]
    return (_period(row.submitted_at, zone, group_by),)


async def tallies(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_ids: Sequence[uuid.UUID],
    *,
    group_by: str | None,
    since: datetime | None,
    until: datetime | None,
    zone: ZoneInfo,
) -> dict[str, _Tally]:
    """Counts per group: responses, answers per question and level, NPS answers. Two queries, whatever the size."""
    where: list[ColumnElement[bool]] = [
        responses.c.tenant_id == tenant_id,
        responses.c.survey_id.in_(list(survey_ids)),
    ]
    if since is not None:
        where.append(responses.c.submitted_at >= since)
    if until is not None:
        where.append(responses.c.submitted_at < until)
    found: dict[str, _Tally] = defaultdict(_Tally)
    meta: dict[uuid.UUID, list[str]] = {}
    listed = await session.execute(
        select(responses.c.id, responses.c.tier, responses.c.segments, responses.c.submitted_at, responses.c.nps).where(
            *where
        )
    )
    for row in listed:
        keys = list(_groups(row, group_by, zone))
        meta[row.id] = keys
        for key in keys:
            found[key].responses.add(row.id)
            if row.nps is not None:
                found[key].nps.append(row.nps)
    counted = await session.execute(
        select(answers.c.response_id, answers.c.question, answers.c.level)
        .select_from(
            answers.join(
                responses, and_(responses.c.tenant_id == answers.c.tenant_id, responses.c.id == answers.c.response_id)
            )
        )
        .where(*where)
    )
    for answer in counted:
        for key in meta.get(answer.response_id, ()):
            found[key].questions[answer.question][answer.level] += 1
    return dict(found)


def factor_values(definition: Definition, tally: _Tally) -> dict[str, dict[str, Any]]:
    """Each factor's counts per level value and standardised value D (and how many answers it rests on)."""
    by_factor: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for q in definition.questions:
        for level, n in tally.questions.get(q.code, {}).items():
            by_factor[q.factor][level] += n
    out = {}
    for f in definition.factors:
        counts: dict[int, int] = defaultdict(int)
        for leaf in f.leaves:
            for level, n in by_factor.get(leaf, {}).items():
                counts[level] += n
        by_value: dict[Decimal, int] = defaultdict(int)
        for level, n in counts.items():
            by_value[definition.levels[level - 1][2]] += n
        out[f.code] = {
            "counts": {definition.levels[i][0]: counts.get(i + 1, 0) for i in range(5)},
            "answers": sum(counts.values()),
            "standardised": maths.standardised(by_value, definition.x_max),
        }
    return out


async def response_counts(
    session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID, since: datetime | None, until: datetime | None
) -> tuple[int, int]:
    """Invitations made in the period, and how many of them were answered."""
    where: list[ColumnElement[bool]] = [invitations.c.tenant_id == tenant_id, invitations.c.survey_id == survey_id]
    if since is not None:
        where.append(invitations.c.created_at >= since)
    if until is not None:
        where.append(invitations.c.created_at < until)
    row = (
        await session.execute(
            select(func.count(), func.count(invitations.c.responded_at)).select_from(invitations).where(*where)
        )
    ).one()
    return int(row[0]), int(row[1])
