"""Replies and cases: "still out" reopens the outage for the customer's account and opens a case; large customers'
cases go to their account manager, SMEs' by their credit rating's service level."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core import CaseContext, CaseRouting, ReplyClaim, ReplyContext
from plugins.utility import outages as ops
from plugins.utility import rules

STILL_OUT = "utility.still_out"


async def _outage_account(ctx: ReplyContext) -> tuple[Any, uuid.UUID] | None:
    """The outage and account the reply is about: the message it answers (its occasion key names both), else the
    member's account in the latest unplanned outage restored within two days or still confirmed."""
    key = ctx.reply.message_occasion or ""
    parts = key.split(":")
    if len(parts) >= 4 and parts[0] == "utility" and parts[1] != "peak":
        try:
            outage_id, account_id = uuid.UUID(parts[1]), uuid.UUID(parts[2])
        except ValueError:
            return None
        outage = await ops.get_outage(ctx.session, ctx.tenant.id, outage_id)
        return (outage, account_id) if outage is not None else None
    if ctx.reply.member is None:
        return None
    o, oa = ops.outages, ops.affected
    row = (
        await ctx.session.execute(
            select(oa.c.outage_id, oa.c.account_id)
            .join(o, (o.c.tenant_id == oa.c.tenant_id) & (o.c.id == oa.c.outage_id))
            .where(
                oa.c.tenant_id == ctx.tenant.id,
                oa.c.member_id == ctx.reply.member.id,
                o.c.kind == "unplanned",
                (o.c.status == "confirmed")
                | ((o.c.status == "restored") & (o.c.restored_at > ctx.now - timedelta(days=2))),
            )
            .order_by(o.c.starts_at.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return await ops.get_outage(ctx.session, ctx.tenant.id, row.outage_id), row.account_id


async def claim_reply(ctx: ReplyContext) -> ReplyClaim | None:
    settings = ops.settings_of(ctx.tenant)
    if not rules.is_still_out(ctx.reply.text, settings):
        return None
    found = await _outage_account(ctx)
    if found is None:
        return None
    outage, account_id = found
    locked = await ops.lock_outage(ctx.session, ctx.tenant.id, outage.id)
    reopened = False
    if locked.status == "restored":
        row = await ops.reopen(ctx.session, ctx.tenant, locked, account_id, ctx.now)
        reopened = row.reopened_at is not None and row.restored_at is None
    medical = (
        await ctx.session.execute(
            select(ops.accounts.c.medical, ops.accounts.c.account_number, ops.accounts.c.member_id).where(
                ops.accounts.c.tenant_id == ctx.tenant.id, ops.accounts.c.id == account_id
            )
        )
    ).one()
    await ctx.services.ensure_case_category(
        STILL_OUT,
        names={"en": "Power still out", "zh-CN": "仍然停电"},
        first_reply_hours=1,
        resolution_hours=4,
        default_priority="high",
    )
    case = await ctx.services.open_case(
        medical.member_id,
        subject=f"Power still out at account {medical.account_number}",
        source="utility",
        kind="request",
        description=ctx.reply.text,
        category=STILL_OUT,
        priority="urgent" if medical.medical else "high",
        channel="reply",
        related={"object": f"utility.outage:{outage.id}", "account_id": str(account_id)},
        reference=f"{STILL_OUT}:{outage.id}:{account_id}",
    )
    return ReplyClaim(
        "power still out: the outage is reopened for the account" if reopened else "power still out",
        reference=f"utility.outage:{outage.id}",
        case_id=case.id,
        detail={"outage_id": str(outage.id), "account_id": str(account_id), "reopened": reopened},
    )


async def route_case(ctx: CaseContext) -> CaseRouting | None:
    """A large customer's case to their named manager (high priority); an SME's by its rating's service level."""
    if ctx.member is None:
        return None
    settings = ops.settings_of(ctx.tenant)
    a = ops.accounts
    rows = (
        await ctx.session.execute(
            select(a.c.customer_class, a.c.account_manager, a.c.credit_rating).where(
                a.c.tenant_id == ctx.tenant.id, a.c.member_id == ctx.member.id, a.c.status == "active"
            )
        )
    ).all()
    for r in rows:
        if r.customer_class == "large" and r.account_manager:
            return CaseRouting(
                assignee=f"am:{r.account_manager}", priority="high", note="large customer: their account manager"
            )
    for r in rows:
        if r.customer_class == "sme" and r.credit_rating in settings.service_levels:
            level = settings.service_levels[r.credit_rating]
            return CaseRouting(
                priority="high" if level.priority_line else None,
                note=f"SME rated {r.credit_rating}: answer within {level.response_hours} h",
            )
    return None
