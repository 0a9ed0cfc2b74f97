"""Fealty: a multi-tenant loyalty platform.

This module is the plugins' only door into core. Its public API is declared once, by the ``X as X`` imports of the
``TYPE_CHECKING`` block below (what mypy checks plugins against); ``__all__`` and the lazy loading are derived from that
block when the module is imported, so importing ``core.settings`` does not load the whole application.
``docs/hooks.md`` documents every name (a test fails for an undocumented one).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from core.care.policy import Defer as Defer
    from core.care.policy import MemberFacts as MemberFacts
    from core.care.policy import MessageFacts as MessageFacts
    from core.care.policy import Send as Send
    from core.care.policy import Suppress as Suppress
    from core.care.policy import local_instant as local_instant
    from core.care.policy import next_in_window as next_in_window
    from core.care.service import CareAsk as CareAsk
    from core.care.service import request_care as request_care
    from core.care.service import request_care_many as request_care_many
    from core.clock import utcnow as utcnow
    from core.db import rls as rls
    from core.db.base import Base as Base
    from core.db.base import TenantScoped as TenantScoped
    from core.db.base import id_column as id_column
    from core.db.base import table_of as table_of
    from core.decimals import decimal_bounds as decimal_bounds
    from core.errors import Conflict as Conflict
    from core.errors import FealtyError as FealtyError
    from core.errors import NotFound as NotFound
    from core.errors import PermissionDenied as PermissionDenied
    from core.errors import ValidationFailed as ValidationFailed
    from core.events.service import approve_held as approve_held
    from core.events.service import reject_held as reject_held
    from core.http.deps import CurrentPrincipal as CurrentPrincipal
    from core.http.deps import CurrentProgram as CurrentProgram
    from core.http.deps import CurrentRuntime as CurrentRuntime
    from core.http.deps import CurrentTenant as CurrentTenant
    from core.http.deps import Db as Db
    from core.http.middleware import query_flag as query_flag
    from core.http.pagination import Page as Page
    from core.http.pagination import check_limit as check_limit
    from core.http.pagination import cursor_uuid as cursor_uuid
    from core.http.pagination import decode_cursor as decode_cursor
    from core.http.pagination import encode_cursor as encode_cursor
    from core.http.pagination import page_of as page_of
    from core.ids import new_id as new_id
    from core.ledger.plugin_points import PluginCredit as PluginCredit
    from core.ledger.plugin_points import PointsMoved as PointsMoved
    from core.ledger.plugin_points import credit_points as credit_points
    from core.ledger.plugin_points import credit_points_many as credit_points_many
    from core.ledger.plugin_points import debit_points as debit_points
    from core.members.service import get_member as get_member
    from core.members.views import load_member_view as load_member_view
    from core.members.views import member_view as member_view
    from core.outbox.service import emit as emit
    from core.plugin import hookimpl as hookimpl
    from core.plugin.demo import DemoApi as DemoApi
    from core.plugin.demo import DemoContext as DemoContext
    from core.plugin.demo import DemoError as DemoError
    from core.plugin.demo import DemoSeeded as DemoSeeded
    from core.plugin.demo import DemoTenant as DemoTenant
    from core.plugin.types import Award as Award
    from core.plugin.types import AwardsContext as AwardsContext
    from core.plugin.types import CareProtectionContext as CareProtectionContext
    from core.plugin.types import CareTrigger as CareTrigger
    from core.plugin.types import CaseContext as CaseContext
    from core.plugin.types import CaseRouting as CaseRouting
    from core.plugin.types import CaseView as CaseView
    from core.plugin.types import Credits as Credits
    from core.plugin.types import CreditsContext as CreditsContext
    from core.plugin.types import Decision as Decision
    from core.plugin.types import EarlierResult as EarlierResult
    from core.plugin.types import EventContext as EventContext
    from core.plugin.types import EventType as EventType
    from core.plugin.types import EventView as EventView
    from core.plugin.types import FieldIssue as FieldIssue
    from core.plugin.types import HookContext as HookContext
    from core.plugin.types import JobContext as JobContext
    from core.plugin.types import MemberContext as MemberContext
    from core.plugin.types import MemberView as MemberView
    from core.plugin.types import PluginInfo as PluginInfo
    from core.plugin.types import ProcessedContext as ProcessedContext
    from core.plugin.types import RedemptionContext as RedemptionContext
    from core.plugin.types import RedemptionView as RedemptionView
    from core.plugin.types import ReplyClaim as ReplyClaim
    from core.plugin.types import ReplyContext as ReplyContext
    from core.plugin.types import ReplyView as ReplyView
    from core.plugin.types import ReversalContext as ReversalContext
    from core.plugin.types import ReversalView as ReversalView
    from core.plugin.types import RewardView as RewardView
    from core.plugin.types import ScheduledJob as ScheduledJob
    from core.plugin.types import Screening as Screening
    from core.plugin.types import Services as Services
    from core.plugin.types import TenantView as TenantView
    from core.plugin.types import TierChange as TierChange
    from core.plugin.types import TierChangeContext as TierChangeContext
    from core.plugin.types import WebhookEventType as WebhookEventType
    from core.program.service import ExpiryPolicyView as ExpiryPolicyView
    from core.program.service import expiry_policy as expiry_policy
    from core.program.service import set_expiry_policy as set_expiry_policy
    from core.qualification.service import Window as Window
    from core.qualification.service import local_day as local_day
    from core.qualification.service import sums as metric_sums
    from core.rewards.service import get_redemption as get_redemption
    from core.rewards.service import use_redemption as use_redemption
    from core.tiers.catalog import create_tier as create_tier
    from core.tiers.catalog import tier_codes as tier_codes
    from core.tiers.service import assign_tier as assign_tier
    from core.validation import AwareDatetime as AwareDatetime


def _declared() -> dict[str, tuple[str, str]]:
    """The exports as the ``TYPE_CHECKING`` block declares them: name -> (module, name in that module)."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    return {
        alias.asname or alias.name: (node.module or "", alias.name)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


_EXPORTS = _declared()
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    target = importlib.import_module(module)
    # ``rls`` is a module itself (migrations call ``rls.tenant_table``).
    value = (
        getattr(target, attribute) if hasattr(target, attribute) else importlib.import_module(f"{module}.{attribute}")
    )
    globals()[name] = value
    return value
