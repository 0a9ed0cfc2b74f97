"""``fealty demo``: seed realistic demo tenants through the public HTTP API, in-process.

Everything is done the way an integration would do it -- the platform operator creates the tenants, their admins
configure the programs, the systems send events (backdated, in batches), the tills redeem -- through the API served
in this process (``httpx.ASGITransport``), so the demo exercises the same code as ``make serve``. The background work
an embedded worker would do meanwhile (posting pending points, tier renewals, the plugins' daily jobs) is driven with
:func:`core.worker.tick`.

Core knows no trade: each vertical plugin seeds its own tenants through the demo hook (``fealty_demo_tenants``, types
in :mod:`core.plugin.demo`): core creates each tenant and its key, enables the plugin, awaits the plugin's ``seed``,
runs the worker, measures the tenant and reports what the seed returned. Core itself seeds only the platform (the
platform key) and its own tenant, ``<prefix>-coffee``: a coffee shop chain on core alone, with earning rules, a
weekend campaign, a reward and care. Data are drawn from ``random.Random`` (core's coffee chain seeded with 2029, each
plugin's tenant with 2026 and its slug suffix), relative to the current time: the same demo, shifted to today.

:func:`seed_demo` takes any client of a running app (the tests pass theirs); :func:`run_demo` builds the app for the
configured database, as ``fealty demo`` does.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx

from core.plugin.demo import (
    DEMO_SEED,
    DEMO_SENDER_DOMAIN,
    DemoApi,
    DemoContext,
    DemoError,
    DemoSeeded,
    DemoTenant,
    iso,
    money,
)
from core.runtime import Runtime
from core.settings import Settings

SEED = DEMO_SEED


class DemoAlreadySeeded(RuntimeError):
    """The demo's tenants exist already in this database."""

    def __init__(self, slugs: Sequence[str]) -> None:
        super().__init__(f"The demo tenants exist already: {', '.join(slugs)}.")
        self.slugs = list(slugs)


@dataclass
class SeededTenant:
    """One seeded tenant: what to call it with, a few members worth looking at, and what was made."""

    slug: str
    name: str
    id: str
    api_key: str
    plugin: str | None
    #: A few members by role ("diamond", "held", ...): their ids.
    members: dict[str, str] = field(default_factory=dict)
    #: The same members in words: "Ada Whitfield: diamond, 174,970 points".
    notes: dict[str, str] = field(default_factory=dict)
    #: Counts: members, events (awarded, held, rejected), redemptions, care requests ...
    counts: dict[str, int] = field(default_factory=dict)
    #: Other ids worth showing (a held event, a voucher ...).
    extras: dict[str, str] = field(default_factory=dict)
    #: The shell variable its admin key is printed as (``KH=fty_...``).
    key_variable: str = "K"
    #: What to try, printed after the keys (a plugin's demo returns them, see :class:`core.plugin.demo.DemoSeeded`).
    lines: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    tenants: list[SeededTenant]
    #: Emails and SMS the local SES/SNS stand-in received (None: messages went to the configured AWS endpoint).
    delivered: tuple[int, int] | None = None

    def tenant(self, slug_suffix: str) -> SeededTenant | None:
        return next((t for t in self.tenants if t.slug.endswith(f"-{slug_suffix}")), None)


@dataclass
class DemoRun:
    """What ``fealty demo`` prints: the result, the platform key used and where it came from."""

    result: DemoResult
    platform_key: str
    #: ``environment`` (FEALTY_PLATFORM_KEY), ``generated`` (new, stored, valid for ``fealty serve`` too) or
    #: ``temporary`` (a key was stored before: the demo used one of its own, valid only while it ran).
    platform_key_origin: str
    database_url: str


# --- talking to the API ---------------------------------------------------------------------------------------------

#: The demo's HTTP helper (plugins' demos get it as ``ctx.api``; exported by :mod:`core` as ``DemoApi``).
Api = DemoApi
_money = money
_iso = iso


