"""Events in, points out: the set-based pipeline behind ``POST /v1/events``, ``/batch``, ``/simulate`` and approvals.

One event and a thousand take the same path, with a constant number of statements:

1. **validate** each item (type, member reference, amount, currency, time, attributes schema) — a bad item gets its
   own 4xx problem and is left out, the others go on;
2. **read** what the items need in a handful of queries: events already stored under these ids (a retry returns the
   first outcome), the members (auto-enrolling unknown ones when the program says so), metric sums for tiers, segments
   and caps;
3. **compute** in memory, item after item (so a member's second event in a batch sees the first): plugin validation
   and screening (hold or reject), the earning rules, plugin awards and qualification credits, the tier move;
4. **write**: the events (their unique index settles any concurrent duplicate), the ledger credits, the metric
   buckets, tier changes, the outbox, then the plugins' ``event_processed`` hooks — all in the caller's transaction.

An item that fails in steps 2 or 3 without the read of step 2 (a single event: its insert answers a retry) is looked
up then, so a retry still gets its first answer. A batch writes in a savepoint: should the set-based write raise (a
return reversed meanwhile, a plugin's hook refusing an item), it is rolled back and the items are written one by one,
each in its own savepoint, so the bad ones are reported and the others applied.

Simulation stops after step 3 and writes nothing (an unknown member under auto-enrolment is a transient one).

One module per stage: :mod:`~core.events.pipeline.validation`, :mod:`~core.events.pipeline.retries` (events already
stored), :mod:`~core.events.pipeline.members` (member resolution and auto-enrolment),
:mod:`~core.events.pipeline.compute` (screening, rules, awards, credits; :mod:`~core.events.pipeline.caps` for rule
caps), :mod:`~core.events.pipeline.writes`, :mod:`~core.events.pipeline.tier_moves`,
:mod:`~core.events.pipeline.outcomes` (the answer and the outbox events) and :mod:`~core.events.pipeline.reversals`;
:mod:`~core.events.pipeline.run` chains them. What they share is in :mod:`~core.events.pipeline.context`.
"""

from core.events.pipeline.context import EventIn, ItemResult, MemberRef, PipelineContext
from core.events.pipeline.members import member_view_of
from core.events.pipeline.reversals import ReversalResult, credits_to_remove, is_count, reverse, stored_event_context
from core.events.pipeline.run import process

__all__ = [
    "EventIn",
    "ItemResult",
    "MemberRef",
    "PipelineContext",
    "ReversalResult",
    "credits_to_remove",
    "is_count",
    "member_view_of",
    "process",
    "reverse",
    "stored_event_context",
]
