"""Imports every core model so that ``Base.metadata`` is complete (Alembic, tests, schema checks)."""

from __future__ import annotations

from core.billing.models import ActiveMember, BillingEvent, BillingInvoice, BillingUsage, Plan, StripeEvent, UsageCount
from core.campaigns.models import Campaign
from core.care.models import CareHoliday, CareMessage, CareOccasion, CareRequest, CareRule, CareTemplate
from core.care.protection_models import CareSendLock, CareSendTally, CareSettings, CareSuppression, PlatformSecret
from core.cases.models import CareReply, Case, CaseBreach, CaseCategory, CaseHistory
from core.db.base import Base
from core.earning.models import EarningRule
from core.events.models import Event
from core.exports.models import DataExport
from core.idempotency.models import IdempotencyRecord, PlatformIdempotencyRecord
from core.imports.models import DataImport, ImportedRow
from core.jobs.models import Job
from core.ledger.models import LedgerEntry, Lot, LotConsumption, PointBalance
from core.measurement.models import (
    LiabilityRollup,
    LiabilityRollupState,
    MeasurementModel,
    MeasurementSettings,
    MemberLoyalty,
)
from core.members.models import ConsentChange, Member, MemberConsent
from core.outbox.models import OutboxEvent
from core.program.models import Program
from core.qualification.models import MemberMetric
from core.rewards.models import Redemption, Reward
from core.segments.models import Segment
from core.surveys.models import Survey, SurveyAnswer, SurveyInvitation, SurveyResponse
from core.tenancy.models import ApiKey, PlatformCredential, Tenant
from core.tiers.models import Tier, TierChange
from core.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint

__all__ = [
    "ActiveMember",
    "ApiKey",
    "Base",
    "BillingEvent",
    "BillingInvoice",
    "BillingUsage",
    "Campaign",
    "CareHoliday",
    "CareMessage",
    "CareOccasion",
    "CareReply",
    "CareRequest",
    "CareRule",
    "CareSendLock",
    "CareSendTally",
    "CareSettings",
    "CareSuppression",
    "CareTemplate",
    "Case",
    "CaseBreach",
    "CaseCategory",
    "CaseHistory",
    "ConsentChange",
    "DataExport",
    "DataImport",
    "EarningRule",
    "Event",
    "IdempotencyRecord",
    "ImportedRow",
    "Job",
    "LedgerEntry",
    "LiabilityRollup",
    "LiabilityRollupState",
    "Lot",
    "LotConsumption",
    "MeasurementModel",
    "MeasurementSettings",
    "Member",
    "MemberConsent",
    "MemberLoyalty",
    "MemberMetric",
    "OutboxEvent",
    "Plan",
    "PlatformCredential",
    "PlatformIdempotencyRecord",
    "PlatformSecret",
    "PointBalance",
    "Program",
    "Redemption",
    "Reward",
    "Segment",
    "StripeEvent",
    "Survey",
    "SurveyAnswer",
    "SurveyInvitation",
    "SurveyResponse",
    "Tenant",
    "Tier",
    "TierChange",
    "UsageCount",
    "WebhookDelivery",
    "WebhookDeliveryAttempt",
    "WebhookEndpoint",
]
