"""The demo hook's types: how a vertical plugin seeds a demo tenant of its own trade in ``fealty demo``.

A plugin answers :func:`core.plugin.spec.fealty_demo_tenants` with :class:`DemoTenant` descriptions. For each, core
creates the tenant (``<prefix>-<slug_suffix>``) and its admin key through the platform API, enables the plugin with the
given settings (and any other program fields), then awaits ``seed(ctx)`` with a :class:`DemoContext`: a
:class:`DemoApi` bound to the tenant's key (the real HTTP API, served in the demo's process), the clock, the tenant's
zone, a seeded random generator and a few helpers (``work`` runs the background jobs now, ``care`` sets up care rules
and templates, ``describe`` says who a member is). ``seed`` returns a :class:`DemoSeeded` (members worth a look, the
lines ``fealty demo`` prints to try them) or None. Core then runs the worker once more, measures the tenant's loyalty
and prints what was made.

Nothing here imports the rest of core: the module sits with the plugin types, below the hook specs.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

#: The base of every demo's random generator (each tenant's is seeded with it and the tenant's slug suffix).
DEMO_SEED = 2026
#: The domain the demo's care emails are sent from (the local SES stand-in has it verified).
DEMO_SENDER_DOMAIN = "mail.fealty-demo.com"
#: Events per ``POST /v1/events/batch`` (the API takes 1,000; this keeps each body far below the 1 MiB limit).
BATCH_SIZE = 200


class DemoError(RuntimeError):
    """The API answered something the demo did not expect (the message carries the request and the whole answer)."""


class DemoApi:
    """Calls the API with one bearer key; any answer other than the expected statuses raises :class:`DemoError`.

    ``await api.post("/v1/members", {...})`` returns the decoded JSON answer."""

    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client = client
        self.key = key

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        expect: Iterable[int] = (200, 201),
    ) -> Any:
        response = await self.client.request(
            method, path, json=body, params=params, headers={"Authorization": f"Bearer {self.key}"}
        )
        if response.status_code not in set(expect):
            raise DemoError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params or None)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.call("POST", path, body if body is not None else {})

    async def patch(self, path: str, body: Any) -> Any:
        return await self.call("PATCH", path, body)

    async def all_items(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paginated list."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            page = await self.get(path, limit=200, **params, **({"cursor": cursor} if cursor else {}))
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def enrol(self, members: Sequence[dict[str, Any]]) -> dict[str, str]:
        """Enrol the members (bodies of ``POST /v1/members``); their ids by external id."""
        ids: dict[str, str] = {}
        for body in members:
            member = await self.post("/v1/members", body)
            ids[body["external_id"]] = member["id"]
        return ids

    async def send_events(self, events: Sequence[dict[str, Any]]) -> Counter[str]:
        """Send events in time order through the batch endpoint; any item refused as bad input raises. Returns how
        many were awarded, held and rejected (a rejection with its reason is an answer, not a failure)."""
        statuses: Counter[str] = Counter()
        ordered = sorted(events, key=lambda e: datetime.fromisoformat(e["occurred_at"]))
        for start in range(0, len(ordered), BATCH_SIZE):
            chunk = ordered[start : start + BATCH_SIZE]
            answer = await self.post("/v1/events/batch", {"events": chunk})
            for item in answer["results"]:
                if item["result"] == "error":
                    raise DemoError(f"event {item['event_id']} was refused: {item['problem']}")
                statuses[item["outcome"]["status"]] += 1
        return statuses

    async def send_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send one event; its outcome."""
        outcome: dict[str, Any] = await self.post("/v1/events", event)
        return outcome


def money(value: float | Decimal | str) -> str:
    """An amount as the API takes it: a string with two decimals, rounded half up."""
    return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def iso(moment: datetime) -> str:
    """An aware time as the API takes it (RFC 3339, UTC)."""
    return moment.astimezone(UTC).isoformat()