async def _enrol(api: Api, members: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Enrol the members; their ids by external id."""
    return await api.enrol(members)


# --- entry points ---------------------------------------------------------------------------------------------------


def demo_slugs(prefix: str, contributed: Iterable[DemoTenant] = ()) -> list[str]:
    """The demo's tenants: the plugins' (in plugin order), then core's coffee chain."""
    return [*(f"{prefix}-{demo.slug_suffix}" for demo in contributed), f"{prefix}-coffee"]


async def seed_demo(
    client: httpx.AsyncClient,
    runtime: Runtime,
    platform_key: str,
    *,
    prefix: str = "demo",
    now: datetime | None = None,
) -> DemoResult:
    """Seed the demo tenants through ``client`` (an app whose runtime is ``runtime``): the plugins' demo tenants
    (``fealty_demo_tenants``, in plugin order), then core's coffee chain. Raises :class:`DemoAlreadySeeded`, before
    writing anything, when one of the tenants exists already."""
    now = now or datetime.now(UTC)
    platform = Api(client, platform_key)
    contributed = runtime.plugins.demo_tenants()
    slugs = demo_slugs(prefix, [demo for _, demo in contributed])
    if len(set(slugs)) != len(slugs):
        raise DemoError(f"two demo tenants would share a slug: {slugs}")
    existing = {t["slug"] for t in await platform.all_items("/v1/platform/tenants")}
    if taken := [s for s in slugs if s in existing]:
        raise DemoAlreadySeeded(taken)
    result = DemoResult([])
    for plugin, demo in contributed:
        slug = f"{prefix}-{demo.slug_suffix}"
        result.tenants.append(await seed_plugin_demo(platform, runtime, plugin, demo, slug, now))
    result.tenants.append(await CoffeeDemo(platform, runtime, f"{prefix}-coffee", now).seed())
    for tenant in result.tenants:
        await measure(Api(client, tenant.api_key), runtime, tenant, now)
    return result


async def measure(api: Api, runtime: Runtime, tenant: SeededTenant, now: datetime) -> None:
    """Loyalty measured for a seeded tenant: the default loyalty model copied, the nightly run done once, and what
    it found (members by RFM segment and loyalty type, churn risk, liability) noted for the demo's report."""
    from core.measurement import nightly

    await api.post("/v1/measurement/models/copy", {"default": "loyalty"})
    await nightly.run(runtime.sessionmaker, uuid.UUID(tenant.id), now)
    loyalty = (await api.get("/v1/reports/loyalty"))["summary"]
    rfm = (await api.get("/v1/reports/rfm"))["summary"]["segments"]
    types = {t["loyalty_type"]: t["members"] for t in (await api.get("/v1/reports/loyalty-types"))["items"]}
    risk = (await api.get("/v1/reports/churn-risk"))["summary"]
    liability = (await api.get("/v1/reports/liability"))["summary"]
    tenant.counts["members_measured"] = loyalty["members"]
    tenant.counts["members_at_risk"] = risk["members_at_risk"]
    tenant.counts["outstanding_points"] = liability["outstanding_points"]
    tenant.notes["rfm"] = ", ".join(f"{k} {v}" for k, v in rfm.items() if v)
    tenant.notes["loyalty_types"] = ", ".join(f"{k} {v}" for k, v in types.items() if v)
    tenant.notes["liability"] = (
        f"{liability['outstanding_points']:,} points outstanding, {liability['net_liability_value']} "
        f"{liability['currency']} net of breakage"
    )
    tenant.extras["dashboard"] = (await api.post("/v1/reports/links", {"expires_in_minutes": 1440}))["url"]


async def run_demo(settings: Settings, *, prefix: str = "demo") -> DemoRun:
    """What ``fealty demo`` does: migrate the configured database, serve the API in this process (no embedded
    worker: the demo drives the worker itself), seed it, and store a platform key if the database has none yet."""
    from core.app import create_app
    from core.db.engine import create_engine, create_sessionmaker
    from core.db.migrate import upgrade_async
    from core.plugin.manager import PluginManager
    from core.tenancy.service import ensure_platform_key

    await upgrade_async(settings.owner_database_url)
    from core.adapters import local_aws

    # No AWS endpoint configured: the demo's emails and SMS go to a local SES/SNS stand-in, never to AWS.
    local = None if settings.aws_endpoint_url else local_aws.start([DEMO_SENDER_DOMAIN])
    # The API in this process accepts the key it is given (only its hash is compared), so the demo needs no stored
    # key: FEALTY_PLATFORM_KEY when set, otherwise a key of its own for this run.
    key = settings.platform_key or f"ftp_demo-{secrets.token_urlsafe(24)}"
    demo_settings = dataclasses.replace(
        settings,
        platform_key=key,
        embedded_worker=False,
        migrate_on_start=False,
        rate_limit_per_second=0.0,
        log_level="WARNING",
        **(local.settings() if local is not None else {}),
    )
    app = create_app(demo_settings, plugins=PluginManager.for_settings(demo_settings))
    runtime: Runtime = app.state["runtime"]
    result: DemoResult | None = None
    failure: Exception | None = None
    async with app.lifespan():
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(transport=transport, base_url="http://fealty-demo", timeout=120) as client:
            try:
                result = await seed_demo(client, runtime, key, prefix=prefix)
            except Exception as exc:  # raised below, as itself: the lifespan's task group would wrap it in a group
                failure = exc
    if local is not None:
        if result is not None:
            result.delivered = local.received()
        local.stop()
    if failure is not None:
        raise failure
    assert result is not None
    if settings.platform_key:
        return DemoRun(result, key, "environment", settings.database_url)
    # Without a stored key, store one now (as the first `fealty serve` would), so that the printed key works there.
    engine = create_engine(settings)
    try:
        _, generated = await ensure_platform_key(create_sessionmaker(engine), generate=True)
    finally:
        await engine.dispose()
    if generated:
        return DemoRun(result, generated, "generated", settings.database_url)
    return DemoRun(result, key, "temporary", settings.database_url)


# --- shared ---------------------------------------------------------------------------------------------------------


async def _create_tenant(
    platform: Api,
    runtime: Runtime,
    *,
    slug: str,
    name: str,
    timezone: str,
    currency: str,
    country: str | None,
    plugin: str | None,
    locale: str,
    key_variable: str,
    rng: random.Random,
    now: datetime,
) -> tuple[DemoContext, SeededTenant]:
    """Create a demo tenant and its admin key through the platform API: the context its seeding works in."""
    body = {"name": name, "slug": slug, "timezone": timezone, "currency": currency, "country": country}
    created = await platform.call("POST", "/v1/platform/tenants", body, expect=(201, 409))
    if created.get("status") == 409:  # made meanwhile (seed_demo looked first)
        raise DemoAlreadySeeded([slug])
    key = created["api_key"]["secret"]
    tenant_id = uuid.UUID(created["tenant"]["id"])

    async def work() -> None:
        from core.worker import tick

        report = await tick(runtime, tenant_id)
        if report.failed:
            raise DemoError(f"{report.failed} background job(s) failed for {slug}: {report.kinds}")

    context = DemoContext(
        api=Api(platform.client, key),
        tenant_id=tenant_id,
        slug=slug,
        name=name,
        plugin=plugin,
        now=now,
        tz=ZoneInfo(timezone),
        locale=locale,
        currency=currency,
        key_variable=key_variable,
        rng=rng,
        _work=work,
    )
    return context, SeededTenant(slug, name, str(tenant_id), key, plugin, key_variable=key_variable)


async def _finish(api: Api, tenant: SeededTenant, members: dict[str, str]) -> SeededTenant:
    """Record the members worth a look (with their tier and points as they stand) and count what was made."""
    tenant.members = members
    for role, member_id in members.items():
        member = await api.get(f"/v1/members/{member_id}")
        tier = member["tier"] or "no tier"
        tenant.notes[role] = f"{member['name']}: {tier}, {member['balance']['available']:,} points"
    events = await api.all_items("/v1/events")
    statuses = Counter(e["status"] for e in events)
    tenant.counts["events"] = len(events)
    for status in ("awarded", "held", "rejected"):
        tenant.counts[f"events_{status}"] = statuses[status]
    tenant.counts["members"] = len(await api.all_items("/v1/members"))
    tenant.counts["redemptions"] = len(await api.all_items("/v1/redemptions"))
    tenant.counts["care_requests"] = len(await api.all_items("/v1/care/requests"))
    messages = await api.all_items("/v1/messages")
    tenant.counts["messages"] = len(messages)
    for state, n in Counter(m["state"] for m in messages).items():
        tenant.counts[f"messages_{state}"] = n
    reasons = Counter(m["reason"] for m in messages if m["state"] in ("suppressed", "deferred") and m["reason"])
    tenant.extras["message_reasons"] = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
    return tenant


def _key_variable(demo: DemoTenant) -> str:
    return demo.key_variable or f"K{demo.slug_suffix.replace('-', '_').upper()}"


async def seed_plugin_demo(
    platform: Api, runtime: Runtime, plugin: str, demo: DemoTenant, slug: str, now: datetime
) -> SeededTenant:
    """A plugin's demo tenant (``fealty_demo_tenants``): created, the plugin enabled with the demo's settings, seeded
    by the plugin through the API, the worker run, what was made counted."""
    context, tenant = await _create_tenant(
        platform,
        runtime,
        slug=slug,
        name=demo.name,
        timezone=demo.timezone,
        currency=demo.currency,
        country=demo.country,
        plugin=plugin,
        locale=demo.locale,
        key_variable=_key_variable(demo),
        rng=random.Random(f"{DEMO_SEED}:{demo.slug_suffix}"),
        now=now,
    )
    program = dict(demo.program)
    program["plugins"] = list(dict.fromkeys([*program.get("plugins", []), plugin]))
    program["plugin_settings"] = {**program.get("plugin_settings", {}), plugin: demo.settings}
    await context.api.patch("/v1/program", program)
    seeded = await demo.seed(context) or DemoSeeded()
    await context.work()
    tenant.extras.update(seeded.extras)
    tenant.counts.update(seeded.counts)
    tenant.lines = list(seeded.lines)
    return await _finish(context.api, tenant, seeded.members)


class _TenantDemo:
    name = ""
    timezone = "UTC"
    currency = "EUR"
    country = "GB"
    locale = "en"
    key_variable = "K"
    plugin: str | None = None
    seed_offset = 0

    def __init__(self, platform: Api, runtime: Runtime, slug: str, now: datetime) -> None:
        self.platform = platform
        self.runtime = runtime
        self.slug = slug
        self.now = now
        self.rng = random.Random(SEED + self.seed_offset)
        self.tz = ZoneInfo(self.timezone)
        self.api: Api
        self.tenant: SeededTenant
        self.context: DemoContext

    async def create_tenant(self) -> None:
        self.context, self.tenant = await _create_tenant(
            self.platform,
            self.runtime,
            slug=self.slug,
            name=self.name,
            timezone=self.timezone,
            currency=self.currency,
            country=self.country,
            plugin=self.plugin,
            locale=self.locale,
            key_variable=self.key_variable,
            rng=self.rng,
            now=self.now,
        )
        self.api = self.context.api

    async def work(self) -> None:
        """Run the worker for this tenant: pending points whose time has come post, tiers renew, jobs run."""
        await self.context.work()

    async def care(self, rules: Sequence[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        """The tenant's sender, and a care rule with its template for each ``(trigger, texts, rule fields)``."""
        await self.context.care(rules)

    def local(self, day: date, hour: int, minute: int = 0) -> datetime:
        return self.context.local(day, hour, minute)

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    async def finish(self, members: dict[str, str]) -> SeededTenant:
        """Record the members worth a look (with their tier and points as they stand) and count what was made."""
        return await _finish(self.api, self.tenant, members)


# --- core's own tenant: a coffee chain -------------------------------------------------------------------------------

COFFEE_CUSTOMERS = [
    "Alex Morgan",
    "Bea Collins",
    "Charlie Dunn",
    "Dev Patel",
    "Elena Petrova",
    "Finn Murphy",
    "Georgia Lee",
    "Harry Osei",
]
COFFEE_MENU = [("flat white", "3.40"), ("latte", "3.60"), ("cortado", "3.10"), ("croissant", "2.80")]


COFFEE_BIRTHDAY = {
    "en": {
        "subject": "Happy birthday, {{ member.first_name }}!",
        "body": "A drink on us today, and you have {{ member.points|number }} {{ program.points_name }} to spend.",
    }
}
COFFEE_LAPSING = {
    "en": {
        "subject": "We saved you a seat, {{ member.first_name }}",
        "body": "It has been {{ days_inactive }} days: double {{ program.points_name }} on your next visit.",
    }
}


class CoffeeDemo(_TenantDemo):
    key_variable = "KC"
    name = "Harbour Coffee Co. (demo)"
    timezone = "Europe/London"
    currency = "GBP"
    country = "GB"
    seed_offset = 3

    async def seed(self) -> SeededTenant:
        await self.create_tenant()
        api = self.api
        await api.patch(
            "/v1/program", {"points_name": "Beans", "expiry_policy": {"kind": "days_after_earn", "value": 365}}
        )
        await api.post(
            "/v1/earning-rules",
            {"name": "10 beans a pound", "kind": "per_amount", "points": "10", "per": "1", "event_types": ["purchase"]},
        )
        await api.post(
            "/v1/earning-rules",
            {
                "name": "Early bird: 20 beans before 8 am",
                "kind": "fixed",
                "points": "20",
                "event_types": ["purchase"],
                "conditions": [{"field": "event.hour", "op": "lt", "value": 8}],
            },
        )
        await api.post(
            "/v1/segments",
            {
                "code": "regulars",
                "name": "Regulars",
                "conditions": [{"field": "member.attributes.regular", "op": "eq", "value": True}],
            },
        )
        await api.post(
            "/v1/campaigns",
            {
                "code": "double-weekends",
                "name": "Double beans at weekends",
                "description": "Regulars earn twice the beans on Saturdays and Sundays this month.",
                "starts_at": _iso(self.now - timedelta(days=28)),
                "ends_at": _iso(self.now + timedelta(days=28)),
                "segments": ["regulars"],
                "rules": [
                    {
                        "name": "x2 at weekends",
                        "kind": "multiplier",
                        "points": "2",
                        "conditions": [{"field": "event.weekday", "op": "in", "value": [6, 7]}],
                    }
                ],
            },
        )
        free = await api.post(
            "/v1/rewards",
            {"code": "FREE-DRINK", "name": "Any drink on us", "points_cost": 300, "voucher_valid_days": 30},
        )
        members: list[dict[str, Any]] = [
            {
                "external_id": f"C-{3001 + i}",
                "name": name,
                "email": f"{name.lower().replace(' ', '.')}@example.org",
                "attributes": {"regular": i % 2 == 0},
            }
            for i, name in enumerate(COFFEE_CUSTOMERS)
        ]
        for i, member in enumerate(members):
            member["consents"] = [{"channel": "email", "purpose": "marketing", "granted": i % 3 != 1}]
            if i % 4 == 2:  # a few have their birthday today
                member["birthday"] = date(1992, self.today.month, self.today.day).isoformat()
        await self.care(
            [
                # The demo's members were enrolled a moment ago: no waiting period for their birthday.
                ("birthday", COFFEE_BIRTHDAY, {"params": {"min_member_days": 0}, "valid_for_hours": 36}),
                ("lapsing", COFFEE_LAPSING, {"params": {"days": 18}}),
            ]
        )
        # Every fourth customer has not been in for 20 days: a lapse began, which the lapsing rule (18 days) notices.
        # They joined with their first purchase (the till enrols unknown cards), so their inactivity counts from their
        # visits, not from today; their details follow from the shop's sign-up form.
        lapsed = {m["external_id"] for i, m in enumerate(members) if i % 4 == 3}
        await api.patch("/v1/program", {"auto_enrol": True})
        ids = await _enrol(api, [m for m in members if m["external_id"] not in lapsed])
        events = []
        for i, member in enumerate(members):
            visits = 12 if member["attributes"]["regular"] else 4
            away = member["external_id"] in lapsed
            for n in range(visits):
                days_ago = 20 if away and n == 0 else self.rng.randint(21 if away else 1, 35)
                day = self.today - timedelta(days=days_ago)
                at = self.local(day, self.rng.randint(7, 17), self.rng.randint(0, 59))
                items = self.rng.sample(COFFEE_MENU, self.rng.randint(1, 2))
                events.append(
                    {
                        "type": "purchase",
                        "event_id": f"till-{i}-{n}",
                        "member": {"external_id": member["external_id"]},
                        "occurred_at": _iso(at),
                        "amount": str(sum(Decimal(price) for _, price in items)),
                        "currency": self.currency,
                        "attributes": {"items": [name for name, _ in items], "store": "Harbourside"},
                    }
                )
        await api.send_events(events)
        for member in members:
            if member["external_id"] in lapsed:
                [joined] = (await api.get("/v1/members", external_id=member["external_id"]))["items"]
                await api.patch(f"/v1/members/{joined['id']}", {k: v for k, v in member.items() if k != "external_id"})
                ids[member["external_id"]] = joined["id"]
        regular = ids[members[0]["external_id"]]
        await api.post("/v1/redemptions", {"member_id": regular, "reward_id": free["id"]})
        survey = await self.listening([ids[m["external_id"]] for m in members])
        await self.work()  # among the jobs: the SLA breach sweep
        tenant = await self.finish({"regular": regular, "occasional": ids[members[1]["external_id"]]})
        await self.listened(survey)
        return tenant

    async def listening(self, member_ids: list[str]) -> str:
        """Complaints and a survey: two case categories with SLAs, four cases (one handled to the end with a goodwill
        gesture, one left unanswered past its first-reply SLA: the worker flags the breach), a satisfaction survey
        that follows closed cases, a campaign inviting everyone, and answers. Returns the survey's id."""
        api = self.api
        await api.post(
            "/v1/case-categories",
            {
                "code": "quality",
                "names": {"en": "Food and drink quality"},
                "default_priority": "high",
                "first_reply_hours": 4,
                "resolution_hours": 48,
                "business_hours": {"days": [1, 2, 3, 4, 5, 6], "start": "07:00", "end": "19:00", "holidays": True},
                "notify": ["team:shop-managers"],
            },
        )
        await api.post(
            "/v1/case-categories",
            {"code": "billing", "names": {"en": "Payments and beans"}, "first_reply_hours": 2, "resolution_hours": 24},
        )
        levels = ["very_satisfied", "satisfied", "neutral", "dissatisfied", "very_dissatisfied"]
        survey = await api.post(
            "/v1/surveys",
            {
                "code": "after-visit",
                "name": "How was your coffee?",
                "status": "active",
                "nps_question": "How likely are you to recommend Harbour Coffee to a friend?",
                "invite_on": {"trigger": "case.closed"},
                "factors": [
                    {
                        "code": "service",
                        "name": "Service",
                        "factors": [
                            {
                                "code": "attitude",
                                "name": "Attitude",
                                "questions": [{"code": "q_friendly", "text": "The baristas were friendly"}],
                            },
                            {
                                "code": "speed",
                                "name": "Speed",
                                "questions": [{"code": "q_quick", "text": "I was served quickly"}],
                            },
                        ],
                    },
                    {
                        "code": "product",
                        "name": "Product",
                        "questions": [{"code": "q_taste", "text": "My drink tasted as it should"}],
                    },
                    {
                        "code": "savings",
                        "name": "Benefit",
                        "questions": [{"code": "q_beans", "text": "Beans are worth collecting"}],
                    },
                ],
            },
        )
        received = self.now - timedelta(days=3)
        cold = await api.post(
            "/v1/cases",
            {
                "member_id": member_ids[0],
                "kind": "complaint",
                "channel": "store",
                "category": "quality",
                "subject": "Latte served cold, twice this week",
                "received_at": _iso(received),
            },
        )
        for action, body in (
            ("assign", {"assignee": "manager:harbourside"}),
            ("respond", {"note": "Sorry! We are looking at the steam wand today."}),
            ("investigate", {"note": "Steam wand thermostat checked."}),
            (
                "resolve",
                {
                    "cause": "The steam wand thermostat had drifted.",
                    "prevention": "Milk temperature checked with a probe at every opening.",
                    "goodwill": {"points": 50},
                },
            ),
            ("reply", {"note": "Fixed, and 50 beans on your card. Thank you for telling us."}),
            ("close", {}),
        ):
            await api.post(f"/v1/cases/{cold['id']}/{action}", body)
        # Charged twice, received two days ago, never answered: past its 2-hour first-reply SLA.
        await api.post(
            "/v1/cases",
            {
                "member_id": member_ids[1],
                "kind": "complaint",
                "channel": "app",
                "category": "billing",
                "subject": "Charged twice for one flat white",
                "received_at": _iso(self.now - timedelta(days=2)),
            },
        )
        question = await api.post(
            "/v1/cases",
            {"member_id": member_ids[2], "kind": "question", "channel": "web", "subject": "Do you have oat milk?"},
        )
        await api.post(f"/v1/cases/{question['id']}/respond", {"note": "Yes, oat and almond, at no extra cost."})
        await api.post(
            "/v1/cases",
            {"member_id": member_ids[3], "kind": "compliment", "channel": "social", "subject": "Best cortado in town"},
        )
        await api.post(f"/v1/surveys/{survey['id']}/invitations", {"campaign": "winter", "member_ids": member_ids})
        invitations = await api.all_items(f"/v1/surveys/{survey['id']}/invitations")
        for n, invitation in enumerate(sorted(invitations, key=lambda i: i["occasion"])[:7]):
            pick = [self.rng.choices(range(5), weights=(4, 5, 2, 1, 1))[0] for _ in range(4)]
            await api.post(
                f"/v1/surveys/{survey['id']}/responses",
                {
                    "invitation_id": invitation["id"],
                    "answers": dict(
                        zip(("q_friendly", "q_quick", "q_taste", "q_beans"), (levels[p] for p in pick), strict=True)
                    ),
                    "nps": self.rng.choice([10, 9, 9, 8, 7, 6, 10]) if n % 3 else 9,
                },
            )
        return str(survey["id"])

    async def listened(self, survey_id: str) -> None:
        """What the demo shows of cases and the survey."""
        cases = await self.api.all_items("/v1/cases")
        breached = [c for c in cases if c["breached"]]
        self.tenant.counts["cases"] = len(cases)
        self.tenant.counts["cases_breached"] = len(breached)
        self.tenant.notes["cases"] = ", ".join(f"{c['subject']} ({c['status']})" for c in cases)
        results = await self.api.get(f"/v1/surveys/{survey_id}/results")
        self.tenant.counts["survey_responses"] = results["responses"]
        group = results["groups"][0] if results["groups"] else None
        if group is not None:
            values = ", ".join(f"{f['code']} {f['standardised']}" for f in group["factors"] if f["parent"] is None)
            nps = group["nps"]["score"] if group["nps"] else None
            self.tenant.notes["survey"] = (
                f"{results['responses']} of {results['invitations']} invited answered (rate "
                f"{results['response_rate']}); {values}; NPS {nps}"
            )
        self.tenant.extras["survey_results"] = f"/v1/surveys/{survey_id}/results"
