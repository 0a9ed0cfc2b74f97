"""Caps: what each capped rule already gave each member on each local day and month, kept up to date across a batch."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from core.earning import engine
from core.events.pipeline.context import (
    Item,
    PipelineContext,
)
from core.qualification import service as metrics


class CapTotals:
    """What each capped rule already gave each member on each local day and in each local month, kept up to date
    across a batch. Caps count on the event's own day and month: a backdated event is capped by what that day gave.

    Events of today (nearly all of them) read the stored totals with the other metric sums; events of other days add
    one query, for every such item at once."""

    def __init__(
        self,
        rules: Sequence[engine.Rule],
        sums: dict[uuid.UUID, dict[tuple[str, str], Decimal]],
        stored: dict[tuple[uuid.UUID, str, date], Decimal],
        today: date,
    ) -> None:
        self.rules, self.sums, self.today = rules, sums, today
        self.ids = {r.id for r in rules}
        self.stored_days = stored
        self.stored_months: dict[tuple[uuid.UUID, str, date], Decimal] = defaultdict(Decimal)
        for (member_id, metric, day), value in stored.items():
            self.stored_months[(member_id, metric, metrics.month_start(day))] += value
        self.day: dict[tuple[uuid.UUID, uuid.UUID, date], int] = {}
        self.month: dict[tuple[uuid.UUID, uuid.UUID, date], int] = {}

    @classmethod
    async def read(
        cls,
        ctx: PipelineContext,
        items: Sequence[Item],
        sums: dict[uuid.UUID, dict[tuple[str, str], Decimal]],
        today: date,
    ) -> CapTotals:
        rules = ctx.config.capped
        stored: dict[tuple[uuid.UUID, str, date], Decimal] = {}
        elsewhere = [i for i in items if i.local_day != today and i.member is not None] if rules else []
        if elsewhere:
            stored = await metrics.daily_values(
                ctx.session,
                ctx.tenant_id,
                sorted({i.member.id for i in elsewhere}, key=str),
                sorted(f"rule:{r.id}" for r in rules),
                first=min(metrics.month_start(i.local_day) for i in elsewhere),
                before=max(metrics.next_month(i.local_day) for i in elsewhere),
            )
        return cls(rules, sums, stored, today)

    def usage(self, member_id: uuid.UUID, day: date) -> engine.CapUsage:
        if not self.rules:
            return engine.CapUsage()
        month = metrics.month_start(day)
        this_month = month == metrics.month_start(self.today)
        member_sums = self.sums.get(member_id, {})
        for rule in self.rules:
            metric = f"rule:{rule.id}"
            if (member_id, rule.id, day) not in self.day:
                given = member_sums.get((metric, "1d")) if day == self.today else None
                if given is None:
                    given = self.stored_days.get((member_id, metric, day), Decimal(0))
                self.day[(member_id, rule.id, day)] = int(given)
            if (member_id, rule.id, month) not in self.month:
                given = member_sums.get((metric, "month")) if this_month else None
                if given is None:
                    given = self.stored_months.get((member_id, metric, month), Decimal(0))
                self.month[(member_id, rule.id, month)] = int(given)
        return engine.CapUsage(
            day={r.id: self.day[(member_id, r.id, day)] for r in self.rules},
            month={r.id: self.month[(member_id, r.id, month)] for r in self.rules},
        )

    def add(self, member_id: uuid.UUID, day: date, lines: Sequence[engine.AwardLine]) -> None:
        month = metrics.month_start(day)
        for line in lines:
            if line.rule_id in self.ids:
                self.day[(member_id, line.rule_id, day)] += line.points
                self.month[(member_id, line.rule_id, month)] += line.points
