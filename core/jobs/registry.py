"""Which job kinds exist, what runs them, and which recur on a schedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.jobs.queue import ClaimedJob

if TYPE_CHECKING:
    from core.runtime import Runtime

#: Runs one claimed job; returns True when the job's work is finished, False when more is due at once.
Handler = Callable[["Runtime", ClaimedJob], Awaitable[bool]]


@dataclass(frozen=True)
class Recurring:
    kind: str
    every_seconds: int
    #: One job per active tenant (the default), or one for the platform.
    per_tenant: bool = True
    #: Only for tenants that enabled this plugin.
    plugin: str | None = None


@dataclass
class JobRegistry:
    handlers: dict[str, Handler] = field(default_factory=dict)
    recurring: list[Recurring] = field(default_factory=list)

    def register(
        self,
        kind: str,
        handler: Handler,
        *,
        every_seconds: int | None = None,
        per_tenant: bool = True,
        plugin: str | None = None,
    ) -> None:
        if kind in self.handlers:
            raise ValueError(f"job kind {kind!r} registered twice")
        self.handlers[kind] = handler
        if every_seconds:
            self.recurring.append(Recurring(kind, every_seconds, per_tenant, plugin))
