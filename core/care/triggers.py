"""Care triggers: core's catalogue, the plugins' (hook ``fealty_care_triggers``), and each rule's parameters.

A trigger names a kind of occasion and what it offers templates (variables with types and samples). Core's
occasions are found by the worker (:mod:`core.care.occasions`); a plugin raises its own with ``request_care``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from core.errors import ValidationFailed
from core.plugin.manager import PluginManager
from core.plugin.types import CareTrigger

CORE_TRIGGERS: dict[str, CareTrigger] = {
    t.name: t
    for t in (
        CareTrigger("welcome", "A member enrolled.", "service", "greeting"),
        CareTrigger(
            "birthday",
            "The member's birthday (local day), once a year; only members for at least min_member_days days.",
            "marketing",
            "greeting",
            {"age": "int"},
            {"age": 36},
        ),
        CareTrigger(
            "anniversary",
            "The anniversary of the member's enrolment (local day).",
            "marketing",
            "greeting",
            {"years": "int"},
            {"years": 3},
        ),
        CareTrigger(
            "holiday",
            "A day of the tenant's calendar (/v1/care/calendar), in the member's local day.",
            "marketing",
            "greeting",
            {"holiday_name": "str", "holiday_date": "date"},
            {"holiday_name": "Spring Festival", "holiday_date": "2027-02-06"},
        ),
        CareTrigger(
            "tier_changed",
            "The member moved up or down a tier (params.direction: up, down or any).",
            "service",
            "notice",
            {"old_tier": "str", "new_tier": "str", "direction": "str"},
            {"old_tier": "silver", "new_tier": "gold", "direction": "up"},
        ),
        CareTrigger(
            "tier_at_risk",
            "The member's tier status ends within params.days (default 30) and was not renewed yet.",
            "service",
            "reminder",
            {"tier": "str", "valid_until": "datetime", "days_left": "int"},
            {"tier": "gold", "valid_until": "2027-03-31T23:59:59+00:00", "days_left": 30},
        ),
        CareTrigger(
            "points_expiring",
            "Points expire within params.days (default 30).",
            "service",
            "reminder",
            {"points": "int", "expires_at": "datetime"},
            {"points": 1200, "expires_at": "2027-01-31T23:59:59+00:00"},
        ),
        CareTrigger(
            "voucher_expiring",
            "An unused voucher expires within params.days (default 7).",
            "service",
            "reminder",
            {"voucher_code": "str", "reward_name": "str", "expires_at": "datetime"},
            {"voucher_code": "AB12-CD34", "reward_name": "Free coffee", "expires_at": "2027-01-10T23:59:59+00:00"},
        ),
        CareTrigger(
            "lapsing",
            "No activity for params.days (default 90): a win-back occasion, once per lapse.",
            "marketing",
            "notice",
            {"days_inactive": "int", "last_activity_at": "datetime"},
            {"days_inactive": 90, "last_activity_at": "2026-09-01T10:00:00+00:00"},
        ),
        CareTrigger(
            "event_follow_up",
            "params.days (default 1) after an event of params.event_type (a follow-up after a service).",
            "service",
            "survey",
            {"event_type": "str", "event_id": "str", "occurred_at": "datetime", "amount": "decimal"},
            {
                "event_type": "purchase",
                "event_id": "POS-1001",
                "occurred_at": "2026-12-01T10:00:00+00:00",
                "amount": "12.50",
            },
        ),
        CareTrigger(
            "case.closed",
            "A member's complaint or service case was closed (a follow-up, a satisfaction survey).",
            "service",
            "survey",
            {"case_id": "str", "subject": "str", "category": "str", "kind": "str"},
            {
                "case_id": "0193a5e0-0000-7000-8000-000000000001",
                "subject": "Cold coffee",
                "category": "quality",
                "kind": "complaint",
            },
        ),
        CareTrigger(
            "survey.invitation",
            "An invitation to answer a satisfaction survey, with its signed single-use link.",
            "service",
            "survey",
            {"survey_name": "str", "survey_url": "str", "expires_at": "datetime"},
            {
                "survey_name": "How did we do?",
                "survey_url": "https://api.example.com/v1/surveys/respond?token=x",
                "expires_at": "2027-01-31T23:59:59+00:00",
            },
        ),
    )
}

#: Each core trigger's parameters, their defaults, and whether they are required.
PARAMS: dict[str, dict[str, Any]] = {
    "birthday": {"min_member_days": 7},
    "lapsing": {"days": 90},
    "tier_changed": {"direction": "any"},
    "tier_at_risk": {"days": 30},
    "points_expiring": {"days": 30},
    "voucher_expiring": {"days": 7},
    "event_follow_up": {"days": 1, "event_type": None},
}
PARAM_RANGES = {"days": (0, 3650), "min_member_days": (0, 3650)}


def all_triggers(plugins: PluginManager) -> dict[str, CareTrigger]:
    """Core's triggers and every installed plugin's."""
    found = dict(CORE_TRIGGERS)
    for name, trigger in plugins.care_triggers().items():
        if name in found:
            raise ValueError(f"care trigger {name!r} clashes with core's")
        found[name] = trigger
    return found


def tenant_trigger(plugins: PluginManager, name: str, enabled: list[str], field: str = "trigger") -> CareTrigger:
    """The trigger ``name`` if this tenant may use it (core's, or an enabled plugin's), else a 422."""
    trigger = all_triggers(plugins).get(name)
    if trigger is None or (trigger.plugin is not None and trigger.plugin not in enabled):
        raise ValidationFailed(f"Unknown care trigger '{name}'.", field=field)
    return trigger


def check_params(trigger: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's parameters for ``trigger`` with defaults filled in; 422 for an unknown or invalid one."""
    known = PARAMS.get(trigger, {})
    for name in params:
        if name not in known:
            raise ValidationFailed(f"The {trigger} trigger takes no parameter '{name}'.", field=f"params.{name}")
    result = {**known, **params}
    for name, value in result.items():
        if name in PARAM_RANGES:
            low, high = PARAM_RANGES[name]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValidationFailed(f"{name} must be a whole number from {low} to {high}.", field=f"params.{name}")
    if trigger == "tier_changed" and result["direction"] not in ("up", "down", "any"):
        raise ValidationFailed("direction must be up, down or any.", field="params.direction")
    if trigger == "event_follow_up" and not (isinstance(result["event_type"], str) and result["event_type"]):
        raise ValidationFailed("event_follow_up needs the event_type to follow up.", field="params.event_type")
    return result


def samples(trigger: CareTrigger | None) -> dict[str, Any]:
    """Sample values for every variable of ``trigger`` (None where the trigger gave none)."""
    if trigger is None:
        return {}
    return {name: trigger.samples.get(name) for name in trigger.variables} | dict(trigger.samples)


def describe(trigger: CareTrigger) -> dict[str, Any]:
    described: dict[str, Any] = msgspec.to_builtins(
        {
            "name": trigger.name,
            "description": trigger.description,
            "purpose": trigger.purpose,
            "category": trigger.category,
            "variables": trigger.variables,
            "samples": trigger.samples,
            "params": PARAMS.get(trigger.name, {}),
            "plugin": trigger.plugin,
        }
    )
    return described
