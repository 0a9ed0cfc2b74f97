"""The cases contract as plugins rely on it: ``fealty_route_case`` (answers merged field by field, first setter
wins), ``fealty_claim_reply`` (the first claim wins, later plugins are not run) and ``services.open_case``
(idempotent by reference, routed, recorded in the history, announced), with inline plugins on a fresh manager."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import select

from core import CaseContext, CaseRouting, ReplyClaim, ReplyContext, ReplyView, TenantView, ValidationFailed
from core.cases.models import CaseHistory
from core.db.engine import tenant_session
from core.outbox.models import OutboxEvent
from core.plugin.manager import SESSION_PLUGINS_KEY, PluginManager
from core.services import CoreServices
from core.testing import TenantHandle, register_inline_plugin

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def reply(text: str) -> ReplyView:
    return ReplyView(uuid.uuid4(), "sms", "+447911123456", text, NOW, None)


def tenant_view(tenant_id: uuid.UUID, *plugins: str) -> TenantView:
    return TenantView(tenant_id, "Europe/London", "GBP", "GB", {name: None for name in plugins})


@pytest.fixture
def manager() -> PluginManager:
    return PluginManager(services=lambda session, tenant, now: CoreServices(session, tenant, now))


async def test_the_first_claim_wins_and_later_plugins_do_not_run(manager: PluginManager) -> None:
    ran: list[str] = []

    def fealty_claim_reply(ctx: ReplyContext) -> ReplyClaim | None:
        ran.append("declines")
        return None

    async def claims(ctx: ReplyContext) -> ReplyClaim | None:
        ran.append("claims")
        return ReplyClaim("outage report", reference="utility.report:1") if "still out" in ctx.reply.text else None

    async def never(ctx: ReplyContext) -> ReplyClaim | None:
        ran.append("never")
        return ReplyClaim("too late")

    claims.__name__ = never.__name__ = "fealty_claim_reply"
    register_inline_plugin(manager, fealty_claim_reply, name="first")
    register_inline_plugin(manager, claims, name="second")
    register_inline_plugin(manager, never, name="third")
    hooks = manager.for_tenant(["first", "second", "third"])
    view = tenant_view(uuid.uuid4(), "first", "second", "third")

    # Nobody before it claims: the last plugin does.
    answer = await hooks.claim_reply(view, reply("Still out here"), cast(Any, None), NOW)
    assert answer == ("third", ReplyClaim("too late"))
    ran.clear()
    answer = await hooks.claim_reply(view, reply("power still out"), cast(Any, None), NOW)
    assert answer == ("second", ReplyClaim("outage report", reference="utility.report:1"))
    assert ran == ["declines", "claims"]
    # A plugin the tenant did not enable never sees the reply.
    ran.clear()
    only_third = manager.for_tenant(["third"])
    assert await only_third.claim_reply(view, reply("power still out"), cast(Any, None), NOW) == (
        "third",
        ReplyClaim("too late"),
    )
    assert ran == ["never"]


async def test_routing_answers_merge_field_by_field_in_call_order(manager: PluginManager) -> None:
    def fealty_route_case(ctx: CaseContext) -> CaseRouting | None:
        return CaseRouting(assignee="am:alice", note="key account")

    def second(ctx: CaseContext) -> CaseRouting | None:
        return CaseRouting(assignee="team:care", priority="urgent", note="outage")

    def third(ctx: CaseContext) -> CaseRouting | None:
        return None

    second.__name__ = third.__name__ = "fealty_route_case"
    for name, hook in (("a", fealty_route_case), ("b", second), ("c", third)):
        register_inline_plugin(manager, hook, name=name)
    from core.plugin.types import CaseView

    case = CaseView(
        uuid.uuid4(), "complaint", None, "received", "normal", None, "sms", "x", "", None, {}, "api", None, NOW
    )
    view = tenant_view(uuid.uuid4(), "a", "b", "c")
    routing = await manager.for_tenant(["a", "b", "c"]).route_case(view, case, None, cast(Any, None), NOW)
    assert routing == CaseRouting(assignee="am:alice", priority="urgent", category=None, note="key account; outage")
    assert await manager.for_tenant(["c"]).route_case(view, case, None, cast(Any, None), NOW) is None


async def test_open_case_is_routed_recorded_announced_and_idempotent(
    manager: PluginManager, runtime, tenant: TenantHandle
) -> None:
    seen: list[tuple[str, str | None]] = []

    def fealty_route_case(ctx: CaseContext) -> CaseRouting | None:
        seen.append((ctx.case.subject, ctx.member.external_id if ctx.member else None))
        return CaseRouting(assignee="am:alice", category="outage", note="large customer")

    register_inline_plugin(manager, fealty_route_case, name="router")
    member = await tenant.enrol("big-1")
    view = tenant_view(tenant.id, "router")
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        session.info[SESSION_PLUGINS_KEY] = manager
        services = manager.services(session, view, NOW)
        assert await services.ensure_case_category(
            "outage", names={"en": "Outage"}, first_reply_hours=1, resolution_hours=12, default_priority="high"
        )
        # Never overwrites what the tenant has.
        assert not await services.ensure_case_category("outage", names={"en": "Other"}, first_reply_hours=99)
        opened = await services.open_case(
            uuid.UUID(member["id"]),
            subject="Still out",
            source="utility",
            channel="reply",
            reference="utility.report:1",
            related={"object": "utility.outage:7"},
        )
        again = await services.open_case(None, subject="Another", source="utility", reference="utility.report:1")
        assert again.id == opened.id
        assert (opened.category, opened.assignee, opened.status, opened.priority) == (
            "outage",
            "am:alice",
            "assigned",
            "normal",
        )
        assert opened.first_reply_due_at is not None and opened.resolution_due_at is not None
        assert opened.first_reply_due_at.replace(tzinfo=UTC) == datetime(2026, 12, 5, 13, 0, tzinfo=UTC)
        history = (
            await session.execute(
                select(CaseHistory.action, CaseHistory.to_status, CaseHistory.actor)
                .where(CaseHistory.case_id == opened.id)
                .order_by(CaseHistory.at, CaseHistory.id)
            )
        ).all()
        assert [tuple(h) for h in history] == [("receive", "received", "utility"), ("route", "assigned", "routing")]
        announced = (await session.execute(select(OutboxEvent.type).where(OutboxEvent.type == "case.opened"))).all()
        assert len(announced) == 1
        with pytest.raises(ValidationFailed) as refused:
            await services.open_case(None, subject="x", source="utility", category="nope")
        assert refused.value.field == "category"
        with pytest.raises(ValidationFailed) as refused:
            await services.open_case(None, subject="  ", source="utility")
        assert refused.value.field == "subject"
    assert seen == [("Still out", "big-1")]
