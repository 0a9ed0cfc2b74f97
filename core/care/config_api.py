"""HTTP: what care a tenant sends -- triggers (read), templates (with preview), rules, and the holiday calendar."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.care.calendar import country_holidays, has_country, holidays_in
from core.care.messages import load_members, program_view
from core.care.models import MESSAGE_CHANNELS, CareHoliday, CareRule, CareTemplate
from core.care.templates import MEMBER_FIELDS, PROGRAM_FIELDS, check_texts, pick_locale, render, sms_segments
from core.care.triggers import all_triggers, check_params, describe, samples, tenant_trigger
from core.clock import utcnow
from core.db.lookup import one_or_404
from core.errors import Conflict, NotFound, ValidationFailed
from core.http.deps import CurrentProgram, CurrentRuntime, Db
from core.ids import new_id
from core.program.settings import ProgramSettings
from core.runtime import Runtime

Purpose = Literal["service", "marketing", "safety"]
Channel = Literal["email", "sms", "webhook"]
Name = Annotated[str, Meta(min_length=1, max_length=100)]
Category = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Locale = Annotated[str, Meta(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", max_length=35)]
Text = Annotated[str, Meta(max_length=20000)]


class TemplateText(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, Meta(min_length=1, max_length=20000)]
    subject: Annotated[str, Meta(max_length=500)] | None = None
    html: Text | None = None
    sms: Annotated[str, Meta(max_length=1600)] | None = None


class TemplateIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    texts: Annotated[dict[Locale, TemplateText], Meta(min_length=1)]
    trigger: Annotated[str, Meta(max_length=80)] | None = None
    default_locale: Locale = "en"


class TemplateUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    texts: dict[Locale, TemplateText] | UnsetType = UNSET
    default_locale: Locale | UnsetType = UNSET


class TemplateOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    trigger: str | None
    default_locale: str
    texts: dict[str, Any]
    #: Per locale: the SMS text's encoding and segments with the trigger's sample values.
    sms: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class PreviewIn(msgspec.Struct, forbid_unknown_fields=True):
    #: Render for this member (their language, tier, points...); without it, for the trigger's sample values.
    member_id: uuid.UUID | None = None
    locale: Locale | None = None
    channel: Channel = "email"
    purpose: Purpose = "service"
    #: Values for the trigger's variables (the samples fill in the rest).
    variables: dict[str, Any] = {}


class PreviewOut(msgspec.Struct):
    locale: str
    channel: str
    subject: str | None
    body: str
    html: str | None
    encoding: str | None
    segments: int | None


class Audience(msgspec.Struct, forbid_unknown_fields=True):
    tiers: list[Annotated[str, Meta(max_length=40)]] = []
    segments: list[Annotated[str, Meta(max_length=60)]] = []


class RuleIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    trigger: Annotated[str, Meta(min_length=1, max_length=80)]
    template_id: uuid.UUID
    channels: Annotated[list[Channel], Meta(min_length=1, max_length=3)]
    params: dict[str, Any] = {}
    audience: Audience = msgspec.field(default_factory=Audience)
    purpose: Purpose | None = None
    category: Category | None = None
    valid_for_hours: Annotated[int, Meta(ge=1, le=24 * 366)] | None = None
    points: Annotated[int, Meta(ge=1, le=10_000_000)] | None = None
    active: bool = True


class RuleUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    template_id: uuid.UUID | UnsetType = UNSET
    channels: Annotated[list[Channel], Meta(min_length=1, max_length=3)] | UnsetType = UNSET
    params: dict[str, Any] | UnsetType = UNSET
    audience: Audience | UnsetType = UNSET
    purpose: Purpose | UnsetType = UNSET
    category: Category | UnsetType = UNSET
    valid_for_hours: Annotated[int, Meta(ge=1, le=24 * 366)] | UnsetType | None = UNSET
    points: Annotated[int, Meta(ge=1, le=10000000)] | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET


class RuleOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    trigger: str
    params: dict[str, Any]
    audience: dict[str, Any]
    purpose: str
    category: str
    channels: list[str]
    template_id: uuid.UUID
    valid_for_hours: int | None
    points: int | None
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: CareRule) -> RuleOut:
        return cls(
            r.id,
            r.name,
            r.trigger,
            dict(r.params),
            dict(r.audience),
            r.purpose,
            r.category,
            list(r.channels),
            r.template_id,
            r.valid_for_hours,
            r.points,
            r.active,
            r.created_at,
            r.updated_at,
        )


class HolidayIn(msgspec.Struct, forbid_unknown_fields=True):
    day: date
    name: Annotated[str, Meta(min_length=1, max_length=120)]


class CalendarImport(msgspec.Struct, forbid_unknown_fields=True):
    year: Annotated[int, Meta(ge=2000, le=2100)]
    #: ISO 3166 country code; the program's country when omitted.
    country: Annotated[str, Meta(min_length=2, max_length=3)] | None = None


class HolidayOut(msgspec.Struct):
    day: date
    name: str
    source: str
    id: uuid.UUID | None = None


# --- templates ----------------------------------------------------------------------------------------------------


def _allowed(runtime: Runtime, program: ProgramSettings, trigger: str | None) -> dict[str, Any]:
    variables: dict[str, Any] = {"member": dict(MEMBER_FIELDS), "program": dict(PROGRAM_FIELDS)}
    if trigger is not None:
        variables |= samples(tenant_trigger(runtime.plugins, trigger, program.enabled_plugins))
    return variables


def _texts(texts: dict[str, TemplateText]) -> dict[str, Any]:
    return {locale: msgspec.to_builtins(t) for locale, t in texts.items()}


def _sms_report(texts: dict[str, Any], allowed: dict[str, Any]) -> dict[str, Any]:
    report = {}
    for locale in texts:
        rendered = render(texts, locale, allowed, currency="GBP", zone="UTC")
        encoding, segments = sms_segments(rendered.sms)
        report[locale] = {"encoding": encoding, "segments": segments, "length": len(rendered.sms)}
    return report


def _template_out(t: CareTemplate, runtime: Runtime, program: ProgramSettings) -> TemplateOut:
    try:
        sms = _sms_report(t.texts, _allowed(runtime, program, t.trigger))
    except Exception:  # a trigger of a plugin since disabled: nothing to measure with
        sms = {}
    return TemplateOut(t.id, t.name, t.trigger, t.default_locale, dict(t.texts), sms, t.created_at, t.updated_at)


async def _template(db: AsyncSession, template_id: uuid.UUID, field: str = "template_id") -> CareTemplate:
    found = await one_or_404(
        db, select(CareTemplate).where(CareTemplate.id == template_id), "No such care template.", field=field
    )
    return found


async def _unique_name(db: AsyncSession, model: Any, name: str, own: uuid.UUID | None = None) -> None:
    query = select(model.id).where(model.name == name)
    if own is not None:
        query = query.where(model.id != own)
    if (await db.execute(query)).first():
        raise Conflict("Another one already has this name.", field="name")


class CareTriggersController(Controller):
    path = "/v1/care/triggers"
    tags = ["care"]

    @get(operation_id="listCareTriggers")
    async def list_triggers(self, runtime: CurrentRuntime, program: CurrentProgram) -> list[dict[str, Any]]:
        """The triggers this tenant can write care rules for (core's, and its enabled plugins'), with the
        variables each offers templates, their sample values, and the rule parameters."""
        enabled = program.enabled_plugins
        return [describe(t) for t in all_triggers(runtime.plugins).values() if t.plugin is None or t.plugin in enabled]


class CareTemplatesController(Controller):
    path = "/v1/care/templates"
    tags = ["care"]

    @post(operation_id="createCareTemplate")
    async def create(
        self, db: Db, runtime: CurrentRuntime, program: CurrentProgram, data: JSONBody[TemplateIn]
    ) -> TemplateOut:
        """A template: subject and body per locale (``{{ member.first_name }}``, ``{{ points|number }}``,
        ``{{ expires_at|date }}``...). Refused (422 naming the variable) if a text does not parse or names a variable
        that neither the member, the program nor the trigger offers."""
        texts = _texts(data.texts)
        check_texts(texts, _allowed(runtime, program, data.trigger))
        if data.default_locale not in texts:
            raise ValidationFailed("default_locale must be one of the template's locales.", field="default_locale")
        await _unique_name(db, CareTemplate, data.name)
        now = utcnow()
        template = CareTemplate(
            id=new_id(),
            name=data.name,
            trigger=data.trigger,
            default_locale=data.default_locale,
            texts=texts,
            created_at=now,
            updated_at=now,
        )
        db.add(template)
        await db.flush()
        return _template_out(template, runtime, program)

    @get(operation_id="listCareTemplates")
    async def list_templates(self, db: Db, runtime: CurrentRuntime, program: CurrentProgram) -> list[TemplateOut]:
        rows = (await db.execute(select(CareTemplate).order_by(CareTemplate.name))).scalars()
        return [_template_out(t, runtime, program) for t in rows]

    @get("/{template_id:uuid}", operation_id="getCareTemplate")
    async def get_template(
        self, db: Db, runtime: CurrentRuntime, program: CurrentProgram, template_id: FromPath[uuid.UUID]
    ) -> TemplateOut:
        return _template_out(await _template(db, template_id), runtime, program)

    @patch("/{template_id:uuid}", operation_id="updateCareTemplate")
    async def update(
        self,
        db: Db,
        runtime: CurrentRuntime,
        program: CurrentProgram,
        template_id: FromPath[uuid.UUID],
        data: JSONBody[TemplateUpdate],
    ) -> TemplateOut:
        template = await _template(db, template_id)
        if not isinstance(data.name, UnsetType):
            await _unique_name(db, CareTemplate, data.name, template.id)
            template.name = data.name
        if not isinstance(data.texts, UnsetType):
            texts = _texts(data.texts)
            check_texts(texts, _allowed(runtime, program, template.trigger))
            template.texts = texts
        if not isinstance(data.default_locale, UnsetType):
            template.default_locale = data.default_locale
        if template.default_locale not in template.texts:
            raise ValidationFailed("default_locale must be one of the template's locales.", field="default_locale")
        template.updated_at = utcnow()
        await db.flush()
        return _template_out(template, runtime, program)

    @delete("/{template_id:uuid}", operation_id="deleteCareTemplate", status_code=204)
    async def delete_template(self, db: Db, template_id: FromPath[uuid.UUID]) -> None:
        template = await _template(db, template_id)
        if (await db.execute(select(CareRule.id).where(CareRule.template_id == template.id).limit(1))).first():
            raise Conflict("Care rules use this template; change or delete them first.", field="template_id")
        await db.delete(template)

    @post("/{template_id:uuid}/preview", operation_id="previewCareTemplate", status_code=200)
    async def preview(
        self,
        db: Db,
        runtime: CurrentRuntime,
        program: CurrentProgram,
        template_id: FromPath[uuid.UUID],
        data: JSONBody[PreviewIn],
    ) -> PreviewOut:
        """Render the template for a member (their locale unless ``locale`` is given) or for the trigger's sample
        values, as the chosen channel would carry it (a marketing SMS with its opt-out line)."""
        template = await _template(db, template_id)
        allowed = _allowed(runtime, program, template.trigger)
        view = await program_view(db, program_tenant(program, db), program)
        variables: dict[str, Any] = {**allowed, "program": view.variables(), **data.variables}
        zone = program.timezone
        wanted = data.locale
        if data.member_id is not None:
            member = (await load_members(db, program_tenant(program, db), [data.member_id])).get(data.member_id)
            if member is None:
                raise NotFound("No such member.", field="member_id")
            zone = member.timezone or program.timezone
            variables["member"] = member.variables(zone)
            wanted = wanted or member.locale
        locale = pick_locale(template.texts, wanted, template.default_locale)
        try:
            rendered = render(
                template.texts,
                locale,
                variables,
                currency=program.currency,
                zone=zone,
                marketing_sms=data.channel == "sms" and data.purpose == "marketing",
            )
        except Exception as exc:
            raise ValidationFailed(
                f"The template cannot be rendered with these values: {exc}", field="variables"
            ) from None
        if data.channel == "sms":
            encoding, segments = sms_segments(rendered.sms)
            return PreviewOut(locale, "sms", None, rendered.sms, None, encoding, segments)
        return PreviewOut(locale, data.channel, rendered.subject, rendered.body, rendered.html, None, None)


def program_tenant(program: ProgramSettings, db: AsyncSession) -> uuid.UUID:
    """The request's tenant (set by authentication)."""
    from core.db.tenancy import require_tenant

    return require_tenant()


