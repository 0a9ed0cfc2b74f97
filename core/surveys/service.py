"""Surveys as use cases: check a definition, invite members (set-based, once per occasion, through the care engine),
record a response (once per invitation), and compute results (response rate, counts per level, each factor's
standardised value, NPS; by tier, segment or period) -- also in the form the AHP satisfaction index reads."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.errors import Conflict, LinkExpired, NotFound, ValidationFailed
from core.ids import new_id
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
        profile = await profiles(session, tenant_id, list({member_id for member_id, _ in batch}), now)
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
                            "tier": profile[member_id][0] if member_id in profile else None,
                            "segments": profile[member_id][1] if member_id in profile else [],
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


# --- campaigns: every member of a segment or a tier, a page at a time (the worker's ``surveys.campaign`` job) ---


@dataclass(frozen=True)
class Audience:
    """Who a campaign invites: the active members of a tier (its id) or of a segment (its code), now."""

    survey_id: uuid.UUID
    campaign: str
    segment: str | None = None
    tier_id: uuid.UUID | None = None

    def occasion(self, member_id: uuid.UUID) -> str:
        return f"campaign:{self.campaign}:{member_id}"


@dataclass(frozen=True)
class CampaignPage:
    #: Members looked at (the job's progress unit), the last of them (where the next page starts), None: no more.
    examined: int
    last: uuid.UUID | None
    #: Of them, in the audience; and invited now (the others were already invited by this campaign).
    matched: int
    invited: int
    #: The survey stopped inviting (closed or back to draft): the campaign ends here.
    stopped: bool = False


def _audience_members(audience: Audience) -> list[ColumnElement[bool]]:
    from core.members.models import Member

    where: list[ColumnElement[bool]] = [Member.status == "active"]
    if audience.tier_id is not None:
        where.append(Member.tier_id == audience.tier_id)
    return where


async def campaign_size(session: AsyncSession, audience: Audience) -> int:
    """How many members a campaign looks at (its progress total): the active members (of the tier)."""
    from core.members.models import Member

    query = select(func.count(Member.id)).where(*_audience_members(audience))
    return int((await session.execute(query)).scalar_one())


async def campaign_page(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    audience: Audience,
    *,
    after: uuid.UUID | None,
    size: int,
    now: datetime,
) -> CampaignPage:
    """One page of a campaign, in the caller's transaction: the next ``size`` active members (of the tier) in id order
    after ``after``, those of them in the segment (evaluated now, as segment listings do), each invited once per
    campaign (the invitations' unique key: a page run twice, or by two workers at once, invites nobody twice). A page
    is at most the segment scan's limit."""
    from core.members.models import Member
    from core.program.config import load_config
    from core.program.settings import load_program_settings
    from core.segments.service import SCAN_LIMIT, scan_segment, segment_spec

    survey = await get_survey(session, audience.survey_id)
    if survey.status != "active":
        return CampaignPage(0, None, 0, 0, stopped=True)
    where = _audience_members(audience)
    query = select(Member.id).where(*where).order_by(Member.id).limit(min(size, SCAN_LIMIT))
    if after is not None:
        query = query.where(Member.id > after)
    ids = list((await session.execute(query)).scalars().all())
    if not ids:
        return CampaignPage(0, None, 0, 0)
    members = ids
    if audience.segment is not None:
        program = await load_program_settings(session, tenant_id)
        config = await load_config(session, program.config_version)
        spec = await segment_spec(session, code=audience.segment)
        # The page's members are at most SCAN_LIMIT: one scan looks at every one of them.
        found, _ = await scan_segment(
            session, tenant_id, program, config, spec, after=after, limit=len(ids), where=[*where, Member.id <= ids[-1]]
        )
        members = [m.id for m in found]
    invited = await invite(session, tenant_id, survey, [(m, audience.occasion(m)) for m in members], now)
    return CampaignPage(len(ids), ids[-1], len(members), invited)


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
    tier: str | None = None
    segments: list[str] = []
    if member_id is not None:
        tier, segments = (await profiles(session, tenant_id, [member_id], now)).get(member_id, (None, []))
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
    return set((await profiles(session, tenant_id, [member_id], now)).get(member_id, (None, []))[1])


async def profiles(
    session: AsyncSession, tenant_id: uuid.UUID, member_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, tuple[str | None, list[str]]]:
    """Each member's tier (its code) and segments (sorted) now, for many members at once: what an invitation and a
    response record, so that results and response rates can be read by tier and segment. A fixed number of queries
    for the batch (the members, their metric sums and, when a segment reads them, their loyalty facts), evaluated as
    :func:`core.segments.service.scan_segment` does."""
    from core.ledger.models import PointBalance
    from core.measurement.facts import loyalty_facts, reads_loyalty
    from core.members.models import Member
    from core.program.config import load_config
    from core.program.settings import load_program_settings
    from core.qualification import service as metrics
    from core.segments.service import member_facts, metric_windows, segments_of

    if not member_ids:
        return {}
    program = await load_program_settings(session, tenant_id)
    config = await load_config(session, program.config_version)
    found = (
        await session.execute(
            select(Member, PointBalance.last_activity_at)
            .outerjoin(PointBalance, PointBalance.member_id == Member.id)
            .where(Member.id.in_(list(member_ids)))
        )
    ).all()
    out: dict[uuid.UUID, tuple[str | None, list[str]]] = {}
    if not config.segments:
        for member, _ in found:
            tier = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
            out[member.id] = (tier.code if tier else None, [])
        return out
    ids = [member.id for member, _ in found]
    windows = metric_windows(config.segments)
    sums = await metrics.sums(session, tenant_id, ids, windows, metrics.local_day(now, program.tz))
    needs_loyalty = reads_loyalty(c.field for spec in config.segments for c in spec.conditions)
    loyalty = await loyalty_facts(session, tenant_id, ids) if needs_loyalty else {}
    for member, last_activity in found:
        tier = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
        facts = member_facts(
            member,
            tier=tier,
            last_activity_at=last_activity,
            now=now,
            sums=sums.get(member.id, {}),
            loyalty=loyalty.get(member.id),
        )
        out[member.id] = (tier.code if tier else None, sorted(segments_of(config.segments, facts)))
    return out


# --- results ---


@dataclass
class Tally:
    """One group's counts, added up by the database."""

    responses: int = 0
    #: question -> level (1 = best) -> n
    questions: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    #: Answers to the 0-10 question: all, 9-10, 0-6.
    nps_answers: int = 0
    promoters: int = 0
    detractors: int = 0


@dataclass
class Invited:
    """One group's invitations (by the invitee's tier and segments when invited, or the period it was made in)."""

    invitations: int = 0
    answered: int = 0


def _period(at: datetime, zone: ZoneInfo, group_by: str) -> str:
    return _period_of(at.astimezone(zone).date(), group_by)


def _period_of(local: date, group_by: str) -> str:
    if group_by == "month":
        return f"{local:%Y-%m}"
    if group_by == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.isoformat()


def _text(value: str) -> ColumnElement[str]:
    """A constant written into the statement (not a parameter): the same group expression in SELECT and GROUP BY is
    then the same text, as PostgreSQL requires."""
    return literal(value, String, literal_execute=True)


@dataclass(frozen=True)
class _Grouping:
    """How a query groups rows: the SQL expression of the group (None: one group, ``program``), the FROM it needs
    (a segment list unnested), a filter, and how a database key becomes the group's name."""

    key: ColumnElement[Any] | None
    source: FromClause
    where: tuple[ColumnElement[bool], ...]
    name: Callable[[Any], str]


def _grouping(
    session: AsyncSession, table: Table, at: ColumnElement[datetime], group_by: str | None, zone: ZoneInfo
) -> _Grouping:
    """Group ``table``'s rows by tier, segment (one row per segment the row names; ``segment:none`` for none) or
    local period. PostgreSQL groups by the local day (``AT TIME ZONE``); SQLite, which has no time zones, groups by
    UTC quarter hour (every zone's midnight falls on one); the days or quarters are named (and folded into weeks or
    months) in Python: either way the database adds up the rows and only the group sums reach Python."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if group_by is None:
        return _Grouping(None, table, (), lambda _: "program")
    if group_by == "tier":
        key = func.coalesce(_text("tier:") + table.c.tier, _text("tier:none"))
        return _Grouping(key, table, (), str)
    if group_by == "segment":
        if postgres:
            elements = func.jsonb_array_elements_text(table.c.segments).table_valued(column("value", String)).lateral()
        else:
            elements = func.json_each(table.c.segments).table_valued(column("value", String))
        key = func.coalesce(_text("segment:") + elements.c.value, _text("segment:none"))
        return _Grouping(key, table.outerjoin(elements, true()), (table.c.segments.is_not(None),), str)
    if postgres:
        # The local day (a cheap date_trunc per row), named and folded into weeks or months from the few day sums.
        day = func.date_trunc(_text("day"), func.timezone(_text(zone.key), at))
        return _Grouping(day, table, (), lambda local: _period_of(local.date(), group_by))
    minute = cast(func.strftime(_text("%M"), at), Integer)
    hour = func.strftime(_text("%Y-%m-%dT%H:"), at, type_=String)
    quarter = hour + func.printf(_text("%02d:00"), minute // 15 * 15, type_=String)
    named: dict[str, str] = {}

    def name(bucket: Any) -> str:
        if bucket not in named:
            named[bucket] = _period(datetime.fromisoformat(str(bucket)).replace(tzinfo=UTC), zone, group_by)
        return named[bucket]

    return _Grouping(quarter, table, (), name)


def _response_filter(
    tenant_id: uuid.UUID, survey_ids: Sequence[uuid.UUID], since: datetime | None, until: datetime | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        responses.c.tenant_id == tenant_id,
        responses.c.survey_id.in_(list(survey_ids)),
    ]
    if since is not None:
        where.append(responses.c.submitted_at >= since)
    if until is not None:
        where.append(responses.c.submitted_at < until)
    return where


async def tallies(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_ids: Sequence[uuid.UUID],
    *,
    group_by: str | None,
    since: datetime | None,
    until: datetime | None,
    zone: ZoneInfo,
) -> dict[str, Tally]:
    """Counts per group: responses and NPS answers (one GROUP BY), answers per question and level (another); set-based,
    whatever the number of responses."""
    where = _response_filter(tenant_id, survey_ids, since, until)
    grouping = _grouping(session, responses, responses.c.submitted_at, group_by, zone)
    keys = [grouping.key] if grouping.key is not None else []
    found: dict[str, Tally] = defaultdict(Tally)
    nps = responses.c.nps
    counted = await session.execute(
        select(
            *keys,
            func.count(),
            func.count(nps),
            func.coalesce(func.sum(case((nps >= 9, 1), else_=0)), 0),
            func.coalesce(func.sum(case((nps <= 6, 1), else_=0)), 0),
        )
        .select_from(grouping.source)
        .where(*where, *grouping.where)
        .group_by(*keys)
    )
    for row in counted:
        if not row[-4]:
            continue  # no group at all (an aggregate without GROUP BY answers one row)
        tally = found[grouping.name(row[0] if keys else None)]
        tally.responses += int(row[-4])
        tally.nps_answers += int(row[-3])
        tally.promoters += int(row[-2])
        tally.detractors += int(row[-1])
    if not found:
        return {}
    if grouping.key is None and since is None and until is None:
        # The whole survey: the answers alone (they carry their survey), no join.
        source: FromClause = answers
        answer_where: list[ColumnElement[bool]] = [
            answers.c.tenant_id == tenant_id,
            answers.c.survey_id.in_(list(survey_ids)),
        ]
    else:
        source = grouping.source.join(
            answers, and_(answers.c.tenant_id == responses.c.tenant_id, answers.c.response_id == responses.c.id)
        )
        answer_where = [*where, *grouping.where, answers.c.survey_id.in_(list(survey_ids))]
    levels = await session.execute(
        select(*keys, answers.c.question, answers.c.level, func.count())
        .select_from(source)
        .where(*answer_where)
        .group_by(*keys, answers.c.question, answers.c.level)
    )
    for row in levels:
        name = grouping.name(row[0] if keys else None)
        found[name].questions[row.question][int(row.level)] += int(row[-1])
    return dict(found)


async def invitation_tallies(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_id: uuid.UUID,
    *,
    group_by: str | None,
    since: datetime | None,
    until: datetime | None,
    zone: ZoneInfo,
) -> dict[str, Invited]:
    """Invitations made in the period and how many of them were answered, per group: by the invitee's tier or
    segments when invited, or the local period the invitation was made in (one GROUP BY). A group's response rate is
    its answered invitations over its invitations."""
    where: list[ColumnElement[bool]] = [invitations.c.tenant_id == tenant_id, invitations.c.survey_id == survey_id]
    if since is not None:
        where.append(invitations.c.created_at >= since)
    if until is not None:
        where.append(invitations.c.created_at < until)
    grouping = _grouping(session, invitations, invitations.c.created_at, group_by, zone)
    keys = [grouping.key] if grouping.key is not None else []
    found: dict[str, Invited] = defaultdict(Invited)
    counted = await session.execute(
        select(*keys, func.count(), func.count(invitations.c.responded_at))
        .select_from(grouping.source)
        .where(*where, *grouping.where)
        .group_by(*keys)
    )
    for row in counted:
        if not row[-2]:
            continue
        group = found[grouping.name(row[0] if keys else None)]
        group.invitations += int(row[-2])
        group.answered += int(row[-1])
    return dict(found)


async def response_total(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survey_ids: Sequence[uuid.UUID],
    since: datetime | None,
    until: datetime | None,
) -> int:
    """Responses in the period (each once, whatever groups it falls in)."""
    where = _response_filter(tenant_id, survey_ids, since, until)
    return int((await session.execute(select(func.count()).select_from(responses).where(*where))).scalar_one())


def factor_values(definition: Definition, tally: Tally) -> dict[str, dict[str, Any]]:
    """Each factor's counts per level value and standardised value D (and how many answers it rests on), from the
    group's per-question counts (a few numbers per question, whatever the number of answers)."""
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
