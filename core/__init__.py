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
    "Decision": "core.plugin_types",
    "MemberView": "core.plugin_types",
    "TenantView": "core.plugin_types",
    "Award": "core.plugin_types",
    "Screening": "core.plugin_types",
    "FieldIssue": "core.plugin_types",
    "TierChange": "core.plugin_types",
    "ScheduledJob": "core.plugin_types",
    "CareTrigger": "core.plugin_types",
    "JobContext": "core.plugin_types",
    "RewardView": "core.plugin_types",
    "RedemptionView": "core.plugin_types",
    "ReversalView": "core.plugin_types",
    "CareProtectionContext": "core.plugin_types",
    # care protection verdicts and helpers (fealty_care_protection)
    "Send": "core.care.policy",
    "Defer": "core.care.policy",
    "Suppress": "core.care.policy",
    "MessageFacts": "core.care.policy",
    "MemberFacts": "core.care.policy",
    "local_instant": "core.care.policy",
    "next_in_window": "core.care.policy",
    # errors
    "FealtyError": "core.errors",
    "ValidationFailed": "core.errors",
    "NotFound": "core.errors",
    "Conflict": "core.errors",
    "PermissionDenied": "core.errors",
    # request types
    "AwareDatetime": "core.validation",
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
    "query_flag": "core.http.middleware",
    # services plugins call
    "utcnow": "core.clock",
    "new_id": "core.ids",
    "emit": "core.outbox.service",
    "request_care": "core.care.service",
    "assign_tier": "core.tiers.service",
    "tier_codes": "core.tiers.catalog",
    "create_tier": "core.tiers.catalog",
    "expiry_policy": "core.program.service",
    "set_expiry_policy": "core.program.service",
    "ExpiryPolicyView": "core.program.service",
    "approve_held": "core.events.api",
    "reject_held": "core.events.api",
    "get_member": "core.members.service",
    "get_redemption": "core.rewards.service",
    "use_redemption": "core.rewards.service",
    "member_view": "core.members.views",
    "load_member_view": "core.members.views",
    "credit_points": "core.ledger.plugin_points",
    "debit_points": "core.ledger.plugin_points",
    "PointsMoved": "core.ledger.plugin_points",
    "local_day": "core.metrics.service",
    "metric_sums": "core.metrics.service",
    "Window": "core.metrics.service",
}

_RENAMED = {"metric_sums": "sums"}