# --- rules --------------------------------------------------------------------------------------------------------


async def _rule(db: AsyncSession, rule_id: uuid.UUID) -> CareRule:
    found = await one_or_404(
        db, select(CareRule).where(CareRule.id == rule_id), "No such care rule.", field="care_rule_id"
    )
    return found


async def _check_rule(db: AsyncSession, runtime: Runtime, program: ProgramSettings, rule: CareRule) -> None:
    trigger = tenant_trigger(runtime.plugins, rule.trigger, program.enabled_plugins)
    if trigger.plugin is None:
        rule.params = check_params(rule.trigger, rule.params)
    template = await _template(db, rule.template_id)
    if template.trigger is not None and template.trigger != rule.trigger:
        raise ValidationFailed(
            f"The template is written for the {template.trigger} trigger, not {rule.trigger}.", field="template_id"
        )
    if len(set(rule.channels)) != len(rule.channels):
        raise ValidationFailed("Each channel at most once.", field="channels")
    if any(c not in MESSAGE_CHANNELS for c in rule.channels):
        raise ValidationFailed("Unknown channel.", field="channels")
    from core.segments.models import Segment
    from core.tiers.models import Tier

    tiers = set(rule.audience.get("tiers") or ())
    if tiers:
        known = set((await db.execute(select(Tier.code).where(Tier.code.in_(tiers)))).scalars())
        if tiers - known:
            raise ValidationFailed(f"Unknown tier '{sorted(tiers - known)[0]}'.", field="audience.tiers")
    segments = set(rule.audience.get("segments") or ())
    if segments:
        known = set((await db.execute(select(Segment.code).where(Segment.code.in_(segments)))).scalars())
        if segments - known:
            raise ValidationFailed(f"Unknown segment '{sorted(segments - known)[0]}'.", field="audience.segments")


