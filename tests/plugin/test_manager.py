"""The plugin contract as a plugin author relies on it (core/plugin/manager.py): in which order hooks run, which
answer wins, what wrappers and tracing see, and that startup hooks may be async.

Each test registers small inline plugins (``core.testing.register_inline_plugin``) on a fresh manager and calls the
hooks the way core does, through ``TenantHooks``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Generator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
import structlog
from structlog.testing import capture_logs

from core import (
    EventContext,
    EventType,
    EventView,
    FieldIssue,
    MemberView,
    RedemptionContext,
    RedemptionView,
    RewardView,
    Screening,
    TenantView,
    hookimpl,
)
from core.plugin.manager import TRACE_ENV, PluginManager
from core.testing import register_inline_plugin

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
TENANT = TenantView(uuid.uuid4(), "Europe/Paris", "EUR", "FR", {})
MEMBER = MemberView(uuid.uuid4(), "m-1", NOW, None, None, {})


def event_context() -> EventContext:
    event = EventView(uuid.uuid4(), "e-1", "purchase", NOW, Decimal(10), "EUR", None, None, {})
    # The hooks under test touch neither the session nor the services.
    return EventContext(
        tenant=TENANT, session=cast(Any, None), now=NOW, services=cast(Any, None), event=event, member=MEMBER
    )


def redemption() -> RedemptionView:
    reward = RewardView(uuid.uuid4(), "Gift", 100, "gift", {})
    return RedemptionView(uuid.uuid4(), MEMBER.id, reward, "CODE", 100, None)


def recorder(calls: list[str], name: str) -> Any:
    def fealty_validate_event(ctx: EventContext) -> list[FieldIssue]:
        calls.append(name)
        return [FieldIssue("amount", f"seen by {name}")]

    return fealty_validate_event


@pytest.fixture
def manager() -> PluginManager:
    return PluginManager(services=lambda session, tenant, now: cast(Any, None))


async def test_hooks_run_in_registration_order_with_core_first(manager: PluginManager) -> None:
    calls: list[str] = []
    for name in ("first", "second", "third"):
        register_inline_plugin(manager, recorder(calls, name), name=name)

    issues = await manager.for_tenant(["first", "second", "third"]).validate_event(event_context())

    assert calls == ["first", "second", "third"]
    assert [i.detail for i in issues] == ["seen by first", "seen by second", "seen by third"]
    assert manager.order() == ["core", "first", "second", "third"]

    # Core's own implementations come first: its event types lead.
    def fealty_register_event_types() -> list[EventType]:
        return [EventType("late.visit", "A visit")]

    register_inline_plugin(manager, fealty_register_event_types, name="late")
    assert list(manager.event_types()) == ["purchase", "return", "custom", "late.visit"]


def test_event_types_are_contributed_in_registration_order(manager: PluginManager) -> None:
    def fealty_register_event_types() -> list[EventType]:
        return [EventType("a.visit", "A visit")]

    def other() -> list[EventType]:
        return [EventType("b.visit", "B visit")]

    other.__name__ = "fealty_register_event_types"
    register_inline_plugin(manager, fealty_register_event_types, name="a")
    register_inline_plugin(manager, other, name="b")
    types = manager.event_types()
    assert list(types)[-2:] == ["a.visit", "b.visit"]
    assert (types["a.visit"].plugin, types["b.visit"].plugin, types["purchase"].plugin) == ("a", "b", None)


async def test_only_the_plugins_the_tenant_enabled_are_called(manager: PluginManager) -> None:
    calls: list[str] = []
    for name in ("first", "second", "third"):
        register_inline_plugin(manager, recorder(calls, name), name=name)

    await manager.for_tenant(["third", "first"]).validate_event(event_context())

    assert calls == ["first", "third"]


async def test_each_awaitable_answer_is_awaited_before_the_next_implementation_runs(manager: PluginManager) -> None:
    calls: list[str] = []

    def slow(name: str) -> Any:
        async def fealty_validate_event(ctx: EventContext) -> None:
            calls.append(f"{name} starts")
            await asyncio.sleep(0.01)
            calls.append(f"{name} ends")

        return fealty_validate_event

    register_inline_plugin(manager, slow("a"), name="a")
    register_inline_plugin(manager, slow("b"), name="b")

    assert await manager.for_tenant(["a", "b"]).validate_event(event_context()) == []
    assert calls == ["a starts", "a ends", "b starts", "b ends"]


async def test_the_first_answer_wins_and_later_implementations_are_not_run(manager: PluginManager) -> None:
    calls: list[str] = []

    def answer(name: str, value: dict[str, Any] | None) -> Any:
        async def fealty_fulfil_reward(ctx: RedemptionContext) -> dict[str, Any] | None:
            calls.append(name)
            return value

        return fealty_fulfil_reward

    register_inline_plugin(manager, answer("silent", None), name="silent")
    register_inline_plugin(manager, answer("first", {"by": "first"}), name="first")
    register_inline_plugin(manager, answer("second", {"by": "second"}), name="second")

    with capture_logs():  # no "coroutine was never awaited" either: the unused ones are closed
        result = await manager.for_tenant(["silent", "first", "second"]).fulfil_reward(
            TENANT, redemption(), cast(Any, None), NOW
        )

    assert result == {"by": "first"}
    assert calls == ["silent", "first"]


@pytest.mark.parametrize("order", [("holds", "rejects"), ("rejects", "holds")])
async def test_a_rejection_beats_any_hold_whatever_the_order(manager: PluginManager, order: tuple[str, str]) -> None:
    def holds(ctx: EventContext) -> Screening:
        return Screening("hold", "looks odd", "holds.odd")

    def rejects(ctx: EventContext) -> Screening:
        return Screening("reject", "closed site", "rejects.closed")

    verdicts = {"holds": holds, "rejects": rejects}
    for name in order:
        function = verdicts[name]
        function.__name__ = "fealty_screen_event"
        register_inline_plugin(manager, function, name=name)

    screening = await manager.for_tenant(list(order)).screen_event(event_context())

    assert screening is not None and screening.code == "rejects.closed"


async def test_a_hook_wrapper_sees_every_call_and_its_result(manager: PluginManager) -> None:
    seen: list[Any] = []

    @hookimpl(wrapper=True)
    def fealty_validate_event(ctx: EventContext) -> Generator[None, list[Any], list[Any]]:
        seen.append(("before", ctx.event.event_id))
        results = yield
        seen.append(("after", len(results)))
        return results

    register_inline_plugin(manager, recorder([], "plain"), name="plain")
    register_inline_plugin(manager, fealty_validate_event, name="wrapper")

    issues = await manager.for_tenant(["plain", "wrapper"]).validate_event(event_context())

    assert [i.detail for i in issues] == ["seen by plain"]
    assert seen == [("before", "e-1"), ("after", 1)]
    assert manager.for_tenant(["wrapper"]).implements("fealty_validate_event") is False


@pytest.fixture
def info_logs() -> Generator[None]:
    """Info logs reach the processors (the suite's logging configuration may filter them out)."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("info_logs")
async def test_tracing_logs_every_call_in_call_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRACE_ENV, "1")
    manager = PluginManager()
    register_inline_plugin(manager, recorder([], "first"), name="first")
    register_inline_plugin(manager, recorder([], "second"), name="second")

    with capture_logs() as logs:
        await manager.for_tenant(["first", "second"]).validate_event(event_context())

    calls = [e for e in logs if e["event"] == "plugin_hook_call"]
    assert calls == [
        {"event": "plugin_hook_call", "hook": "fealty_validate_event", "plugins": ["first", "second"],
         "log_level": "info"}
    ]  # fmt: skip
    assert [e["hook"] for e in logs if e["event"] == "plugin_hook_called"] == ["fealty_validate_event"]
    # Never the arguments: a context carries members' data.
    assert all("ctx" not in e and "kwargs" not in e for e in logs)


