"""What every stage shares: the input types, the tables, the context of a run and each item's state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.earning import engine
from core.errors import FealtyError
from core.events.models import Event
from core.ids import new_id
from core.ledger.models import PointBalance
from core.members.models import Member
from core.plugin.manager import PluginManager, TenantHooks
from core.plugin.types import (
    Award,
    Decision,
    EventContext,
    EventType,
    TenantView,
)
from core.program.config import TenantConfig
from core.program.settings import ProgramSettings
from core.tiers import rules as tier_rules
from core.tiers.models import TierChange as TierChangeRow

events_table = table_of(Event)
#: What storing an event writes (see ``event_row``).
EVENT_COLUMNS = (
    "tenant_id", "id", "event_id", "type", "member_id", "occurred_at", "received_at", "local_day", "amount",
    "currency", "quantity", "unit", "attributes", "status", "status_reason", "points", "reversed_points",
    "reversed_fraction", "request_hash", "outcome", "original_event_id", "decided_by", "decided_at",
)  # fmt: skip
members_table = table_of(Member)
balances_table = table_of(PointBalance)
tier_changes_table = table_of(TierChangeRow)

MAX_AMOUNT = Decimal("1e13")
#: The most points one event may earn: more is surely a wrong amount or quantity (and would not fit the ledger).
MAX_EVENT_POINTS = 10**12
#: What the pipeline reads of a member (plain rows: no ORM identity map on the hot path).
MEMBER_COLUMNS = (
    "id",
    "external_id",
    "card",
    "phone",
    "status",
    "attributes",
    "created_at",
    "timezone",
    "locale",
    "birthday",
    "tier_id",
    "tier_since",
    "tier_valid_until",
)
CORE_METRICS = ("points", "base_points", "spend", "events")


class MemberRef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Exactly one way to find the member."""

    member_id: uuid.UUID | None = None
    external_id: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    card: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    phone: Annotated[str, Meta(min_length=3, max_length=40)] | None = None


class EventIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    type: Annotated[str, Meta(min_length=1, max_length=64)]
    #: The source system's id (a POS receipt, a PMS folio, a loan instalment): retries with it apply once.
    event_id: Annotated[str, Meta(min_length=1, max_length=128)]
    member: MemberRef
    occurred_at: Annotated[datetime, Meta(tz=True)]
    amount: Decimal | None = None
    currency: Annotated[str, Meta(min_length=3, max_length=3)] | None = None
    quantity: Decimal | None = None
    unit: Annotated[str, Meta(min_length=1, max_length=16)] | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


@dataclass
class ItemResult:
    index: int
    event_id: str
    outcome: dict[str, Any] | None = None
    error: FealtyError | None = None
    duplicate: bool = False

    @property
    def status_code(self) -> int:
        if self.error is not None:
            return self.error.to_problem()["status"]  # type: ignore[no-any-return]
        return 200 if self.duplicate else 201


@dataclass
class PipelineContext:
    session: AsyncSession
    tenant_id: uuid.UUID
    program: ProgramSettings
    config: TenantConfig
    plugins: PluginManager
    now: datetime
    actor: str
    max_future: timedelta = timedelta(minutes=15)
    #: An approval of held events: the person's decision, handed to the plugins' hooks with each item.
    decision: Decision | None = None

    @property
    def hooks(self) -> TenantHooks:
        return self.program.hooks(self.plugins)

    def tenant_view(self) -> TenantView:
        return self.program.tenant_view(self.tenant_id, self.plugins)


@dataclass
class Item:
    index: int
    data: EventIn
    event_type: EventType
    attributes: Any
    request_hash: str
    amount: Decimal | None
    currency: str | None
    quantity: Decimal | None
    existing_id: uuid.UUID | None = None
    #: The member as a row of MEMBER_COLUMNS (or a Member just enrolled).
    member: Any = None
    last_activity_at: datetime | None = None
    event_uuid: uuid.UUID = field(default_factory=new_id)
    status: str = "awarded"
    reason: str | None = None
    lines: list[engine.AwardLine] = field(default_factory=list)
    plugin_awards: list[Award] = field(default_factory=list)
    #: The program-local day the event happened on (its metrics are counted on that day).
    local_day: date = date.min
    #: Every award (rule lines as awards, then the plugins'), computed once.
    awards: list[Award] = field(default_factory=list)
    credits: dict[str, Decimal] = field(default_factory=dict)
    tier_move: tier_rules.Move | None = None
    tier_before: tier_rules.TierSpec | None = None
    original: Any = None
    reverse_fraction: Decimal | None = None
    #: The plugins' view of the item, built only when the tenant has plugins (see compute).
    context: EventContext | None = None
    #: The member's tier and segments when the item was computed (for a member view built later, if needed).
    member_tier: tier_rules.TierSpec | None = None
    segments: set[str] = field(default_factory=set)
    #: The outcome as stored with the event (the answer is the very same, so a retry's answer equals the first).
    outcome: dict[str, Any] | None = None


def activity_at(item: Item, now: datetime) -> datetime:
    """When the item's member acted, for everything that counts recency (``last_activity_at``, the tier history,
    inactivity expiry): the event's own ``occurred_at``, never later than ``now``. So a backfill of old events
    leaves the state live traffic would have left, and an event dated a few minutes ahead is not activity to come."""
    return min(item.data.occurred_at, now)


def all_awards(item: Item, now: datetime) -> list[Award]:
    return item.awards