# Spelt out (not derived from _EXPORTS) so that type checkers see what plugins may import; a test keeps the two
# equal.
__all__ = [
    "Award",
    "AwareDatetime",
    "Base",
    "CareProtectionContext",
    "CareTrigger",
    "Conflict",
    "CurrentPrincipal",
    "CurrentProgram",
    "CurrentRuntime",
    "Db",
    "Decision",
    "Defer",
    "EarlierResult",
    "EventContext",
    "EventType",
    "EventView",
    "ExpiryPolicyView",
    "FealtyError",
    "FieldIssue",
    "JobContext",
    "MemberFacts",
    "MemberView",
    "MessageFacts",
    "NotFound",
    "Page",
    "PermissionDenied",
    "PluginInfo",
    "PointsMoved",
    "RedemptionView",
    "ReversalView",
    "RewardView",
    "ScheduledJob",
    "Screening",
    "Send",
    "Suppress",
    "TenantScoped",
    "TenantView",
    "TierChange",
    "ValidationFailed",
    "Window",
    "__version__",
    "approve_held",
    "assign_tier",
    "check_limit",
    "create_tier",
    "credit_points",
    "cursor_uuid",
    "debit_points",
    "decode_cursor",
    "emit",
    "encode_cursor",
    "expiry_policy",
    "get_member",
    "get_redemption",
    "hookimpl",
    "id_column",
    "load_member_view",
    "local_day",
    "local_instant",
    "member_view",
    "metric_sums",
    "new_id",
    "next_in_window",
    "page_of",
    "query_flag",
    "reject_held",
    "request_care",
    "rls",
    "set_expiry_policy",
    "table_of",
    "tier_codes",
    "use_redemption",
    "utcnow",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    target = importlib.import_module(module)
    attribute = _RENAMED.get(name, name)
    # ``rls`` is a module itself (migrations call ``rls.tenant_table``): export the module when it has no such name.
    value = (
        target if module.rsplit(".", 1)[-1] == name and not hasattr(target, attribute) else getattr(target, attribute)
    )
    globals()[name] = value
    return value


if TYPE_CHECKING:
    # ``X as X``: explicit re-exports, so that mypy --strict accepts ``from core import X`` in plugins.
    from core.care.policy import Defer as Defer
    from core.care.policy import MemberFacts as MemberFacts
    from core.care.policy import MessageFacts as MessageFacts
    from core.care.policy import Send as Send
    from core.care.policy import Suppress as Suppress
    from core.care.policy import local_instant as local_instant
    from core.care.policy import next_in_window as next_in_window
    from core.care.service import request_care as request_care
    from core.clock import utcnow as utcnow
    from core.db import rls as rls
    from core.db.base import Base as Base
    from core.db.base import TenantScoped as TenantScoped
    from core.db.base import id_column as id_column
    from core.db.base import table_of as table_of
    from core.errors import Conflict as Conflict
    from core.errors import FealtyError as FealtyError
    from core.errors import NotFound as NotFound
    from core.errors import PermissionDenied as PermissionDenied
    from core.errors import ValidationFailed as ValidationFailed
    from core.events.api import approve_held as approve_held
    from core.events.api import reject_held as reject_held
    from core.http.deps import CurrentPrincipal as CurrentPrincipal
    from core.http.deps import CurrentProgram as CurrentProgram
    from core.http.deps import CurrentRuntime as CurrentRuntime
    from core.http.deps import Db as Db
    from core.http.middleware import query_flag as query_flag
    from core.http.pagination import Page as Page
    from core.http.pagination import check_limit as check_limit
    from core.http.pagination import cursor_uuid as cursor_uuid
    from core.http.pagination import decode_cursor as decode_cursor
    from core.http.pagination import encode_cursor as encode_cursor
    from core.http.pagination import page_of as page_of
    from core.ids import new_id as new_id
    from core.ledger.plugin_points import PointsMoved as PointsMoved
    from core.ledger.plugin_points import credit_points as credit_points
    from core.ledger.plugin_points import debit_points as debit_points
    from core.members.service import get_member as get_member
    from core.members.views import load_member_view as load_member_view
    from core.members.views import member_view as member_view
    from core.metrics.service import Window as Window
    from core.metrics.service import local_day as local_day
    from core.metrics.service import sums as metric_sums
    from core.outbox.service import emit as emit
    from core.plugin_types import Award as Award
    from core.plugin_types import CareProtectionContext as CareProtectionContext
    from core.plugin_types import CareTrigger as CareTrigger
    from core.plugin_types import Decision as Decision
    from core.plugin_types import EarlierResult as EarlierResult
    from core.plugin_types import EventContext as EventContext
    from core.plugin_types import EventType as EventType
    from core.plugin_types import EventView as EventView
    from core.plugin_types import FieldIssue as FieldIssue
    from core.plugin_types import JobContext as JobContext
    from core.plugin_types import MemberView as MemberView
    from core.plugin_types import PluginInfo as PluginInfo
    from core.plugin_types import RedemptionView as RedemptionView
    from core.plugin_types import ReversalView as ReversalView
    from core.plugin_types import RewardView as RewardView
    from core.plugin_types import ScheduledJob as ScheduledJob
    from core.plugin_types import Screening as Screening
    from core.plugin_types import TenantView as TenantView
    from core.plugin_types import TierChange as TierChange
    from core.plugins import hookimpl as hookimpl
    from core.program.service import ExpiryPolicyView as ExpiryPolicyView
    from core.program.service import expiry_policy as expiry_policy
    from core.program.service import set_expiry_policy as set_expiry_policy
    from core.rewards.service import get_redemption as get_redemption
    from core.rewards.service import use_redemption as use_redemption
    from core.tiers.catalog import create_tier as create_tier
    from core.tiers.catalog import tier_codes as tier_codes
    from core.tiers.service import assign_tier as assign_tier
    from core.validation import AwareDatetime as AwareDatetime
