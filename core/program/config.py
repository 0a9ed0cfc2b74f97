"""A tenant's program configuration, compiled for evaluation and cached per process.

Rules, campaigns, segments and tiers change rarely and are read by every event, so each process keeps them compiled
in memory, keyed by the tenant's ``programs.config_version``: every change bumps the version in the same transaction,
and authentication already reads the version with the key, so a request never reads stale configuration and never
pays an extra query for fresh configuration.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.campaigns.models import Campaign
from core.earning.conditions import Condition, metric_fields
from core.earning.engine import Rule, RuleDefinition, capped_rules
from core.earning.models import EarningRule
from core.program.models import Program
from core.segments.models import Segment
from core.tiers.models import Tier
from core.tiers.rules import Benefits, Qualification, TierSpec, Validity
from core.webhooks.models import WebhookEndpoint


@dataclass(frozen=True)
class SegmentSpec:
    id: uuid.UUID
    code: str
    conditions: tuple[Condition, ...]
    match: str

    @property
    def metric_fields(self) -> set[tuple[str, str]]:
        return metric_fields(self.conditions)


@dataclass(frozen=True)
class TenantConfig:
    version: int
    rules: tuple[Rule, ...] = ()
    tiers: tuple[TierSpec, ...] = ()
    segments: tuple[SegmentSpec, ...] = ()
    #: Rules or campaigns look at member.segments: the pipeline must work out each member's segments.
    needs_segments: bool = False
    capped: tuple[Rule, ...] = ()
    tiers_by_id: dict[uuid.UUID, TierSpec] = field(default_factory=dict)
    tiers_by_code: dict[str, TierSpec] = field(default_factory=dict)
    #: Event types some active webhook endpoint of the tenant listens to ("*": all).
    webhook_types: frozenset[str] = frozenset()

    def wants_outbox(self, kind: str) -> bool:
        """Whether a domain event of ``kind`` needs an outbox row. High-volume kinds (an event processed, points
        earned) are written only when an endpoint listens; rare ones always (care will read them too)."""
        return kind in ALWAYS_IN_OUTBOX or "*" in self.webhook_types or kind in self.webhook_types


#: Domain events written to the outbox whether or not an endpoint listens (rare, and care-relevant).
ALWAYS_IN_OUTBOX = frozenset({"tier.changed", "member.enrolled", "event.held", "event.reversed"})


def tier_spec(tier: Tier) -> TierSpec:
    return TierSpec(
        id=tier.id,
        code=tier.code,
        name=tier.name,
        rank=tier.rank,
        qualification=msgspec.convert(tier.qualification or {}, Qualification),
        benefits=msgspec.convert(tier.benefits or {}, Benefits),
        validity=msgspec.convert(tier.validity or {}, Validity),
        downgrade=tier.downgrade,  # type: ignore[arg-type]
    )


async def load_config(session: AsyncSession, version: int) -> TenantConfig:
    """Read and compile the current tenant's configuration (four small indexed queries)."""
    rule_rows = (await session.execute(select(EarningRule).where(EarningRule.active.is_(True)))).scalars().all()
    campaigns = {
        c.id: c for c in (await session.execute(select(Campaign).where(Campaign.active.is_(True)))).scalars().all()
    }
    rules: list[Rule] = []
    for row in rule_rows:
        definition = msgspec.convert(row.definition, RuleDefinition)
        if row.campaign_id is None:
            rules.append(Rule(row.id, definition))
            continue
        campaign = campaigns.get(row.campaign_id)
        if campaign is None:
            continue
        audience: tuple[Condition, ...] = ()
        if campaign.segments:
            audience = (Condition("member.segments", "overlaps", list(campaign.segments)),)
        rules.append(
            Rule(row.id, definition, campaign.id, campaign.name, audience, (campaign.starts_at, campaign.ends_at))
        )
    tiers = tuple(tier_spec(t) for t in (await session.execute(select(Tier).order_by(Tier.rank))).scalars().all())
    segments = tuple(
        SegmentSpec(s.id, s.code, tuple(msgspec.convert(s.conditions or [], list[Condition])), s.match)
        for s in (await session.execute(select(Segment).where(Segment.active.is_(True)))).scalars().all()
    )
    endpoint_types: set[str] = set()
    for types in (
        await session.execute(select(WebhookEndpoint.event_types).where(WebhookEndpoint.status == "active"))
    ).scalars():
        endpoint_types.update(types or [])
    needs_segments = any(
        c.field == "member.segments" for r in rules for c in (*r.definition.conditions, *r.extra_conditions)
    )
    return TenantConfig(
        version=version,
        rules=tuple(rules),
        tiers=tiers,
        segments=segments,
        needs_segments=needs_segments,
        capped=tuple(capped_rules(rules)),
        tiers_by_id={t.id: t for t in tiers},  # type: ignore[misc]
        tiers_by_code={t.code: t for t in tiers},
        webhook_types=frozenset(endpoint_types),
    )


class ConfigCache:
    def __init__(self) -> None:
        self._entries: dict[uuid.UUID, TenantConfig] = {}

    async def get(self, session: AsyncSession, tenant_id: uuid.UUID, version: int) -> TenantConfig:
        cached = self._entries.get(tenant_id)
        if cached is not None and cached.version == version:
            return cached
        config = await load_config(session, version)
        self._entries[tenant_id] = config
        return config


async def bump_config_version(session: AsyncSession) -> None:
    """Call in the transaction of any change to rules, campaigns, segments, tiers or webhook endpoints."""
    await session.execute(update(Program).values(config_version=Program.config_version + 1))


async def current_config(session: AsyncSession, cache: ConfigCache, tenant_id: uuid.UUID) -> TenantConfig:
    """The configuration when no request has read the version yet (worker jobs)."""
    version = (await session.execute(select(Program.config_version))).scalar_one()
    return await cache.get(session, tenant_id, version)
