"""HTTP: satisfaction surveys (``/v1/surveys``): define, invite, answer (the tenant's own form, or the signed link's
small HTML form that works without JavaScript: ``GET``/``POST /v1/surveys/respond?token=...``, no API key), and read
the results."""

from __future__ import annotations

import html
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, cast
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select

from core.care.optouts import link_secret
from core.clock import utcnow
from core.db.engine import tenant_session
from core.errors import Conflict, FealtyError, InvalidLink, ValidationFailed
from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.jobs.api import JobOut, accepted, get_task
from core.jobs.queue import start_task
from core.members.models import Member
from core.members.service import get_member
from core.program.settings import ProgramSettings
from core.runtime import Runtime
from core.surveys import jobs as survey_jobs
from core.surveys import links, service
from core.surveys import results as maths
from core.surveys.models import Survey, SurveyInvitation, SurveyResponse
from core.validation import AwareDatetime

AnyRequest = Request[Any, Any, Any]
CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
Code = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]


class QuestionIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    text: Annotated[str, Meta(min_length=1, max_length=500)]


class SubFactorIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    questions: Annotated[list[QuestionIn], Meta(min_length=1, max_length=30)]


class FactorIn(msgspec.Struct, forbid_unknown_fields=True):
    """A first-level factor: sub-factors with their questions (e.g. service quality -> reliability, speed), or its
    own questions."""

    code: Code
    name: Name
    factors: Annotated[list[SubFactorIn], Meta(max_length=15)] = msgspec.field(default_factory=list)
    questions: Annotated[list[QuestionIn], Meta(max_length=30)] = msgspec.field(default_factory=list)


class LevelIn(msgspec.Struct, forbid_unknown_fields=True):
    key: Code
    label: Annotated[str, Meta(min_length=1, max_length=80)]
    value: Annotated[float, Meta(ge=0, le=1000)]


class InviteOnIn(msgspec.Struct, forbid_unknown_fields=True):
    #: ``case.closed``: a member's case was closed (of these categories, when given); ``event``: ``days`` after an
    #: event of ``event_type``.
    trigger: Literal["case.closed", "event"]
    categories: Annotated[list[Code], Meta(max_length=20)] = msgspec.field(default_factory=list)
    event_type: Annotated[str, Meta(min_length=1, max_length=80)] | None = None
    days: Annotated[int, Meta(ge=0, le=365)] = 1


def _default_levels() -> list[LevelIn]:
    return [LevelIn(key, label, float(value)) for key, label, value in maths.DEFAULT_LEVELS]


class SurveyIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    factors: Annotated[list[FactorIn], Meta(min_length=1, max_length=15)]
    intro: Annotated[str, Meta(max_length=2000)] | None = None
    #: Five levels, best first; default very satisfied 100, satisfied 75, neutral 50, dissatisfied 25, very
    #: dissatisfied 0.
    levels: Annotated[list[LevelIn], Meta(min_length=5, max_length=5)] = msgspec.field(default_factory=_default_levels)
    #: Ask "how likely are you to recommend us" (0-10) with this text.
    nps_question: Annotated[str, Meta(min_length=1, max_length=500)] | None = None
    allow_comment: bool = True
    invite_on: InviteOnIn | None = None
    #: How long an invitation's link works.
    link_days: Annotated[int, Meta(ge=1, le=365)] = 30
    status: Literal["draft", "active"] = "draft"


class SurveyUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    intro: Annotated[str, Meta(max_length=2000)] | UnsetType | None = UNSET
    #: Only while no one answered.
    factors: Annotated[list[FactorIn], Meta(min_length=1, max_length=15)] | UnsetType = UNSET
    levels: Annotated[list[LevelIn], Meta(min_length=5, max_length=5)] | UnsetType = UNSET
    nps_question: Annotated[str, Meta(min_length=1, max_length=500)] | UnsetType | None = UNSET
    allow_comment: bool | UnsetType = UNSET
    invite_on: InviteOnIn | UnsetType | None = UNSET
    link_days: Annotated[int, Meta(ge=1, le=365)] | UnsetType = UNSET
    status: Literal["draft", "active", "closed"] | UnsetType = UNSET


