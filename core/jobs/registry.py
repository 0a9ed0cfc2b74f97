"""Which job kinds exist, what runs them, and which recur on a schedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.jobs import sweeps
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
    #: Swept (:mod:`core.jobs.sweeps`): one schedule row for the platform, and when it falls due a job only for the
    #: tenants where this condition (a key of ``sweeps.CONDITIONS``) holds. None: a schedule row per tenant.
    sweep: str | None = None


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
        sweep: str | None = None,
    ) -> None:
        """``sweep`` names the condition of a swept per-tenant kind; by default a core kind listed in
        ``sweeps.CONDITIONS`` is swept on its own condition."""
        if kind in self.handlers:
            raise ValueError(f"job kind {kind!r} registered twice")
        if sweep is not None and sweep not in sweeps.CONDITIONS:
            raise ValueError(f"job kind {kind!r}: no sweep condition {sweep!r} (known: {', '.join(sweeps.CONDITIONS)})")
        self.handlers[kind] = handler
        if every_seconds:
            if per_tenant and sweep is None and sweeps.swept(kind):
                sweep = kind
            self.recurring.append(Recurring(kind, every_seconds, per_tenant, plugin, sweep if per_tenant else None))
