"""Imports every core model so that ``Base.metadata`` is complete (Alembic, tests, schema checks)."""

from __future__ import annotations

from core.db.base import Base
from core.idempotency.models import IdempotencyRecord, PlatformIdempotencyRecord
from core.ledger.models import LedgerEntry, Lot, LotConsumption, PointBalance
from core.members.models import ConsentChange, Member, MemberConsent
from core.program.models import Program
from core.tenancy.models import ApiKey, PlatformCredential, Tenant

__all__ = [
    "ApiKey",
    "Base",
    "ConsentChange",
    "IdempotencyRecord",
    "LedgerEntry",
    "Lot",
    "LotConsumption",
    "Member",
    "MemberConsent",
    "PlatformCredential",
    "PlatformIdempotencyRecord",
    "PointBalance",
    "Program",
    "Tenant",
]