@pytest.mark.usefixtures("info_logs")
async def test_without_tracing_nothing_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_ENV, raising=False)
    manager = PluginManager()
    register_inline_plugin(manager, recorder([], "first"), name="first")
    with capture_logs() as logs:
        await manager.for_tenant(["first"]).validate_event(event_context())
    assert logs == []


async def test_startup_hooks_may_be_async_and_are_awaited(manager: PluginManager) -> None:
    async def fealty_register_event_types() -> list[EventType]:
        await asyncio.sleep(0)
        return [EventType("async.visit", "A visit declared by a coroutine")]

    register_inline_plugin(manager, fealty_register_event_types, name="lazy")

    # Called here while an event loop runs (as when the app is built inside a server), and outside one.
    assert manager.event_types()["async.visit"].plugin == "lazy"
    outside = await asyncio.to_thread(lambda: PluginManager().event_types())
    assert "async.visit" not in outside


def test_a_hook_that_does_not_match_its_spec_is_refused_and_the_manager_is_unchanged(manager: PluginManager) -> None:
    def fealty_validate_event(ctx: EventContext, extra: int) -> None:
        return None

    with pytest.raises(Exception, match="extra"):
        register_inline_plugin(manager, fealty_validate_event, name="sloppy")
    assert manager.order() == ["core"]
    assert manager.available() == {}
