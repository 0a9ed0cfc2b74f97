"""Where an API phase's time went inside PostgreSQL: its statements (``pg_stat_statements``: calls, mean and total
time, shared-buffer misses, time reading) and what its connections were doing (``pg_stat_activity`` sampled every
10 ms: on the CPU, waiting for a lock, for the WAL, for a read; or idle in a transaction while the app computes).

The bench's own cluster preloads ``pg_stat_statements`` with ``track_io_timing`` on (bench/run.py); on a server
without it (``--server``) the statements are left out and the samples still taken.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import asyncpg

#: Seconds between two samples of pg_stat_activity.
INTERVAL = 0.01

TOP_STATEMENTS = """
SELECT calls, total_exec_time, mean_exec_time, max_exec_time, rows, shared_blks_hit, shared_blks_read,
       blk_read_time, query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
LIMIT $1
"""

ACTIVITY = """
SELECT state, wait_event_type, wait_event, left(query, 60) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


async def prepare(url: str) -> bool:
    """The extension created in the bench's database; False where the server does not preload it."""
    conn = await asyncpg.connect(url)
    try:
        preloaded = await conn.fetchval("SELECT current_setting('shared_preload_libraries')")
        if "pg_stat_statements" not in preloaded:
            return False
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return True
    finally:
        await conn.close()


class DatabaseTime:
    """Started before a phase, :meth:`stop` after it: the phase's top statements and its activity samples."""

    def __init__(self, url: str, statements: bool) -> None:
        self.url = url
        self.statements = statements
        self.samples: Counter[str] = Counter()
        self.by_query: Counter[tuple[str, str]] = Counter()
        self.ticks = 0
        self.top: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._sample()), daemon=True)
        self._thread.start()
        self._ready.wait(10)

    async def _sample(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            if self.statements:
                await conn.execute("SELECT pg_stat_statements_reset()")
            self._ready.set()
            query = await conn.prepare(ACTIVITY)
            while not self._stop.is_set():
                self.ticks += 1
                for row in await query.fetch():
                    if row["state"] == "active":
                        what = f"{row['wait_event_type']}:{row['wait_event']}" if row["wait_event_type"] else "CPU"
                        self.by_query[(what, " ".join(row["query"].split()))] += 1
                    else:
                        what = row["state"] or "-"
                    self.samples[what] += 1
                await asyncio.sleep(INTERVAL)
            if self.statements:
                self.top = [dict(r) for r in await conn.fetch(TOP_STATEMENTS, 8)]
        finally:
            self._ready.set()
            await conn.close()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(30)
        ticks = max(self.ticks, 1)
        return {
            # Connections in each state or wait, on average over the phase (2.5 = two and a half at any moment).
            "activity": {what: round(n / ticks, 2) for what, n in self.samples.most_common(10)},
            "active_by_query": [
                {"wait": what, "query": query, "connections": round(n / ticks, 2)}
                for (what, query), n in self.by_query.most_common(8)
            ],
            "statements": [
                {
                    "query": " ".join(r["query"].split())[:110],
                    "calls": r["calls"],
                    "mean_ms": round(r["mean_exec_time"], 3),
                    "max_ms": round(r["max_exec_time"], 1),
                    "total_s": round(r["total_exec_time"] / 1000, 2),
                    "rows_per_call": round(r["rows"] / max(r["calls"], 1), 1),
                    "blocks_read_per_call": round(r["shared_blks_read"] / max(r["calls"], 1), 2),
                    "read_ms": round(r["blk_read_time"], 1),
                }
                for r in self.top
            ],
        }


def markdown(label: str, phase: str, found: dict[str, Any]) -> list[str]:
    """The report's lines for one phase."""
    lines = [
        f"### {label}: {phase}",
        "",
        "Connections by state, on average: "
        + ", ".join(f"{what} {n}" for what, n in found.get("activity", {}).items()),
        "",
    ]
    if found.get("active_by_query"):
        lines += ["| active, waiting for | statement | connections |", "|---|---|---|"]
        lines += [f"| {r['wait']} | `{r['query']}` | {r['connections']} |" for r in found["active_by_query"]]
        lines.append("")
    if found.get("statements"):
        lines += [
            "| statement | calls | mean ms | max ms | total s | rows/call | blocks read/call | read ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| `{s['query']}` | {s['calls']} | {s['mean_ms']} | {s['max_ms']} | {s['total_s']} | "
            f"{s['rows_per_call']} | {s['blocks_read_per_call']} | {s['read_ms']} |"
            for s in found["statements"]
        ]
        lines.append("")
    return lines
