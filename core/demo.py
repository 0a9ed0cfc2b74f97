"""``fealty demo``: seed realistic demo tenants through the public HTTP API, in-process.

Everything is done the way an integration would do it -- the platform operator creates the tenants, their admins
configure the programs, the property management system and the pumps send events (backdated, in batches), the front
desk and the till redeem -- through the API served in this process (``httpx.ASGITransport``), so the demo exercises
the same code as ``make serve``. The background work an embedded worker would do meanwhile (posting pending points,
tier renewals, the plugins' daily jobs) is driven with :func:`core.worker.tick`.

Three tenants, each only when what it needs is installed:

* ``<prefix>-hotel`` (plugin ``hotel``): a hotel group in London, Hilton-like Silver/Gold/Diamond status, 25 guests
  and about six months of stays;
* ``<prefix>-fuel`` (plugin ``fuel``): a fuel network around Shanghai, six sites (one not taking part), 30 drivers
  and three months of fill-ups and shop purchases;
* ``<prefix>-coffee`` (core only): a coffee shop chain with an earning rule, a weekend campaign and a reward.

Data are drawn from ``random.Random`` seeded with 2026 (plus one per tenant), relative to the current time: the same
demo, shifted to today. The hotel's status and milestones count this calendar year's nights only (as the tiers are
configured): the demo is at its fullest from July on, and early in a year few guests hold a status yet.

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
HOTEL_PLUGIN = "hotel"
FUEL_PLUGIN = "fuel"


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
    #: Verticals left out because their plugin is not installed.
    skipped: list[str] = field(default_factory=list)
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


def demo_slugs(prefix: str, plugins: Iterable[str], contributed: Iterable[DemoTenant] = ()) -> list[str]:
    installed = set(plugins)
    slugs = [f"{prefix}-hotel"] if HOTEL_PLUGIN in installed else []
    slugs += [f"{prefix}-fuel"] if FUEL_PLUGIN in installed else []
    slugs += [f"{prefix}-{demo.slug_suffix}" for demo in contributed]
    return [*slugs, f"{prefix}-coffee"]


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
    installed = set(runtime.plugins.available())
    contributed = runtime.plugins.demo_tenants()
    slugs = demo_slugs(prefix, installed, [demo for _, demo in contributed])
    if len(set(slugs)) != len(slugs):
        raise DemoError(f"two demo tenants would share a slug: {slugs}")
    existing = {t["slug"] for t in await platform.all_items("/v1/platform/tenants")}
    if taken := [s for s in slugs if s in existing]:
        raise DemoAlreadySeeded(taken)
    result = DemoResult([])
    if HOTEL_PLUGIN in installed:
        result.tenants.append(await HotelDemo(platform, runtime, f"{prefix}-hotel", now).seed())
    else:
        result.skipped.append("hotel (plugin 'hotel' is not installed)")
    if FUEL_PLUGIN in installed:
        result.tenants.append(await FuelDemo(platform, runtime, f"{prefix}-fuel", now).seed())
    else:
        result.skipped.append("fuel (plugin 'fuel' is not installed)")
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


# --- tenant 1: a hotel group ----------------------------------------------------------------------------------------

#: code -> (name, brand, category, nightly rate range in GBP)
HOTEL_PROPERTIES: dict[str, tuple[str, str, str, tuple[int, int]]] = {
    "LON-1": ("Grand London Bankside", "grand", "5", (175, 260)),
    "EDI-1": ("Grand Edinburgh Old Town", "grand", "4", (130, 185)),
    "BTH-1": ("Grand Bath Spa Resort", "grand", "6", (210, 320)),
    "MAN-1": ("Grand Express Manchester", "express", "2", (70, 99)),
}

HOTEL_TIERS: list[dict[str, Any]] = [
    {
        "code": code,
        "name": name,
        "rank": rank,
        "qualification": {
            "window": {"kind": "calendar_year"},
            "mode": "any",
            "criteria": [
                {"metric": "nights", "min": nights},
                {"metric": "stays", "min": stays},
                {"metric": "hotel_base_points", "min": points},
            ],
        },
        "validity": {"kind": "fixed_date", "years_after": 2, "month": 2, "day": 31},
    }
    for code, name, rank, nights, stays, points in (
        ("silver", "Silver", 1, "10", "4", "25000"),
        ("gold", "Gold", 2, "40", "20", "75000"),
        ("diamond", "Diamond", 3, "60", "30", "120000"),
    )
]

#: How each kind of guest travels: days between stays, nights a stay, where, at what rate, through which channel.
GUEST_PROFILES: dict[str, dict[str, Any]] = {
    "road_warrior": {"gap": (2, 5), "nights": (2, 4), "homes": ["LON-1", "EDI-1", "MAN-1"], "rate": "corporate"},
    "consultant": {"gap": (5, 9), "nights": (2, 4), "homes": ["LON-1", "MAN-1", "EDI-1"], "rate": "corporate"},
    "frequent": {"gap": (8, 15), "nights": (1, 3), "homes": ["LON-1", "EDI-1", "BTH-1"], "rate": "flexible"},
    "regular": {"gap": (21, 45), "nights": (1, 3), "homes": ["LON-1", "BTH-1", "EDI-1", "MAN-1"], "rate": "advance"},
    "occasional": {"gap": (45, 110), "nights": (1, 2), "homes": ["BTH-1", "LON-1", "MAN-1"], "rate": "package"},
    "new": {"gap": None, "nights": (1, 1), "homes": ["LON-1"], "rate": "flexible"},
}

#: (name, profile, preferences)
HOTEL_GUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("Ada Whitfield", "road_warrior", {"drink": "green tea", "pillow": "firm"}),
    ("Rahul Mehta", "consultant", {"snack": "dark chocolate"}),
    ("Sophie Laurent", "frequent", {"drink": "champagne"}),
    ("Tom Okafor", "frequent", {"pillow": "memory foam"}),
    ("Hannah Schmidt", "frequent", {"drink": "sparkling water", "snack": "macarons"}),
    ("James O'Connell", "regular", {"drink": "craft beer"}),
    ("Priya Nair", "regular", {"snack": "fresh mango"}),
    ("Oliver Bennett", "regular", {}),
    ("Mei Lin Chen", "regular", {"drink": "jasmine tea", "pillow": "soft"}),
    ("Lucas Moreau", "regular", {"drink": "red wine"}),
    ("Grace Adeyemi", "regular", {"snack": "shortbread"}),
    ("Daniel Novak", "regular", {}),
    ("Isabella Rossi", "regular", {"drink": "espresso"}),
    ("Samuel Clarke", "occasional", {}),
    ("Aisha Rahman", "occasional", {"snack": "dates"}),
    ("Ethan Walsh", "occasional", {}),
    ("Chloe Dubois", "occasional", {"pillow": "feather"}),
    ("Mohammed Al-Farsi", "occasional", {"drink": "mint tea"}),
    ("Emily Hughes", "occasional", {}),
    ("Kenji Watanabe", "occasional", {"drink": "sencha"}),
    ("Zoe Papadopoulos", "occasional", {}),
    ("Benjamin Carter", "occasional", {}),
    ("Fatima Haddad", "new", {"snack": "pistachio baklava"}),
    ("Noah Fischer", "new", {}),
    ("Olivia Grant", "new", {"drink": "elderflower cordial"}),
]


@dataclass
class HotelStay:
    guest: str
    reservation: str
    property: str
    check_in: date
    check_out: date
    rate_type: str
    channel: str
    folio: list[dict[str, str]]
    checked_out_at: datetime


class HotelDemo(_TenantDemo):
    key_variable = "KH"
    name = "Grand Hotels (demo)"
    timezone = "Europe/London"
    currency = "GBP"
    country = "GB"
    plugin = HOTEL_PLUGIN
    seed_offset = 1

    history_days = 182

    def guests(self) -> list[dict[str, Any]]:
        members = []
        for i, (name, profile, preferences) in enumerate(HOTEL_GUESTS):
            first, last = name.split(" ", 1)
            email_name = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
            member: dict[str, Any] = {
                "external_id": f"G-{1001 + i}",
                "name": name,
                "email": f"{email_name}@example.com",
                "phone": f"07911 1{self.rng.randrange(10**5):05d}",
                "locale": "zh-CN" if i % 2 else "en-GB",
                "attributes": {"profile": profile, **({"preferences": preferences} if preferences else {})},
                "consents": [
                    {"channel": "email", "purpose": "service", "granted": True, "source": "web"},
                    {"channel": "email", "purpose": "marketing", "granted": self.rng.random() < 0.6, "source": "web"},
                ],
            }
            members.append(member)
        return members

    def stays(self, members: Sequence[dict[str, Any]]) -> list[HotelStay]:
        stays: list[HotelStay] = []
        start = self.today - timedelta(days=self.history_days)
        latest = self.now - timedelta(hours=1)
        number = 40000
        for member in members:
            profile = GUEST_PROFILES[member["attributes"]["profile"]]
            if profile["gap"] is None:
                continue
            day = start + timedelta(days=self.rng.randint(0, profile["gap"][1]))
            while True:
                nights = self.rng.randint(*profile["nights"])
                check_out = day + timedelta(days=nights)
                checked_out_at = self.local(check_out, 10, self.rng.randint(0, 90))
                if checked_out_at > latest:
                    break
                home = self.rng.choice(profile["homes"])
                channel = "direct"
                if profile is GUEST_PROFILES["occasional"] and self.rng.random() < 0.15:
                    channel = "ota"  # booked through an online travel agency: earns nothing
                elif self.rng.random() < 0.3:
                    channel = "mobile_app"
                number += self.rng.randint(1, 40)
                stays.append(
                    HotelStay(
                        guest=member["external_id"],
                        reservation=f"R-{number}",
                        property=home,
                        check_in=day,
                        check_out=check_out,
                        rate_type=profile["rate"],
                        channel=channel,
                        folio=self.folio(home, nights),
                        checked_out_at=checked_out_at,
                    )
                )
                day = check_out + timedelta(days=self.rng.randint(*profile["gap"]))
        return stays

    def folio(self, code: str, nights: int) -> list[dict[str, str]]:
        low, high = HOTEL_PROPERTIES[code][3]
        rate = self.rng.randint(low, high)
        lines = [{"category": "room", "amount": _money(rate), "tax": _money(rate * 0.2)} for _ in range(nights)]
        extras = [("food_beverage", 18, 95, 0.7), ("minibar", 6, 30, 0.2), ("parking", 25, 40, 0.25)]
        if code == "BTH-1":
            extras.append(("spa", 60, 180, 0.6))
        for category, low_, high_, chance in extras:
            if self.rng.random() < chance:
                amount = self.rng.randint(low_ * 100, high_ * 100) / 100
                lines.append({"category": category, "amount": _money(amount), "tax": _money(amount * 0.2)})
        return lines

    def stay_event(
        self,
        stay: HotelStay,
        status: str = "checked_out",
        n: int = 1,
        occurred_at: datetime | None = None,
        **changes: Any,
    ) -> dict[str, Any]:
        """The PMS's message about a reservation (one per change, each with its own event id)."""
        _, brand, category, _ = HOTEL_PROPERTIES[stay.property]
        attributes = {
            "reservation_id": stay.reservation,
            "property": stay.property,
            "brand": brand,
            "property_category": category,
            "check_in": stay.check_in.isoformat(),
            "check_out": stay.check_out.isoformat(),
            "rooms": 1,
            "rate_type": stay.rate_type,
            "booking_channel": stay.channel,
            "status": status,
            "payment_status": "paid",
            "folio": stay.folio,
        } | changes
        return {
            "type": "hotel.stay",
            "event_id": f"{stay.reservation}:{changes.get('payment_status', status)}:{n}",
            "member": {"external_id": stay.guest},
            "occurred_at": _iso(occurred_at or stay.checked_out_at),
            "currency": self.currency,
            "attributes": attributes,
        }

    def booking(self, guest: str, reservation: str, code: str, arrival: date, nights: int) -> HotelStay:
        return HotelStay(
            guest, reservation, code, arrival, arrival + timedelta(days=nights), "flexible", "direct", [], self.now
        )

    async def seed(self) -> SeededTenant:
        await self.create_tenant()
        api = self.api
        await api.patch(
            "/v1/program",
            {
                "plugins": [HOTEL_PLUGIN],
                "points_name": "Grand Points",
                "expiry_policy": {"kind": "inactivity", "value": 24},
                "plugin_settings": {
                    HOTEL_PLUGIN: {
                        "seed_defaults": False,  # the demo sets up its own tiers below
                        "brand_points_per_unit": {"express": 5},
                        "tier_bonus_percent": {"silver": 20, "gold": 80, "diamond": 100},
                        "perks": {
                            "silver": {"priority_check_in": True, "late_checkout": "14:00"},
                            "gold": {"priority_check_in": True, "late_checkout": "14:00", "welcome_gift": True},
                            "diamond": {
                                "priority_check_in": True,
                                "late_checkout": "16:00",
                                "welcome_gift": True,
                                "butler": True,
                            },
                        },
                        "pre_arrival_tiers": ["gold", "diamond"],
                    }
                },
            },
        )
        for tier in HOTEL_TIERS:
            await api.post("/v1/tiers", tier)
        free_night = await api.post(
            "/v1/rewards",
            {
                "code": "FREE-NIGHT-CAT4",
                "name": "A free night at a category 4 hotel",
                "description": "One night for two, breakfast included, at Grand Edinburgh Old Town or alike.",
                "kind": "hotel.free_night",
                "points_cost": 25000,
                "attributes": {"category": "4", "nights": 1},
                "voucher_valid_days": 365,
            },
        )
        tea = await api.post(
            "/v1/rewards",
            {
                "code": "AFTERNOON-TEA",
                "name": "Afternoon tea for two",
                "points_cost": 6000,
                "stock": 50,
                "per_member_limit": 2,
                "voucher_valid_days": 90,
            },
        )

        await self.care([("hotel.pre_arrival", HOTEL_PRE_ARRIVAL, {"channels": ["email"]})])
        members = self.guests()
        ids = await _enrol(api, members)
        stays = self.stays(members)
        statuses = await api.send_events([self.stay_event(s) for s in stays])
        await self.work()  # the stays' points post (they checked out days ago)

        by_guest: dict[str, list[HotelStay]] = {}
        for s in stays:
            by_guest.setdefault(s.guest, []).append(s)
        names = {m["external_id"]: m["name"] for m in members}
        guest = {name: external for external, name in names.items()}
        roles = {
            "diamond": guest["Ada Whitfield"],
            "gold": guest["Rahul Mehta"],
            "frequent": guest["Sophie Laurent"],
            "payment_failed": guest["James O'Connell"],
            "folio_corrected": guest["Priya Nair"],
            "new": guest["Fatima Haddad"],
        }

        # A failed payment takes back what a stay earned, with its nights.
        failed = next(s for s in by_guest[roles["payment_failed"]] if s.channel != "ota")
        later = min(self.now, failed.checked_out_at + timedelta(days=3))
        await api.send_event(self.stay_event(failed, n=2, occurred_at=later, payment_status="failed"))
        # A folio corrected after check-out (a dinner posted late): the earning event is reversed, then the stay is
        # sent again with the whole folio (a reservation earns once, so a correction goes through a reversal).
        corrected = next(s for s in reversed(by_guest[roles["folio_corrected"]]) if s.channel != "ota")
        page = await api.get("/v1/events", event_id=f"{corrected.reservation}:checked_out:1")
        await api.post(
            f"/v1/events/{page['items'][0]['id']}/reverse", {"reason": "folio corrected: a dinner was posted late"}
        )
        dinner = {"category": "food_beverage", "amount": "64.50", "tax": "12.90", "description": "dinner, posted late"}
        fixed = dataclasses.replace(corrected, folio=[*corrected.folio, dinner])
        await api.send_event(self.stay_event(fixed, n=2, occurred_at=self.now - timedelta(minutes=30)))
        # A booking cancelled ahead of arrival earns nothing.
        trip = self.booking(guest["Samuel Clarke"], "R-50001", "BTH-1", self.today + timedelta(days=12), 2)
        await api.send_event(self.stay_event(trip, "booked", occurred_at=self.now - timedelta(days=9)))
        await api.send_event(self.stay_event(trip, "cancelled", occurred_at=self.now - timedelta(minutes=20)))
        # A Diamond and a Gold guest arrive the day after tomorrow: the hotel is asked to prepare their welcome.
        arrival = self.today + timedelta(days=2)
        for role, reservation, code in (("diamond", "R-50002", "LON-1"), ("gold", "R-50003", "EDI-1")):
            trip = self.booking(roles[role], reservation, code, arrival, 3)
            await api.send_event(self.stay_event(trip, "booked", occurred_at=self.now - timedelta(minutes=10)))

        # Milestones: the Diamond guest takes 5,000 points for the first, a suite upgrade for the second.
        diamond_id = ids[roles["diamond"]]
        milestones = (await api.get(f"/v1/hotel/members/{diamond_id}/milestones"))["items"]
        for milestone, choice in zip(milestones, ("points", "suite_upgrade"), strict=False):
            await api.post(f"/v1/hotel/members/{diamond_id}/milestones/{milestone['id']}/choose", {"choice": choice})
        # Redemptions: a free night certificate, and an afternoon tea used at the hotel.
        night = await api.post("/v1/redemptions", {"member_id": diamond_id, "reward_id": free_night["id"]})
        gold_id = ids[roles["gold"]]
        voucher = await api.post("/v1/redemptions", {"member_id": gold_id, "reward_id": tea["id"]})
        await api.post(
            f"/v1/redemptions/{voucher['id']}/use", {"location": "Grand London Bankside", "reference": "folio 88412"}
        )
        await self.work()

        self.tenant.extras = {"free_night_voucher": night["voucher_code"], "free_night_redemption": night["id"]}
        self.tenant.counts["stays_sent"] = len(stays)
        self.tenant.counts["stays_awarded"] = statuses["awarded"]
        return await self.finish({role: ids[external] for role, external in roles.items()})