class SurveyOut(msgspec.Struct):
    id: uuid.UUID
    code: str
    name: str
    intro: str | None
    factors: list[dict[str, Any]]
    levels: list[dict[str, Any]]
    nps_question: str | None
    allow_comment: bool
    invite_on: dict[str, Any] | None
    link_days: int
    status: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: Survey) -> SurveyOut:
        return cls(
            s.id,
            s.code,
            s.name,
            s.intro,
            list(s.factors),
            list(s.levels),
            s.nps_question,
            s.allow_comment,
            s.invite_on,
            s.link_days,
            s.status,
            s.created_at,
            s.updated_at,
        )


def _plain(value: Decimal) -> str:
    """``100.00`` -> ``100``, ``7.50`` -> ``7.5`` (never ``1E+2``)."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _levels(levels: list[LevelIn]) -> list[dict[str, Any]]:
    return [
        {"key": lv.key, "label": lv.label, "value": _plain(Decimal(str(lv.value)).quantize(Decimal("0.01")))}
        for lv in levels
    ]


def _invite_on(value: InviteOnIn | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if value.trigger == "event" and not value.event_type:
        raise ValidationFailed("An event trigger names its event_type.", field="invite_on.event_type")
    built: dict[str, Any] = msgspec.to_builtins(value)
    return built


def _checked(factors: list[FactorIn], levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stored = msgspec.to_builtins(factors)
    service.definition_of(stored, levels)
    return list(stored)


async def _survey(db: Db, survey_id: uuid.UUID) -> Survey:
    return await service.get_survey(db, survey_id)


class InvitationsIn(msgspec.Struct, forbid_unknown_fields=True):
    """Invite members (a campaign): by id (now), or every active member of a segment or a tier (a job). ``campaign``
    names the occasion: the same campaign never invites a member twice."""

    campaign: Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")]
    member_ids: Annotated[list[uuid.UUID], Meta(max_length=1000)] = msgspec.field(default_factory=list)
    segment: Code | None = None
    tier: Code | None = None


class InvitationsOut(msgspec.Struct):
    invited: int
    #: Already invited by this campaign.
    skipped: int


class InvitationOut(msgspec.Struct):
    id: uuid.UUID
    member_id: uuid.UUID
    #: Why: ``case.closed:<case>:<n>``, ``event:<event id>``, ``campaign:<name>:<member>``.
    occasion: str
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None


class ResponseIn(msgspec.Struct, forbid_unknown_fields=True):
    #: Question code -> level key (``satisfied``) or 1-5 (best first).
    answers: Annotated[dict[Code, str | Annotated[int, Meta(ge=1, le=5)]], Meta(min_length=1, max_length=200)]
    member_id: uuid.UUID | None = None
    #: Answer an invitation (once, before it expires) instead of naming the member.
    invitation_id: uuid.UUID | None = None
    nps: Annotated[int, Meta(ge=0, le=10)] | None = None
    comment: Annotated[str, Meta(max_length=4000)] | None = None


class ResponseOut(msgspec.Struct):
    id: uuid.UUID
    survey_id: uuid.UUID
    member_id: uuid.UUID | None
    submitted_at: datetime


class LevelCount(msgspec.Struct):
    key: str
    value: Decimal
    count: int


class QuestionResult(msgspec.Struct):
    code: str
    text: str
    factor: str
    answers: int
    counts: list[LevelCount]
    standardised: Decimal | None


class FactorResult(msgspec.Struct):
    code: str
    name: str
    #: The first-level factor above it (None: it is one).
    parent: str | None
    answers: int
    counts: list[LevelCount]
    #: D = 100 x sum(level value x answers at it) / (highest level value x answers).
    standardised: Decimal | None


class NpsResult(msgspec.Struct):
    score: Decimal | None
    answers: int
    promoters: int
    passives: int
    detractors: int


class GroupResult(msgspec.Struct):
    #: ``program``, ``tier:gold``, ``segment:regulars``, ``2026-11``, ``2026-W48``, ``2026-11-30``.
    group: str
    responses: int
    questions: list[QuestionResult]
    factors: list[FactorResult]
    nps: NpsResult | None
    #: The tenant's active satisfaction model (AHP) over these factor values, when it has one.
    satisfaction_index: Decimal | None
    satisfaction_coverage: Decimal | None
    #: The group's invitations made in the period: to members of this tier or segment when invited, or made in this
    #: period; and how many of them were answered.
    invitations: int
    answered_invitations: int
    #: answered_invitations / invitations (null without invitations).
    response_rate: Decimal | None


class ResultsOut(msgspec.Struct):
    survey_id: uuid.UUID
    invitations: int
    answered_invitations: int
    #: Answered invitations / invitations sent in the period.
    response_rate: Decimal | None
    responses: int
    levels: list[dict[str, Any]]
    group_by: str | None
    groups: list[GroupResult]
    satisfaction_model: str | None


def _counts(definition: service.Definition, counts: dict[str, int]) -> list[LevelCount]:
    return [LevelCount(key, value, counts.get(key, 0)) for key, _, value in definition.levels]


async def results_of(
    db: Db,
    survey: Survey,
    program: ProgramSettings,
    *,
    group_by: str | None,
    since: datetime | None,
    until: datetime | None,
) -> ResultsOut:
    from core.measurement.satisfaction import active_index

    definition = service.survey_definition(survey)
    zone = ZoneInfo(program.timezone)
    tallies = await service.tallies(
        db, survey.tenant_id, [survey.id], group_by=group_by, since=since, until=until, zone=zone
    )
    invited_by = await service.invitation_tallies(
        db, survey.tenant_id, survey.id, group_by=group_by, since=since, until=until, zone=zone
    )
    invited, answered = await service.response_counts(db, survey.tenant_id, survey.id, since, until)
    groups = []
    index = await active_index(db)
    for key in sorted(set(tallies) | set(invited_by)):
        tally = tallies.get(key) or service.Tally()
        sent = invited_by.get(key) or service.Invited()
        by_factor = service.factor_values(definition, tally)
        questions = []
        for q in definition.questions:
            levels = tally.questions.get(q.code, {})
            by_value = {definition.levels[lv - 1][2]: n for lv, n in levels.items()}
            questions.append(
                QuestionResult(
                    q.code,
                    q.text,
                    q.factor,
                    sum(levels.values()),
                    [
                        LevelCount(definition.levels[i][0], definition.levels[i][2], levels.get(i + 1, 0))
                        for i in range(5)
                    ],
                    maths.standardised(by_value, definition.x_max),
                )
            )
        factors = [
            FactorResult(
                f.code,
                f.name,
                f.parent,
                by_factor[f.code]["answers"],
                _counts(definition, by_factor[f.code]["counts"]),
                by_factor[f.code]["standardised"],
            )
            for f in definition.factors
        ]
        nps = None
        if survey.nps_question is not None:
            scored, promoters, detractors = tally.nps_answers, tally.promoters, tally.detractors
            nps = NpsResult(
                maths.nps_of(promoters, scored - promoters - detractors, detractors),
                scored,
                promoters,
                scored - promoters - detractors,
                detractors,
            )
        sat, coverage = (None, None)
        if index is not None:
            sat, coverage = index.score({code: (v["standardised"], v["answers"]) for code, v in by_factor.items()})
        groups.append(
            GroupResult(
                key,
                tally.responses,
                questions,
                factors,
                nps,
                sat,
                coverage,
                sent.invitations,
                sent.answered,
                maths.rate(sent.answered, sent.invitations),
            )
        )
    total = await service.response_total(db, survey.tenant_id, [survey.id], since, until) if tallies else 0
    return ResultsOut(
        survey.id,
        invited,
        answered,
        maths.rate(answered, invited),
        total,
        list(survey.levels),
        group_by,
        groups,
        index.code if index is not None else None,
    )


class SurveysController(Controller):
    path = "/v1/surveys"
    tags = ["surveys"]
    opt = {"scope": "admin"}

    @post(operation_id="createSurvey", opt={"problems": (409,)})
    async def create(self, db: Db, principal: CurrentPrincipal, data: JSONBody[SurveyIn]) -> SurveyOut:
        """A survey: questions grouped by factor (two levels), five answer levels with their values, an optional
        recommendation question, and what invites members by itself (a closed case, N days after an event)."""
        if (await db.execute(select(Survey.id).where(Survey.code == data.code))).first():
            raise Conflict("Another survey has this code.", field="code")
        levels = _levels(data.levels)
        now = utcnow()
        survey = Survey(
            tenant_id=principal.tenant_id,
            id=uuid.uuid4(),
            code=data.code,
            name=data.name,
            intro=data.intro,
            factors=_checked(data.factors, levels),
            levels=levels,
            nps_question=data.nps_question,
            allow_comment=data.allow_comment,
            invite_on=_invite_on(data.invite_on),
            link_days=data.link_days,
            status=data.status,
            created_at=now,
            updated_at=now,
        )
        db.add(survey)
        await db.flush()
        return SurveyOut.of(survey)

    @get(operation_id="listSurveys", opt={"scope": "reports:read"})
    async def list_surveys(self, db: Db) -> list[SurveyOut]:
        rows = (await db.execute(select(Survey).order_by(Survey.created_at, Survey.id))).scalars()
        return [SurveyOut.of(s) for s in rows]

    @get("/{survey_id:uuid}", operation_id="getSurvey", opt={"scope": "reports:read"})
    async def get_survey(self, db: Db, survey_id: FromPath[uuid.UUID]) -> SurveyOut:
        return SurveyOut.of(await _survey(db, survey_id))

    @patch("/{survey_id:uuid}", operation_id="updateSurvey", opt={"problems": (409,)})
    async def update_survey(self, db: Db, survey_id: FromPath[uuid.UUID], data: JSONBody[SurveyUpdate]) -> SurveyOut:
        """Change a survey; its questions and level values only while no one has answered (results stay
        comparable). ``status``: ``active`` opens it, ``closed`` ends it."""
        survey = await _survey(db, survey_id)
        answered = (
            await db.execute(select(SurveyResponse.id).where(SurveyResponse.survey_id == survey.id).limit(1))
        ).first() is not None
        if answered and not (isinstance(data.factors, UnsetType) and isinstance(data.levels, UnsetType)):
            raise Conflict("Members have answered: the questions and levels can no longer change.", field="factors")
        levels = survey.levels if isinstance(data.levels, UnsetType) else _levels(data.levels)
        if not isinstance(data.factors, UnsetType) or not isinstance(data.levels, UnsetType):
            factors = survey.factors if isinstance(data.factors, UnsetType) else msgspec.to_builtins(data.factors)
            service.definition_of(factors, levels)
            survey.factors, survey.levels = list(factors), levels
        for name in ("name", "intro", "nps_question", "allow_comment", "link_days", "status"):
            value = getattr(data, name)
            if not isinstance(value, UnsetType):
                setattr(survey, name, value)
        if not isinstance(data.invite_on, UnsetType):
            survey.invite_on = _invite_on(data.invite_on)
        survey.updated_at = utcnow()
        await db.flush()
        return SurveyOut.of(survey)

    @post(
        "/{survey_id:uuid}/invitations",
        operation_id="inviteToSurvey",
        status_code=200,
        responses={
            202: ResponseSpec(data_container=JobOut, description="A campaign to a segment or a tier, queued as a job")
        },
        opt={"problems": (409,)},
    )
    async def invitations(
        self,
        db: Db,
        principal: CurrentPrincipal,
        survey_id: FromPath[uuid.UUID],
        data: JSONBody[InvitationsIn],
    ) -> Response[InvitationsOut]:
        """Invite members, each once per campaign, through the care engine: every invitation is a
        ``survey.invitation`` occasion with its signed single-use link (``survey_url``); the tenant's care rules
        for that trigger say how it goes out (email or SMS, protected like every message).

        ``member_ids`` (up to 1,000) are invited now: the answer (200) counts them. A ``segment`` or a ``tier`` (any
        number of members) is a job: the answer is 202 with it (``Location: /v1/jobs/{id}``), and the worker
        invites the segment's (or tier's) active members a page at a time; follow its progress (members looked at,
        of the active members) and result (``invited``, ``skipped``: already invited by this campaign) at
        ``GET /v1/jobs/{id}``. Posting the same campaign again invites nobody twice."""
        assert principal.tenant_id is not None
        survey = await _survey(db, survey_id)
        chosen = [bool(data.member_ids), data.segment is not None, data.tier is not None]
        if sum(chosen) != 1:
            raise ValidationFailed("Give member_ids, a segment or a tier.", field="member_ids")
        if survey.status != "active":
            raise Conflict("Only an active survey invites.", field="status")
        if not data.member_ids:
            tier_id = None
            if data.tier is not None:
                from core.tiers.models import Tier

                tier_id = (await db.execute(select(Tier.id).where(Tier.code == data.tier))).scalar_one_or_none()
                if tier_id is None:
                    raise ValidationFailed("No tier has this code.", field="tier")
            else:
                from core.segments.service import segment_spec

                await segment_spec(db, code=str(data.segment))
            audience = service.Audience(survey.id, data.campaign, segment=data.segment, tier_id=tier_id)
            job_id = await start_task(
                db,
                survey_jobs.CAMPAIGN_JOB,
                tenant_id=principal.tenant_id,
                payload=survey_jobs.campaign_payload(audience),
            )
            return cast("Response[InvitationsOut]", accepted(await get_task(db, principal.tenant_id, job_id)))
        found = set(
            (await db.execute(select(Member.id).where(Member.id.in_(data.member_ids), Member.status == "active")))
            .scalars()
            .all()
        )
        missing = [m for m in data.member_ids if m not in found]
        if missing:
            raise ValidationFailed(f"No active member {missing[0]}.", field="member_ids")
        members = list(dict.fromkeys(data.member_ids))
        invited = await service.invite(
            db, principal.tenant_id, survey, [(m, f"campaign:{data.campaign}:{m}") for m in members], utcnow()
        )
        return Response(InvitationsOut(invited, len(members) - invited))

    @get("/{survey_id:uuid}/invitations", operation_id="listSurveyInvitations", opt={"scope": "reports:read"})
    async def list_invitations(
        self,
        db: Db,
        survey_id: FromPath[uuid.UUID],
        member_id: FromQuery[uuid.UUID | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[InvitationOut]:
        """The survey's invitations, newest first: who, why, until when, and whether answered."""
        check_limit(limit)
        await _survey(db, survey_id)
        query = (
            select(SurveyInvitation)
            .where(SurveyInvitation.survey_id == survey_id)
            .order_by(SurveyInvitation.id.desc())
            .limit(limit + 1)
        )
        if member_id is not None:
            query = query.where(SurveyInvitation.member_id == member_id)
        if cursor:
            query = query.where(SurveyInvitation.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        return Page(
            [InvitationOut(r.id, r.member_id, r.occasion, r.created_at, r.expires_at, r.responded_at) for r in items],
            next_cursor,
        )

    @post(
        "/{survey_id:uuid}/responses",
        operation_id="answerSurvey",
        opt={"scope": "members:write", "problems": (409, 410)},
    )
    async def answer(
        self, db: Db, principal: CurrentPrincipal, survey_id: FromPath[uuid.UUID], data: JSONBody[ResponseIn]
    ) -> ResponseOut:
        """A member's answers from the tenant's own form: for a member, or for an invitation (once, before it
        expires: a repeated answer is a 409, a late one a 410)."""
        assert principal.tenant_id is not None
        survey = await _survey(db, survey_id)
        invitation = None
        if data.invitation_id is not None:
            invitation = (
                await db.execute(
                    select(SurveyInvitation).where(
                        SurveyInvitation.id == data.invitation_id, SurveyInvitation.survey_id == survey.id
                    )
                )
            ).scalar_one_or_none()
            if invitation is None:
                raise ValidationFailed("No invitation to this survey has this id.", field="invitation_id")
            if data.member_id is not None and data.member_id != invitation.member_id:
                raise ValidationFailed("This invitation is another member's.", field="member_id")
        elif data.member_id is not None:
            await get_member(db, data.member_id)
        now = utcnow()
        response_id = await service.record(
            db,
            principal.tenant_id,
            survey,
            service.Answers(dict(data.answers), data.nps, data.comment),
            now,
            member_id=data.member_id,
            invitation=invitation,
            channel="api",
        )
        member = invitation.member_id if invitation else data.member_id
        return ResponseOut(response_id, survey.id, member, now)

    @get("/{survey_id:uuid}/results", operation_id="getSurveyResults", opt={"scope": "reports:read"})
    async def results(
        self,
        db: Db,
        program: CurrentProgram,
        survey_id: FromPath[uuid.UUID],
        group_by: FromQuery[Literal["tier", "segment", "month", "week", "day"] | None] = None,
        since: FromQuery[AwareDatetime | None] = None,
        until: FromQuery[AwareDatetime | None] = None,
    ) -> ResultsOut:
        """Response rate; per question and per factor the answers at each level and the standardised value
        D = 100 x sum(x_j n_j) / (x_max sum n_j); NPS; the satisfaction index of the tenant's active AHP model.
        For the whole program, or by tier, segment or period (in the program's time zone): the answers by the
        member's tier and segments when answering, each group's response rate by those when invited (its answered
        invitations / its invitations). Added up by the database, whatever the number of responses."""
        survey = await _survey(db, survey_id)
        return await results_of(db, survey, program, group_by=group_by, since=since, until=until)


# --- the signed link: a small form, no API key, no JavaScript ---

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
fieldset{{border:1px solid #ccc;margin:0 0 1rem;padding:.5rem 1rem}}
label{{display:inline-block;margin:.2rem .8rem .2rem 0}}
button{{font-size:1rem;padding:.5rem 1rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def _html(title: str, body: str, status: int = 200) -> Response[str]:
    return Response(
        _PAGE.format(title=html.escape(title), body=body),
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"},
    )


def _wants_html(request: AnyRequest) -> bool:
    accept = request.headers.get("accept", "")
    content = request.headers.get("content-type", "")
    return ("text/html" in accept and "application/json" not in accept.split(",")[0]) or content.startswith(
        "application/x-www-form-urlencoded"
    )


def _form(survey: Survey, token: str) -> str:
    definition = service.survey_definition(survey)
    names = {f.code: f.name for f in definition.factors}
    parts = [f"<p>{html.escape(survey.intro)}</p>" if survey.intro else ""]
    parts.append(f'<form method="post" action="?token={html.escape(token, quote=True)}">')
    for q in definition.questions:
        heading = names[q.parent] + " / " + names[q.factor] if q.parent else names[q.factor]
        radios = "".join(
            f'<label><input type="radio" name="{html.escape(q.code)}" value="{html.escape(key)}"> '
            f"{html.escape(label)}</label>"
            for key, label, _ in definition.levels
        )
        parts.append(
            f"<fieldset><legend>{html.escape(heading)}</legend><p>{html.escape(q.text)}</p>{radios}</fieldset>"
        )
    if survey.nps_question:
        radios = "".join(f'<label><input type="radio" name="nps" value="{n}"> {n}</label>' for n in range(11))
        parts.append(f"<fieldset><legend>{html.escape(survey.nps_question)}</legend>{radios}</fieldset>")
    if survey.allow_comment:
        parts.append(
            '<p><label for="comment">Anything else?</label><br>'
            '<textarea id="comment" name="comment" rows="4" cols="50" maxlength="4000"></textarea></p>'
        )
    parts.append('<button type="submit">Send</button></form>')
    return "".join(parts)


class RespondIn(msgspec.Struct, forbid_unknown_fields=True):
    answers: Annotated[dict[Code, str | Annotated[int, Meta(ge=1, le=5)]], Meta(min_length=1, max_length=200)]
    nps: Annotated[int, Meta(ge=0, le=10)] | None = None
    comment: Annotated[str, Meta(max_length=4000)] | None = None


class RespondOut(msgspec.Struct):
    survey_id: uuid.UUID
    name: str
    answered: bool
    expires_at: datetime | None = None


def _parse_form(body: bytes) -> service.Answers:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=False, strict_parsing=False, max_num_fields=300)
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed("The form could not be read.", field="answers") from None
    levels: dict[str, str | int] = {}
    nps = None
    comment = None
    for name, values in fields.items():
        value = values[-1]
        if name == "nps":
            if not value.isdigit():
                raise ValidationFailed("nps is 0 to 10.", field="nps")
            nps = int(value)
        elif name == "comment":
            comment = value[:4000]
        elif name != "token":
            levels[name] = value
    return service.Answers(levels, nps, comment)


def _parse_json(body: bytes) -> service.Answers:
    from core.errors import invalid

    try:
        data = msgspec.json.decode(body, type=RespondIn)
    except msgspec.ValidationError as exc:
        raise invalid(str(exc)) from None
    except msgspec.DecodeError:
        from core.errors import MalformedRequest

        raise MalformedRequest("The request body is not valid JSON.") from None
    return service.Answers(dict(data.answers), data.nps, data.comment)


async def _invitation(runtime: Runtime, token: str) -> tuple[links.SurveyToken, SurveyInvitation, Survey]:
    secret = await link_secret(runtime.sessionmaker, runtime.settings)
    claims = links.read_token(secret, token, max_age_seconds=max(1, runtime.settings.survey_link_days) * 86400 * 2)
    async with tenant_session(runtime.sessionmaker, claims.tenant_id, writes=False) as session:
        invitation = (
            await session.execute(select(SurveyInvitation).where(SurveyInvitation.id == claims.invitation_id))
        ).scalar_one_or_none()
        if invitation is None:
            raise InvalidLink("This survey link is not valid.", field="token")
        survey = await service.get_survey(session, invitation.survey_id)
    return claims, invitation, survey


def _refusal(error: FealtyError, request: AnyRequest) -> Response[Any]:
    if not _wants_html(request):
        raise error
    titles = {409: "Already answered", 410: "This link has expired"}
    return _html(
        titles.get(error.status, "This link does not work"), f"<p>{html.escape(error.detail)}</p>", error.status
    )


class SurveyRespondController(Controller):
    path = "/v1/surveys/respond"
    tags = ["surveys"]

    @get(operation_id="showSurvey", opt={"auth": "none", "problems": (400, 409, 410)}, media_type="text/html")
    async def show(self, request: AnyRequest, runtime: CurrentRuntime, token: FromQuery[str] = "") -> Response[Any]:
        """The invitation's link: the survey as a small HTML form that works without JavaScript (or, with
        ``Accept: application/json``, what the link is for). Refuses a used, expired or altered link clearly."""
        try:
            _, invitation, survey = await _invitation(runtime, token)
            if invitation.responded_at is not None:
                raise Conflict("This survey was already answered with this link: thank you.", field="token")
            if invitation.expires_at <= utcnow():
                from core.errors import LinkExpired

                raise LinkExpired("This survey link has expired.", field="token")
        except FealtyError as error:
            return _refusal(error, request)
        if not _wants_html(request):
            return Response(
                RespondOut(survey.id, survey.name, False, invitation.expires_at), media_type="application/json"
            )
        return _html(survey.name, _form(survey, token))

    @post(operation_id="respondToSurvey", status_code=200, opt={"auth": "none", "problems": (400, 409, 410)})
    async def respond(self, request: AnyRequest, runtime: CurrentRuntime, token: FromQuery[str] = "") -> Response[Any]:
        """Record the answers (the form's fields, or JSON ``{"answers": {question: level}, "nps", "comment"}``),
        once per invitation and before it expires: a repeated answer is a 409, a late one a 410, an altered link a
        400."""
        try:
            claims, invitation, survey = await _invitation(runtime, token)
            body = await request.body()
            content = request.headers.get("content-type", "")
            given = _parse_json(body) if content.startswith("application/json") else _parse_form(body)
            async with tenant_session(runtime.sessionmaker, claims.tenant_id) as session:
                survey = await service.get_survey(session, invitation.survey_id)
                await service.record(
                    session,
                    claims.tenant_id,
                    survey,
                    given,
                    utcnow(),
                    member_id=None,
                    invitation=invitation,
                    channel="link",
                )
        except FealtyError as error:
            return _refusal(error, request)
        if _wants_html(request):
            return _html("Thank you", "<p>Your answers were recorded. Thank you for your time.</p>")
        return Response(RespondOut(survey.id, survey.name, True), media_type="application/json")


SURVEY_ROUTES = [SurveyRespondController, SurveysController]
