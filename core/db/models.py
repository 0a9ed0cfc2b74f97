"""Imports every core model so that ``Base.metadata`` is complete (Alembic, tests, schema checks)."""

from __future__ import annotations

from core.billing.models import ActiveMember, BillingEvent, BillingInvoice, BillingUsage, Plan, StripeEvent
from core.db.base import Base
from core.idempotency.models import IdempotencyRecord, PlatformIdempotencyRecord
from core.ledger.models import LedgerEntry, Lot, LotConsumption, PointBalance
from core.members.models import ConsentChange, Member, MemberConsent
from core.program.models import Program
from core.tenancy.models import ApiKey, PlatformCredential, Tenant

__all__ = [
    "ActiveMember",
    "ApiKey",
    "Base",
    "BillingEvent",
    "BillingInvoice",
    "BillingUsage",
    "ConsentChange",
    "IdempotencyRecord",
    "LedgerEntry",
    "Lot",
    "LotConsumption",
    "Member",
    "MemberConsent",
    "Plan",
    "PlatformCredential",
    "PlatformIdempotencyRecord",
    "PointBalance",
    "Program",
    "StripeEvent",
    "Tenant",
]