class CareRulesController(Controller):
    path = "/v1/care/rules"
    tags = ["care"]

    @post(operation_id="createCareRule")
    async def create(self, db: Db, runtime: CurrentRuntime, program: CurrentProgram, data: JSONBody[RuleIn]) -> RuleOut:
        """A care rule: which trigger (and its parameters), for whom, with which purpose and category, on which
        channels in order, with which template, for how long the message is worth sending, with points or not."""
        trigger = tenant_trigger(runtime.plugins, data.trigger, program.enabled_plugins)
        await _unique_name(db, CareRule, data.name)
        now = utcnow()
        rule = CareRule(
            id=new_id(),
            name=data.name,
            trigger=data.trigger,
            params=dict(data.params),
            audience=msgspec.to_builtins(data.audience),
            purpose=data.purpose or trigger.purpose,
            category=data.category or trigger.category,
            channels=list(data.channels),
            template_id=data.template_id,
            valid_for_hours=data.valid_for_hours,
            points=data.points,
            active=data.active,
            created_at=now,
            updated_at=now,
        )
        await _check_rule(db, runtime, program, rule)
        db.add(rule)
        await db.flush()
        return RuleOut.of(rule)

    @get(operation_id="listCareRules")
    async def list_rules(self, db: Db, trigger: FromQuery[str | None] = None) -> list[RuleOut]:
        query = select(CareRule).order_by(CareRule.created_at, CareRule.id)
        if trigger is not None:
            query = query.where(CareRule.trigger == trigger)
        return [RuleOut.of(r) for r in (await db.execute(query)).scalars()]

    @get("/{care_rule_id:uuid}", operation_id="getCareRule")
    async def get_rule(self, db: Db, care_rule_id: FromPath[uuid.UUID]) -> RuleOut:
        return RuleOut.of(await _rule(db, care_rule_id))

    @patch("/{care_rule_id:uuid}", operation_id="updateCareRule")
    async def update(
        self,
        db: Db,
        runtime: CurrentRuntime,
        program: CurrentProgram,
        care_rule_id: FromPath[uuid.UUID],
        data: JSONBody[RuleUpdate],
    ) -> RuleOut:
        rule = await _rule(db, care_rule_id)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if not isinstance(v, UnsetType)}
        if "name" in changes:
            await _unique_name(db, CareRule, changes["name"], rule.id)
        if "audience" in changes:
            changes["audience"] = msgspec.to_builtins(changes["audience"])
        if "channels" in changes:
            changes["channels"] = list(changes["channels"])
        for name, value in changes.items():
            setattr(rule, name, value)
        await _check_rule(db, runtime, program, rule)
        rule.updated_at = utcnow()
        await db.flush()
        return RuleOut.of(rule)

    @delete("/{care_rule_id:uuid}", operation_id="deleteCareRule", status_code=204)
    async def delete_rule(self, db: Db, care_rule_id: FromPath[uuid.UUID]) -> None:
        """Delete a rule that never made a message; one that did is kept for the record: deactivate it instead."""
        from core.care.models import CareMessage

        rule = await _rule(db, care_rule_id)
        if (await db.execute(select(CareMessage.id).where(CareMessage.rule_id == rule.id).limit(1))).first():
            raise Conflict("This rule has messages on record; set active to false instead.", field="care_rule_id")
        await db.delete(rule)


