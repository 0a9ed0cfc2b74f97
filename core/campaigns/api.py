"""HTTP: campaigns — time-boxed earning rules for segments of members."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.campaigns.models import Campaign
from core.clock import utcnow
from core.db.lookup import one_or_404
from core.earning.api import RuleOut, checked_definition
from core.earning.engine import RuleDefinition
from core.earning.models import EarningRule
from core.errors import Conflict, ValidationFailed
from core.http.deps import CurrentRuntime, Db
from core.program.config import bump_config_version
from core.runtime import Runtime
from core.segments.models import Segment
from core.validation import AwareDatetime

CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")


class CampaignIn(msgspec.Struct, forbid_unknown_fields=True):
    #: Lower-case letters, digits, ``-`` and ``_``, starting with a letter or digit.
    code: Annotated[str, Meta(min_length=1, max_length=60, pattern=CODE.pattern)]
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    rules: Annotated[list[RuleDefinition], Meta(min_length=1, max_length=50)]
    #: Segment codes; empty: every member.
    segments: list[str] = msgspec.field(default_factory=list)
    description: Annotated[str, Meta(max_length=1000)] | None = None


class CampaignUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    starts_at: AwareDatetime | UnsetType = UNSET
    ends_at: AwareDatetime | UnsetType = UNSET
    segments: list[str] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=1000)] | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET
    #: Replaces the campaign's rules.
    rules: Annotated[list[RuleDefinition], Meta(min_length=1, max_length=50)] | UnsetType = UNSET


class CampaignOut(msgspec.Struct):
    id: uuid.UUID
    code: str
    name: str
    description: str | None
    starts_at: datetime
    ends_at: datetime
    segments: list[str]
    active: bool
    running: bool
    rules: list[RuleOut]


async def _out(db: AsyncSession, campaign: Campaign) -> CampaignOut:
    rules = (
        (
            await db.execute(
                select(EarningRule)
                .where(EarningRule.campaign_id == campaign.id, EarningRule.active.is_(True))
                .order_by(EarningRule.id)
            )
        )
        .scalars()
        .all()
    )
    now = utcnow()
    return CampaignOut(
        campaign.id,
        campaign.code,
        campaign.name,
        campaign.description,
        campaign.starts_at,
        campaign.ends_at,
        list(campaign.segments),
        campaign.active,
        campaign.active and campaign.starts_at <= now < campaign.ends_at,
        [RuleOut.of(r) for r in rules],
    )


async def _check_segments(db: AsyncSession, codes: list[str]) -> None:
    known = set((await db.execute(select(Segment.code).where(Segment.active.is_(True)))).scalars())
    unknown = sorted(set(codes) - known)
    if unknown:
        raise ValidationFailed(f"Unknown segment(s) {unknown}.", field="segments")


async def _replace_rules(db: AsyncSession, runtime: Runtime, campaign: Campaign, rules: list[RuleDefinition]) -> None:
    await db.execute(update(EarningRule).where(EarningRule.campaign_id == campaign.id).values(active=False))
    for i, definition in enumerate(rules):
        db.add(
            EarningRule(
                id=uuid.uuid4(),
                campaign_id=campaign.id,
                active=True,
                definition=checked_definition(definition, runtime, f"rules[{i}]"),
            )
        )
    await db.flush()


async def _campaign(db: AsyncSession, campaign_id: uuid.UUID) -> Campaign:
    campaign = await one_or_404(
        db, select(Campaign).where(Campaign.id == campaign_id), "No such campaign.", field="campaign_id"
    )
    return campaign


class CampaignsController(Controller):
    path = "/v1/campaigns"
    tags = ["campaigns"]

    @post(operation_id="createCampaign")
    async def create(self, db: Db, runtime: CurrentRuntime, data: JSONBody[CampaignIn]) -> CampaignOut:
        """A campaign: its rules earn only between ``starts_at`` and ``ends_at``, for members of its segments."""
        if not CODE.match(data.code):
            raise ValidationFailed("code: lower-case letters, digits, - and _.", field="code")
        if data.ends_at <= data.starts_at:
            raise ValidationFailed("ends_at must be after starts_at.", field="ends_at")
        if (await db.execute(select(Campaign.id).where(Campaign.code == data.code))).first():
            raise Conflict("Another campaign already has this code.", field="code")
        await _check_segments(db, data.segments)
        campaign = Campaign(
            id=uuid.uuid4(),
            code=data.code,
            name=data.name,
            description=data.description,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            segments=sorted(set(data.segments)),
            active=True,
        )
        db.add(campaign)
        await db.flush()
        await _replace_rules(db, runtime, campaign, data.rules)
        await bump_config_version(db)
        return await _out(db, campaign)

    @get(operation_id="listCampaigns")
    async def list_campaigns(self, db: Db, running: FromQuery[bool | None] = None) -> list[CampaignOut]:
        campaigns = (await db.execute(select(Campaign).order_by(Campaign.starts_at.desc()))).scalars().all()
        out = [await _out(db, c) for c in campaigns]
        return [c for c in out if running is None or c.running == running]

    @get("/{campaign_id:uuid}", operation_id="getCampaign")
    async def get_campaign(self, db: Db, campaign_id: FromPath[uuid.UUID]) -> CampaignOut:
        return await _out(db, await _campaign(db, campaign_id))

    @patch("/{campaign_id:uuid}", operation_id="updateCampaign")
    async def update_campaign(
        self, db: Db, runtime: CurrentRuntime, campaign_id: FromPath[uuid.UUID], data: JSONBody[CampaignUpdate]
    ) -> CampaignOut:
        campaign = await _campaign(db, campaign_id)
        if data.segments is not UNSET:
            await _check_segments(db, data.segments)
            campaign.segments = sorted(set(data.segments))
        for name in ("name", "starts_at", "ends_at", "description", "active"):
            value = getattr(data, name)
            if value is not UNSET:
                setattr(campaign, name, value)
        if campaign.ends_at <= campaign.starts_at:
            raise ValidationFailed("ends_at must be after starts_at.", field="ends_at")
        if data.rules is not UNSET:
            await _replace_rules(db, runtime, campaign, data.rules)
        campaign.updated_at = utcnow()
        await db.flush()
        await bump_config_version(db)
        return await _out(db, campaign)

    @delete("/{campaign_id:uuid}", operation_id="deleteCampaign", status_code=200)
    async def delete_campaign(self, db: Db, campaign_id: FromPath[uuid.UUID]) -> CampaignOut:
        """End the campaign now (its rules stop earning; past awards keep naming them)."""
        campaign = await _campaign(db, campaign_id)
        campaign.active = False
        await db.flush()
        await bump_config_version(db)
        return await _out(db, campaign)
