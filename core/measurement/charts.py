"""Charts of the reports as Vega-Lite specs, rendered server-side to SVG and PNG by vl-convert (no browser, no
network: the renderer ships in the wheel). The spec itself is served too, for a tenant's own dashboard."""

from __future__ import annotations

import asyncio
from typing import Any

import vl_convert

from core.measurement.reports import Report

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
WIDTH = 560
HEIGHT = 300
#: Reports that have a chart.
CHARTS = ("tiers", "rfm", "loyalty-types", "churn-risk", "value-concentration", "liability")


def _base(title: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": SCHEMA,
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "data": {"values": values},
        "config": {"font": "DejaVu Sans", "view": {"stroke": None}},
    }


def spec(report: Report) -> dict[str, Any]:
    """The Vega-Lite spec of a report's chart (the data inline)."""
    if report.name == "tiers":
        return _base("Members by tier", report.items) | {
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {
                "x": {"field": "tier", "type": "nominal", "sort": None, "title": "Tier"},
                "y": {"field": "members", "type": "quantitative", "title": "Members"},
            },
        }
    if report.name == "loyalty-types":
        return _base("Members by loyalty type", report.items) | {
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {
                "x": {"field": "loyalty_type", "type": "nominal", "sort": None, "title": "Loyalty type"},
                "y": {"field": "members", "type": "quantitative", "title": "Members"},
            },
        }
    if report.name == "rfm":
        return _base("RFM grid: members by recency and frequency score", report.items) | {
            "width": 360,
            "height": 360,
            "encoding": {
                "x": {"field": "f", "type": "ordinal", "title": "Frequency score"},
                "y": {"field": "r", "type": "ordinal", "title": "Recency score", "sort": "descending"},
            },
            "layer": [
                {
                    "mark": {"type": "rect", "tooltip": True},
                    "encoding": {
                        "color": {"aggregate": "sum", "field": "members", "type": "quantitative", "title": "Members"}
                    },
                },
                {
                    "mark": {"type": "text"},
                    "encoding": {"text": {"aggregate": "sum", "field": "members", "type": "quantitative"}},
                },
            ],
        }
    if report.name == "churn-risk":
        curve = report.summary.get("curve", [])
        return _base("Members at or above each churn probability", curve) | {
            "mark": {"type": "line", "point": True, "tooltip": True},
            "encoding": {
                "x": {"field": "churn_probability", "type": "quantitative", "title": "Churn probability at least"},
                "y": {"field": "members", "type": "quantitative", "title": "Members"},
            },
        }
    if report.name == "value-concentration":
        return _base("Value concentration: share of value by top share of members", report.items) | {
            "mark": {"type": "line", "point": True, "tooltip": True},
            "encoding": {
                "x": {
                    "field": "top_share_of_members",
                    "type": "quantitative",
                    "title": "Top share of members",
                    "axis": {"format": "%"},
                },
                "y": {
                    "field": "share_of_value",
                    "type": "quantitative",
                    "title": "Share of value",
                    "axis": {"format": "%"},
                },
            },
        }
    if report.name == "liability":
        values = [{"month": m["month"], "points": m["closing"]} for m in report.items]
        return _base("Outstanding posted points at each month's end", values) | {
            "mark": {"type": "line", "point": True, "tooltip": True},
            "encoding": {
                "x": {"field": "month", "type": "ordinal", "title": "Month"},
                "y": {"field": "points", "type": "quantitative", "title": "Points"},
            },
        }
    raise KeyError(report.name)


async def svg(chart: dict[str, Any]) -> str:
    return str(await asyncio.to_thread(vl_convert.vegalite_to_svg, chart))


async def png(chart: dict[str, Any]) -> bytes:
    return bytes(await asyncio.to_thread(vl_convert.vegalite_to_png, chart, scale=2))