# --- tenant 2: a fuel network ---------------------------------------------------------------------------------------

#: code, name, region, overrides; the last one does not take part in the programme.
FUEL_SITES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("SH-001", "Pudong Expressway", "Shanghai", {}),
    ("SH-002", "Hongqiao Transport Hub", "Shanghai", {}),
    ("SH-003", "Minhang South", "Shanghai", {}),
    ("SZ-101", "Suzhou Industrial Park", "Suzhou", {}),
    ("TRUCK-7", "G15 Truck Stop", "Jiaxing", {"tank_size_litres": "600", "daily_max_litres": "1200"}),
    ("HZ-900", "Hangzhou Bay (franchise)", "Hangzhou", {}),
]
NOT_PARTICIPATING = "HZ-900"
#: Pump prices, CNY a litre.
FUEL_PRICES = {"gasoline": Decimal("7.82"), "premium": Decimal("8.36"), "diesel": Decimal("7.49")}

FUEL_LEVELS: list[dict[str, Any]] = [
    {"code": "member", "name": "Member", "rank": 0},
    {
        "code": "silver",
        "name": "Silver",
        "rank": 1,
        "downgrade": "to_qualified",
        "validity": {"kind": "days", "days": 30},
        "qualification": {
            "window": {"kind": "rolling_days", "days": 90},
            "criteria": [{"metric": "fuel_spend", "min": "2500"}],
        },
    },
    {
        "code": "gold",
        "name": "Gold",
        "rank": 2,
        "downgrade": "to_qualified",
        "validity": {"kind": "days", "days": 30},
        "qualification": {
            "window": {"kind": "rolling_days", "days": 90},
            "mode": "any",
            "criteria": [{"metric": "fuel_spend", "min": "6000"}, {"metric": "fill_ups", "min": "18"}],
        },
    },
]

