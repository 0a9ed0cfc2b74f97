"""The utility plugin's periodic work (the worker runs it for every tenant that enabled the plugin)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select

from core import JobContext
from plugins.utility import outages as ops
from plugins.utility import peak

#: How often the worker looks for notice stages that came due and compensation left to pay.
EVERY_SECONDS = 300


async def outage_work(ctx: JobContext) -> None:
    """Tell the planned outages' stages that came due (priority notice, notice, reminders), catch up any
    unplanned alert not yet told and the restoration notices a big outage's restoring request left, announce the
    peak-time events due, and pay every compensation the restoring requests left to the worker, page by page."""
    settings = ops.settings_of(ctx.tenant)
    o = ops.outages
    horizon = ctx.now + timedelta(days=settings.priority_notice_days + 1)
    rows = (
        await ctx.session.execute(
            select(o).where(
                o.c.tenant_id == ctx.tenant.id,
                or_(
                    and_(o.c.status == "scheduled", o.c.starts_at > ctx.now, o.c.starts_at <= horizon),
                    o.c.status == "confirmed",
                    and_(o.c.status == "restored", o.c.restored_at > ctx.now - timedelta(days=2)),
                ),
            )
        )
    ).all()
    for outage in rows:
        if outage.status == "scheduled":
            await ops.advance_planned(ctx.session, ctx.tenant, outage, ctx.now)
        elif outage.status == "confirmed":
            await ops.alert(ctx.session, ctx.tenant, outage, ctx.now)
        else:
            await ops.restored_notices(ctx.session, ctx.tenant, outage, ctx.now)
    await peak.announce_due(ctx.session, ctx.tenant, ctx.now)
    # Everything due is paid in this run, a page (``PAY_PAGE``) per transaction: a page paid is kept even if a
    # later one fails, and the rows' status (with the ledger reference) keeps a rerun from paying one twice.
    while True:
        if ctx.commit is not None:
            await ctx.commit()
        if await ops.pay_due(ctx.session, ctx.tenant, ctx.now, limit=ops.PAY_PAGE) < ops.PAY_PAGE:
            break