@dataclass
class DemoSeeded:
    """What a demo's ``seed`` returns: what is worth a look, for ``fealty demo``'s report (all optional)."""

    #: Members worth a look by role ("diamond", "taxi"...): their ids. The report describes each (name, tier, points).
    members: dict[str, str] = field(default_factory=dict)
    #: Other ids or values worth showing (a held event, a voucher code...).
    extras: dict[str, str] = field(default_factory=dict)
    #: Counts of what was made (sites, stays...), beside the ones core counts (members, events, redemptions...).
    counts: dict[str, int] = field(default_factory=dict)
    #: What to try, printed as they are after the tenants' keys: shell lines (``VAR=value   # comment``, ``curl``
    #: commands using the tenant's key as ``$<key_variable>``, comments).
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class DemoTenant:
    """A demo tenant a plugin seeds: what ``fealty_demo_tenants`` returns a list of."""

    #: The tenant's slug is ``<prefix>-<slug_suffix>`` (``demo-hotel``): lower-case letters, digits and hyphens.
    slug_suffix: str
    #: The tenant's name, e.g. ``Grand Hotels (demo)``.
    name: str
    #: ISO 4217 currency and IANA time zone of the program.
    currency: str
    timezone: str
    #: Seeds the tenant through ``ctx.api`` (created, its plugin enabled); may return a :class:`DemoSeeded`.
    seed: Callable[[DemoContext], Awaitable[DemoSeeded | None]]
    #: ISO 3166 country of the tenant.
    country: str | None = None
    #: The locale of the demo's customers and care templates (``ctx.locale``), e.g. ``en-GB`` or ``zh-CN``.
    locale: str = "en"
    #: The plugin's tenant settings, validated by its settings schema when the plugin is enabled.
    settings: dict[str, Any] = field(default_factory=dict)
    #: Other program fields set with the plugin (``PATCH /v1/program``), e.g. ``{"points_name": "Grand Points"}``.
    program: dict[str, Any] = field(default_factory=dict)
    #: The shell variable ``fealty demo`` prints the tenant's admin key as (``KH=fty_...``); default ``K`` and the
    #: suffix in capitals.
    key_variable: str | None = None


@dataclass(frozen=True, kw_only=True)
class DemoContext:
    """What a demo's ``seed`` receives: the tenant made for it, an API client bound to its key, the clock, helpers."""

    #: The tenant's admin API, through the real HTTP API of the demo's process.
    api: DemoApi
    tenant_id: uuid.UUID
    slug: str
    name: str
    #: The plugin enabled for the tenant (``None`` for core's own demo).
    plugin: str | None
    #: The moment the demo runs (UTC, aware): seed history before it, bookings after it.
    now: datetime
    #: The tenant's time zone.
    tz: ZoneInfo
    locale: str
    currency: str
    #: The shell variable the tenant's key is printed as (``KH``), for the lines a seed returns.
    key_variable: str
    #: Seeded with :data:`DEMO_SEED` and the slug suffix: the same demo on every run, shifted to today.
    rng: random.Random
    _work: Callable[[], Awaitable[None]]

    @property
    def today(self) -> date:
        """Today in the tenant's zone."""
        return self.now.astimezone(self.tz).date()

    def local(self, day: date, hour: int, minute: int = 0) -> datetime:
        """A local time of the tenant's zone on ``day`` (``minute`` may exceed 59: it is added)."""
        return datetime.combine(day, time(hour), tzinfo=self.tz) + timedelta(minutes=minute)

    async def work(self) -> None:
        """Run the background work for this tenant now, as a worker would: pending points whose time has come post,
        tiers renew, the plugins' recurring jobs and the care engine run. Raises :class:`DemoError` if a job fails."""
        await self._work()

    async def care(self, rules: Sequence[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        """The tenant's sender (verified in the local SES stand-in), and a care rule with its template for each
        ``(trigger, texts by locale, rule fields)``; ``channels`` among the fields defaults to ``["email"]``."""
        await self.api.patch(
            "/v1/care/settings",
            {"email_from": f"{self.name.split(' (')[0]} <hello@{DEMO_SENDER_DOMAIN}>", "sms_sender_id": "Fealty"},
        )
        for trigger, texts, fields in rules:
            template = await self.api.post(
                "/v1/care/templates", {"name": f"{trigger} ({self.slug})", "trigger": trigger, "texts": texts}
            )
            extra = dict(fields)
            channels = extra.pop("channels", ["email"])
            await self.api.post(
                "/v1/care/rules",
                {"name": trigger, "trigger": trigger, "template_id": template["id"], "channels": channels, **extra},
            )

    async def describe(self, member_id: str) -> str:
        """A member in words, as they stand: ``Ada Whitfield: diamond, 174,970 points``."""
        member = await self.api.get(f"/v1/members/{member_id}")
        return f"{member['name']}: {member['tier'] or 'no tier'}, {member['balance']['available']:,} points"


__all__ = [
    "BATCH_SIZE",
    "DEMO_SEED",
    "DEMO_SENDER_DOMAIN",
    "DemoApi",
    "DemoContext",
    "DemoError",
    "DemoSeeded",
    "DemoTenant",
    "iso",
    "money",
]