#: How each kind of driver fills up: days between fill-ups, litres, grades, sites, how often they shop.
DRIVER_PROFILES: dict[str, dict[str, Any]] = {
    "taxi": {"gap": (1, 2), "litres": (35, 50), "grades": ["gasoline"], "sites": 1, "shop": 0.3},
    "commuter": {"gap": (5, 9), "litres": (35, 55), "grades": ["gasoline"] * 3 + ["premium"], "sites": 2, "shop": 0.4},
    "weekend": {"gap": (10, 20), "litres": (30, 60), "grades": ["premium", "gasoline"], "sites": 2, "shop": 0.5},
    "trucker": {"gap": (2, 4), "litres": (250, 450), "grades": ["diesel"], "sites": 0, "shop": 0.3},
    "lapsed": {"gap": (5, 10), "litres": (30, 50), "grades": ["gasoline"], "sites": 1, "shop": 0.3},
    "new": {"gap": (4, 8), "litres": (30, 50), "grades": ["gasoline", "premium"], "sites": 1, "shop": 0.4},
}
DRIVERS: list[tuple[str, str]] = [
    ("Wang Wei", "taxi"),
    ("Li Na", "taxi"),
    ("Zhang Lei", "commuter"),
    ("Liu Yang", "commuter"),
    ("Chen Jing", "commuter"),
    ("Yang Fan", "commuter"),
    ("Zhao Min", "commuter"),
    ("Huang Tao", "commuter"),
    ("Zhou Xin", "commuter"),
    ("Wu Hao", "commuter"),
    ("Xu Li", "commuter"),
    ("Sun Qiang", "commuter"),
    ("Ma Jun", "commuter"),
    ("Zhu Hong", "taxi"),
    ("Hu Bin", "commuter"),
    ("Guo Ying", "weekend"),
    ("He Peng", "weekend"),
    ("Gao Yan", "weekend"),
    ("Lin Feng", "weekend"),
    ("Luo Mei", "weekend"),
    ("Zheng Kai", "weekend"),
    ("Liang Hui", "weekend"),
    ("Song Jie", "trucker"),
    ("Xie Lan", "trucker"),
    ("Tang Rui", "lapsed"),
    ("Han Bo", "lapsed"),
    ("Feng Xue", "lapsed"),
    ("Deng Chao", "lapsed"),
    ("Cao Ning", "new"),
    ("Peng Yu", "new"),
]
#: Days ago the lapsed drivers stopped coming: two inside the retention report's cohort window (churned), two
#: long enough ago for the win-back job.
LAPSED_DAYS_AGO = (38, 47, 66, 75)
SHOP_ITEMS = [("coffee", 12, 28), ("snacks", 6, 35), ("car_care", 25, 120), ("drinks", 4, 15)]