# --- calendar -----------------------------------------------------------------------------------------------------


class CareCalendarController(Controller):
    path = "/v1/care/calendar"
    tags = ["care"]

    @get(operation_id="listCareCalendar")
    async def list_days(
        self, db: Db, program: CurrentProgram, year: FromQuery[Annotated[int, Meta(ge=1900, le=2200)] | None] = None
    ) -> list[HolidayOut]:
        """The tenant's holidays in ``year`` (this year by default): its own days, or, for a year it has not set,
        its country's public holidays (``source: country:<CC>``)."""
        wanted = year or utcnow().astimezone(program.tz).year
        if not 1900 <= wanted <= 2200:
            raise ValidationFailed("year must be between 1900 and 2200.", field="year")
        days = await holidays_in(db, program_tenant(program, db), [wanted], program.country)
        return [HolidayOut(h.day, h.name, h.source, h.id) for h in days]

    @post(operation_id="addCareHoliday")
    async def add(self, db: Db, data: JSONBody[HolidayIn]) -> HolidayOut:
        """Add a day. Once a year has a day of the tenant's own, the country's defaults no longer apply to it
        (import them first with ``POST /v1/care/calendar/import`` to keep them)."""
        if (await db.execute(select(CareHoliday.id).where(CareHoliday.day == data.day))).first():
            raise Conflict("This day is already in the calendar.", field="day")
        row = CareHoliday(id=new_id(), day=data.day, name=data.name, source="tenant", created_at=utcnow())
        db.add(row)
        await db.flush()
        return HolidayOut(row.day, row.name, row.source, row.id)

    @post("/import", operation_id="importCareHolidays", status_code=200)
    async def import_country(self, db: Db, program: CurrentProgram, data: JSONBody[CalendarImport]) -> list[HolidayOut]:
        """Copy a country's public holidays for a year into the calendar (days already there are kept)."""
        country = data.country or program.country
        if not country or not has_country(country):
            raise ValidationFailed("No public holidays are known for this country.", field="country")
        existing = set((await db.execute(select(CareHoliday.day))).scalars())
        now = utcnow()
        for h in country_holidays(country, data.year):
            if h.day not in existing:
                db.add(CareHoliday(id=new_id(), day=h.day, name=h.name, source=h.source, created_at=now))
                existing.add(h.day)
        await db.flush()
        days = await holidays_in(db, program_tenant(program, db), [data.year], None)
        return [HolidayOut(h.day, h.name, h.source, h.id) for h in days]

    @delete("/{holiday_id:uuid}", operation_id="deleteCareHoliday", status_code=204)
    async def remove(self, db: Db, holiday_id: FromPath[uuid.UUID]) -> None:
        result = await db.execute(sql_delete(CareHoliday).where(CareHoliday.id == holiday_id))
        if not getattr(result, "rowcount", 0):
            raise NotFound("No such day in the calendar.", field="holiday_id")
