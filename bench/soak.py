"""The soak: mixed load (single events, batches, balance reads, redemptions) for N minutes at 70 % of the measured
maximum, minute by minute: each API process's RSS, every answer's status, each kind's p99.

The maximum of each kind is measured first, alone, closed-loop (10 s each). The soak then runs all four at once, each
paced (wrk's ``delay()``: a fixed pause per connection) to a share of its own maximum — single events 30 %, batches
20 %, balance reads 15 %, redemptions 5 % — so together they ask about 70 % of what the machine can do. Each minute
is one wrk run per kind (so each minute has its own p99), the RSS of each API worker is read at the end of it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

#: kind -> (wrk script, connections while paced, share of its own maximum)
MIX = {
    "events": ("events.lua", 16, 0.30),
    "batch": ("batch.lua", 1, 0.20),
    "balance": ("balance.lua", 8, 0.15),
    "redeem": ("redeem.lua", 4, 0.05),
}
#: Connections of the closed-loop measurement of each kind's maximum.
MAX_CONNECTIONS = {"events": 32, "batch": 2, "balance": 32, "redeem": 16}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def create_reward(url: str, key: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        created = await http.post(
            "/v1/rewards",
            headers={"Authorization": f"Bearer {key}"},
            json={"code": f"soak-{uuid.uuid4().hex[:6]}", "name": "Soak voucher", "points_cost": 1},
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


def soak(
    url: str,
    env: dict[str, str],
    minutes: int,
    run_wrk: Callable[..., dict[str, Any]],
    worker_pids: Callable[[], list[int]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``env``: KEY, MEMBERS, OCCURRED_AT, IDS_FILE and REWARD for the scripts."""
    maximum: dict[str, float] = {}
    latency: dict[str, float] = {}
    for kind, (script, _, _) in MIX.items():
        extra = {"BATCH": "1000"} if kind == "batch" else {}
        result = run_wrk(url, script, 10, MAX_CONNECTIONS[kind], env | extra)
        rate = result["requests_per_s"]
        maximum[kind], latency[kind] = rate, float(result.get("p50_ms") or 0.0)
        log(f"  maximum of {kind}: {rate:.1f} requests/s (p50 {latency[kind]} ms)")
        time.sleep(2)
    pacing: dict[str, dict[str, Any]] = {}
    for kind, (_, connections, share) in MIX.items():
        target = max(0.2, maximum[kind] * share)
        # Each connection sends, waits for its answer, pauses: rate = connections / (latency + pause).
        pause = max(1, int(1000 * connections / target - latency[kind]))
        pacing[kind] = {"target_per_s": round(target, 1), "connections": connections, "pause_ms": pause}
    log(f"  pacing: {pacing}")
    minutes_out: list[dict[str, Any]] = []
    pids = worker_pids()
    start_rss = {pid: rss_mb(pid) for pid in pids}
    for minute in range(1, minutes + 1):
        with ThreadPoolExecutor(len(MIX)) as pool:
            futures = {
                kind: pool.submit(
                    run_wrk,
                    url,
                    script,
                    60,
                    connections,
                    env | {"DELAY_MS": str(pacing[kind]["pause_ms"])} | ({"BATCH": "1000"} if kind == "batch" else {}),
                )
                for kind, (script, connections, _) in MIX.items()
            }
            results = {kind: future.result() for kind, future in futures.items()}
        row: dict[str, Any] = {"minute": minute, "rss_mb": {pid: rss_mb(pid) for pid in pids}}
        for kind, result in results.items():
            row[kind] = {
                "per_s": result["requests_per_s"],
                "p99_ms": result.get("p99_ms"),
                "errors": result["non_2xx"] + (1 if result["socket_errors"] else 0),
                "socket_errors": result["socket_errors"],
            }
        minutes_out.append(row)
        log(
            f"  minute {minute}: RSS {row['rss_mb']} MB; "
            + "; ".join(f"{k} {row[k]['per_s']:.0f}/s p99 {row[k]['p99_ms']} ms err {row[k]['errors']}" for k in MIX)
        )
    end_rss = minutes_out[-1]["rss_mb"] if minutes_out else start_rss
    # Growth measured from the end of the first minute (start-up and first-use caches are not a leak).
    first = minutes_out[0]["rss_mb"] if minutes_out else start_rss
    growth = {pid: round(100 * (end_rss[pid] - first[pid]) / first[pid], 1) for pid in pids if first.get(pid)}
    p99 = {kind: [m[kind]["p99_ms"] for m in minutes_out if m[kind]["p99_ms"] is not None] for kind in MIX}
    return {
        "minutes": minutes,
        "maximum_per_s": maximum,
        "pacing": pacing,
        "rss_start_mb": start_rss,
        "rss_after_first_minute_mb": first,
        "rss_end_mb": end_rss,
        "rss_growth_pct": growth,
        "rss_max_mb": max((max(m["rss_mb"].values()) for m in minutes_out), default=0.0),
        "errors": sum(m[k]["errors"] for m in minutes_out for k in MIX),
        "p99_ms": {k: {"min": min(v, default=None), "max": max(v, default=None)} for k, v in p99.items()},
        "by_minute": minutes_out,
    }


def markdown(result: dict[str, Any]) -> list[str]:
    lines = [
        f"## Soak: {result['minutes']} minutes of mixed load at about 70 % of the measured maximum",
        "",
        f"Maximum of each kind alone (requests/s): {result['maximum_per_s']}; pacing: {result['pacing']}.",
        "",
        f"- RSS of each API worker (MB): at the start {result['rss_start_mb']}, after the first minute "
        f"{result['rss_after_first_minute_mb']}, at the end {result['rss_end_mb']}; growth from the first minute "
        f"{result['rss_growth_pct']} % (asked: under 10 %); largest {result['rss_max_mb']} MB (asked: under 300)",
        f"- errors (non-2xx answers and socket errors): {result['errors']}",
        f"- p99 per minute, lowest and highest (ms): {result['p99_ms']}",
        "",
        "| minute | RSS MB | events/s | p99 | batches/s | p99 | reads/s | p99 | redemptions/s | p99 | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in result["by_minute"]:
        errors = sum(m[k]["errors"] for k in MIX)
        lines.append(
            f"| {m['minute']} | {' / '.join(str(v) for v in m['rss_mb'].values())} | "
            + " | ".join(f"{m[k]['per_s']:.1f} | {m[k]['p99_ms']}" for k in MIX)
            + f" | {errors} |"
        )
    return lines
