"""Member resolution: each item's member found in one statement (unknown ones auto-enrolled when the program says
so)."""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select

from core import validation
from core.db import bulk
from core.errors import Conflict, FealtyError, NotFound
from core.events.pipeline.context import (
    MEMBER_COLUMNS,
    Item,
    ItemResult,
    PipelineContext,
    activity_at,
    balances_table,
    members_table,
)
from core.ids import new_id
from core.members.models import Member
from core.members.service import enrol_member
from core.members.views import member_view
from core.plugin.types import (
    MemberView,
)
from core.program.config import TenantConfig

_MEMBERS = select(
    *(members_table.c[c] for c in MEMBER_COLUMNS),
    balances_table.c.last_activity_at,
    balances_table.c.available.label("balance_available"),
).join(
    balances_table,
    (balances_table.c.tenant_id == members_table.c.tenant_id) & (balances_table.c.member_id == members_table.c.id),
)
_MEMBER_BY = {
    name: _MEMBERS.where(
        members_table.c.tenant_id == bindparam("m_tenant"),
        members_table.c["id" if name == "member_id" else name] == bindparam("m_value"),
    )
    for name in ("member_id", "external_id", "card", "phone")
}


@functools.cache
def _members_by(names: tuple[str, ...], postgres: bool) -> Any:
    """Members found by any of several identifiers (a batch's): one statement per combination of identifier kinds."""
    return _MEMBERS.where(
        members_table.c.tenant_id == bindparam("m_tenant"),
        or_(*(bulk.one_of(members_table.c["id" if n == "member_id" else n], f"m_{n}", postgres) for n in names)),
    )


async def resolve_members(
    ctx: PipelineContext, items: list[Item], results: list[ItemResult], simulate: bool = False
) -> list[Item]:
    if not items:
        return items
    refs: dict[str, set[Any]] = defaultdict(set)
    for item in items:
        ref = item.data.member
        if ref.phone is not None:
            try:
                ref.phone = validation.phone(ref.phone, ctx.program.country, field="member.phone")
            except FealtyError as error:
                results[item.index].error = error
                continue
        for name in ("member_id", "external_id", "card", "phone"):
            value = getattr(ref, name)
            if value is not None:
                refs[name].add(value)
    items = [i for i in items if results[i.index].error is None]
    found: list[tuple[Any, datetime | None]] = []
    if len(refs) == 1 and len(next(iter(refs.values()))) == 1:
        # One member (a single event): a statement built once, executed with parameters.
        name, values = next(iter(refs.items()))
        rows = await ctx.session.execute(_MEMBER_BY[name], {"m_tenant": ctx.tenant_id, "m_value": next(iter(values))})
        found = [(row, row.last_activity_at) for row in rows]
    elif refs:
        names = tuple(sorted(refs))
        query = _members_by(names, bulk.is_postgres(ctx.session))
        parameters: dict[str, Any] = {"m_tenant": ctx.tenant_id}
        parameters |= {f"m_{kind}": sorted(refs[kind], key=str) for kind in names}
        found = [(row, row.last_activity_at) for row in await ctx.session.execute(query, parameters)]
    index: dict[tuple[str, Any], tuple[Any, datetime | None]] = {}
    for member, last in found:
        index[("member_id", member.id)] = (member, last)
        for name in ("external_id", "card", "phone"):
            if getattr(member, name) is not None:
                index[(name, getattr(member, name))] = (member, last)
    kept = []
    for item in items:
        ref = item.data.member
        name = next(n for n in ("member_id", "external_id", "card", "phone") if getattr(ref, n) is not None)
        value = getattr(ref, name)
        hit = index.get((name, value))
        if hit is None and ctx.program.auto_enrol and name != "member_id":
            external_id = value if name == "external_id" else f"{name}:{value}"
            fields = {name: value} if name != "external_id" else {}
            if simulate:
                # As if enrolled now, but transient: nothing is written and no hook hears of it.
                member = Member(
                    tenant_id=ctx.tenant_id,
                    id=new_id(),
                    external_id=external_id,
                    status="active",
                    attributes={},
                    created_at=ctx.now,
                    updated_at=ctx.now,
                    **fields,
                )
            else:
                # The same use case as POST /v1/members (member.enrolled for webhooks, the plugins' hook); the entry
                # tier comes with this first event (computed below, answered in its outcome).
                member = await enrol_member(
                    ctx.session,
                    tenant_id=ctx.tenant_id,
                    program=ctx.program,
                    config=ctx.config,
                    plugins=ctx.plugins,
                    external_id=external_id,
                    fields=fields,
                    attributes={},
                    consents=[],
                    now=ctx.now,
                    active_since=activity_at(item, ctx.now),
                    entry_tier=False,
                )
                ctx.session.info.setdefault("fealty.enrolled", []).append(member)
            hit = (member, activity_at(item, ctx.now))
            index[(name, value)] = hit
        if hit is None:
            results[item.index].error = NotFound(
                f"No member with this {name}; enrol the member first or enable auto-enrolment.",
                field=f"member.{name}",
            )
            continue
        if hit[0].status == "anonymized":
            results[item.index].error = Conflict("This member has been anonymized.", field="member")
            continue
        item.member, item.last_activity_at = hit
        kept.append(item)
    return kept


def available_of(member: Any) -> int:
    """The member's available points as read with them (unlocked: the ledger checks it under the balance lock); 0
    for a member enrolled by this request."""
    return int(getattr(member, "balance_available", 0))


def member_view_of(member: Member, config: TenantConfig) -> MemberView:
    return member_view(member, config.tiers_by_id.get(member.tier_id) if member.tier_id else None)