class FuelDemo(_TenantDemo):
    key_variable = "KF"
    name = "Huangpu Energy (demo)"
    timezone = "Asia/Shanghai"
    currency = "CNY"
    country = "CN"
    plugin = FUEL_PLUGIN
    seed_offset = 2
    history_days = 91

    def drivers(self) -> list[dict[str, Any]]:
        members = []
        for i, (name, profile) in enumerate(DRIVERS):
            member: dict[str, Any] = {
                "external_id": f"D-{2001 + i}",
                "card": f"622200{1230001 + i}",
                "name": name,
                "phone": f"139 {self.rng.randrange(10**4):04d} {self.rng.randrange(10**4):04d}",
                "locale": "zh-CN",
                "attributes": {"profile": profile},
                "consents": [{"channel": "sms", "purpose": "marketing", "granted": self.rng.random() < 0.5}],
            }
            members.append(member)
        return members

    def fill_up(self, card: str, at: datetime, site: str, grade: str, litres: Decimal, event_id: str) -> dict[str, Any]:
        return {
            "type": "fuel.fill_up",
            "event_id": event_id,
            "member": {"card": card},
            "occurred_at": _iso(at),
            "quantity": str(litres),
            "unit": "litre",
            "amount": _money(litres * FUEL_PRICES[grade]),
            "currency": self.currency,
            "attributes": {
                "site": site,
                "pump": self.rng.randint(1, 12),
                "grade": grade,
                "payment_method": self.rng.choice(["card", "mobile", "mobile", "cash"]),
            },
        }

    def history(self, members: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        regular_sites = [code for code, *_ in FUEL_SITES if code not in ("TRUCK-7", NOT_PARTICIPATING)]
        lapsed = iter(LAPSED_DAYS_AGO)
        receipt = 880000
        for member in members:
            profile_name = member["attributes"]["profile"]
            profile = DRIVER_PROFILES[profile_name]
            homes = self.rng.sample(regular_sites, profile["sites"]) if profile["sites"] else ["TRUCK-7"]
            first = self.today - timedelta(days=self.history_days - self.rng.randint(0, profile["gap"][1]))
            last = self.today - timedelta(days=1)
            if profile_name == "new":
                first = self.today - timedelta(days=self.rng.randint(15, 25))
            if profile_name == "lapsed":
                last = self.today - timedelta(days=next(lapsed))
            day = first
            while day <= last:
                at = self.local(day, self.rng.randint(6, 21), self.rng.randint(0, 59))
                site = self.rng.choice(homes)
                if profile_name == "weekend" and self.rng.random() < 0.08:
                    site = NOT_PARTICIPATING  # a franchise station outside the programme: earns nothing
                grade = self.rng.choice(profile["grades"])
                litres = Decimal(self.rng.randint(profile["litres"][0] * 100, profile["litres"][1] * 100)) / 100
                receipt += self.rng.randint(1, 9)
                events.append(self.fill_up(member["card"], at, site, grade, litres, f"{site}-R-{receipt}"))
                if self.rng.random() < profile["shop"] and site != NOT_PARTICIPATING:
                    category, low, high = self.rng.choice(SHOP_ITEMS)
                    receipt += 1
                    events.append(
                        {
                            "type": "fuel.shop_purchase",
                            "event_id": f"{site}-R-{receipt}",
                            "member": {"card": member["card"]},
                            "occurred_at": _iso(at + timedelta(minutes=self.rng.randint(2, 8))),
                            "amount": _money(self.rng.randint(low * 100, high * 100) / 100),
                            "currency": self.currency,
                            "attributes": {"site": site, "category": category},
                        }
                    )
                day += timedelta(days=self.rng.randint(*profile["gap"]))
        return events

    async def seed(self) -> SeededTenant:
        await self.create_tenant()
        api = self.api
        await api.patch(
            "/v1/program",
            {
                "plugins": [FUEL_PLUGIN],
                "points_name": "Huangpu Points",
                "plugin_settings": {
                    # the demo sets up its own levels below
                    FUEL_PLUGIN: {"seed_defaults": False, "earn_mode": "per_amount", "monthly_points_cap": 7000}
                },
            },
        )
        sites = {}
        for code, name, region, overrides in FUEL_SITES:
            sites[code] = await api.post("/v1/fuel/sites", {"code": code, "name": name, "region": region} | overrides)
        await api.patch(f"/v1/fuel/sites/{sites[NOT_PARTICIPATING]['id']}", {"participating": False})
        for level in FUEL_LEVELS:
            await api.post("/v1/tiers", level)
        cents_off = await api.post(
            "/v1/rewards",
            {
                "code": "FUEL-2000",
                "name": "20 fen off a litre",
                "points_cost": 2000,
                "kind": "fuel.cents_off",
                "voucher_valid_days": 90,
            },
        )
        coffee = await api.post(
            "/v1/rewards",
            {"code": "FREE-COFFEE", "name": "A free coffee in the shop", "points_cost": 400, "voucher_valid_days": 30},
        )

        await self.care([("fuel.win_back", FUEL_WIN_BACK, {"channels": ["sms"], "purpose": "marketing"})])
        members = self.drivers()
        ids = await _enrol(api, members)
        statuses = await api.send_events(self.history(members))
        await self.work()  # levels renew or move down, win-back care requests for who stopped coming

        by_name = {m["name"]: m for m in members}
        roles = {
            "taxi": "Wang Wei",
            "commuter": "Zhang Lei",
            "trucker": "Song Jie",
            "lapsed": "Deng Chao",
            "new": "Cao Ning",
        }
        # Today: a fill-up of more litres than a car's tank is held for review ...
        commuter = by_name[roles["commuter"]]
        held = await api.send_event(
            self.fill_up(
                commuter["card"],
                self.now - timedelta(hours=3),
                "SH-002",
                "gasoline",
                Decimal("128.40"),
                "SH-002-R-990001",
            )
        )
        # ... and a second fill at the same pump within minutes, which a reviewer rejects.
        taxi = by_name[roles["taxi"]]
        first_fill = self.now - timedelta(hours=5)
        await api.send_event(
            self.fill_up(taxi["card"], first_fill, "SH-001", "gasoline", Decimal("41.20"), "SH-001-R-990002")
        )
        repeat = await api.send_event(
            self.fill_up(
                taxi["card"],
                first_fill + timedelta(minutes=11),
                "SH-001",
                "gasoline",
                Decimal("38.75"),
                "SH-001-R-990003",
            )
        )
        if repeat["status"] == "held":
            await api.post(
                f"/v1/fuel/reviews/{repeat['id']}/reject",
                {"reason": "the same card twice within minutes: a customer's fill-up on a staff card (CCTV)"},
            )
        # The taxi driver turns 2,000 points into 20 fen off a litre, used at the pump; a commuter takes a coffee.
        taxi_id = ids[taxi["external_id"]]
        voucher = await api.post("/v1/redemptions", {"member_id": taxi_id, "reward_id": cents_off["id"]})
        discount = await api.post(
            f"/v1/fuel/redemptions/{voucher['id']}/apply",
            {"litres": "42.50", "price_per_litre": str(FUEL_PRICES["gasoline"]), "site": "SH-001"},
        )
        coffee_voucher = await api.post(
            "/v1/redemptions", {"member_id": ids[commuter["external_id"]], "reward_id": coffee["id"]}
        )
        await api.post(f"/v1/redemptions/{coffee_voucher['id']}/use", {"location": "SH-002 shop"})
        await self.work()

        self.tenant.extras = {
            "held_event": held["id"],
            "held_status": held["status"],
            "cents_off_redemption": voucher["id"],
            "amount_off": discount["amount_off"],
        }
        self.tenant.counts["sites"] = len(FUEL_SITES)
        self.tenant.counts["history_awarded"] = statuses["awarded"]
        return await self.finish({role: ids[by_name[name]["external_id"]] for role, name in roles.items()})


# --- tenant 3: a coffee chain on core alone -------------------------------------------------------------------------

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


HOTEL_PRE_ARRIVAL = {
    "en": {
        "subject": "{{ member.first_name }}, we look forward to welcoming you on {{ check_in|date }}",
        "body": "Your {{ tier }} perks are ready: {{ welcome_gift or 'a warm welcome' }}, late checkout until "
        "{{ perks.late_checkout or '12:00' }}.",
    },
    "zh-CN": {
        "subject": "{{ member.name }}，期待您于{{ check_in|date }}光临",
        "body": "您的{{ tier }}礼遇已备好：{{ welcome_gift or '热情欢迎' }}，"
        "可延迟退房至{{ perks.late_checkout or '12:00' }}。",
    },
}
FUEL_WIN_BACK = {
    "zh-CN": {"body": "好久不见！{{ days_inactive }}天没来加油了，本周加油每升立减0.2元。"},
    "en": {"body": "We miss you! 20 fen off a litre this week."},
}
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
        ids = await _enrol(api, members)
        events = []
        for i, member in enumerate(members):
            visits = 12 if member["attributes"]["regular"] else 4
            for n in range(visits):
                day = self.today - timedelta(days=self.rng.randint(1, 35))
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
        regular = ids[members[0]["external_id"]]
        await api.post("/v1/redemptions", {"member_id": regular, "reward_id": free["id"]})
        await self.work()
        return await self.finish({"regular": regular, "occasional": ids[members[1]["external_id"]]})
