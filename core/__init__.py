"""Fealty: a multi-tenant loyalty platform.

This module is the plugins' only door into core: everything a plugin may use is listed in ``__all__`` and loaded
lazily on first use (so importing ``core.settings`` does not load the whole application).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # the plugin contract
    "hookimpl": "core.plugins",
    "PluginInfo": "core.plugin_types",
    "EventType": "core.plugin_types",
    "EventContext": "core.plugin_types",
    "EventView": "core.plugin_types",
    "EarlierResult": "core.plugin_types",
    "MemberView": "core.plugin_types",
    "TenantView": "core.plugin_types",
    "Award": "core.plugin_types",
    "Screening": "core.plugin_types",
    "FieldIssue": "core.plugin_types",
    "TierChange": "core.plugin_types",
    "ScheduledJob": "core.plugin_types",
    "JobContext": "core.plugin_types",
    "RewardView": "core.plugin_types",
    "RedemptionView": "core.plugin_types",
    "ReversalView": "core.plugin_types",
    # errors
    "FealtyError": "core.errors",
    "ValidationFailed": "core.errors",
    "NotFound": "core.errors",
    "Conflict": "core.errors",
    "PermissionDenied": "core.errors",
    # models and migrations for plugin-owned tables
    "Base": "core.db.base",
    "TenantScoped": "core.db.base",
    "id_column": "core.db.base",
    "table_of": "core.db.base",
    "rls": "core.db.rls",
    # route handler dependencies
    "Db": "core.http.deps",
    "CurrentPrincipal": "core.http.deps",
    "CurrentProgram": "core.http.deps",
    "CurrentRuntime": "core.http.deps",
    "Page": "core.http.pagination",
    "encode_cursor": "core.http.pagination",
    "decode_cursor": "core.http.pagination",
    "cursor_uuid": "core.http.pagination",
    "check_limit": "core.http.pagination",
    "page_of": "core.http.pagination",
    # services plugins call
    "utcnow": "core.clock",
    "new_id": "core.ids",
    "emit": "core.outbox.service",
    "request_care": "core.care.service",
    "assign_tier": "core.tiers.service",
    "approve_held": "core.events.api",
    "reject_held": "core.events.api",
    "get_member": "core.members.service",
    "get_redemption": "core.rewards.service",
    "use_redemption": "core.rewards.service",
    "member_view": "core.members.views",
    "local_day": "core.metrics.service",
    "metric_sums": "core.metrics.service",
    "Window": "core.metrics.service",
}

_RENAMED = {"metric_sums": "sums", "use_redemption": "use"}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from core.care.service import request_care
    from core.clock import utcnow
    from core.db import rls
    from core.db.base import Base, TenantScoped, id_column, table_of
    from core.errors import Conflict, FealtyError, NotFound, PermissionDenied, ValidationFailed
    from core.events.api import approve_held, reject_held
    from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, Db
    from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
    from core.ids import new_id
    from core.members.service import get_member
    from core.members.views import member_view
    from core.metrics.service import Window, local_day
    from core.metrics.service import sums as metric_sums
    from core.outbox.service import emit
    from core.plugin_types import (
        Award,
        EarlierResult,
        EventContext,
        EventType,
        EventView,
        FieldIssue,
        JobContext,
        MemberView,
        PluginInfo,
        RedemptionView,
        ReversalView,
        RewardView,
        ScheduledJob,
        Screening,
        TenantView,
        TierChange,
    )
    from core.plugins import hookimpl
    from core.rewards.service import get_redemption
    from core.rewards.service import use as use_redemption
    from core.tiers.service import assign_tier
