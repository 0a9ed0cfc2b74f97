"""The daily kinds swept (``core/jobs/sweeps.py``): a tenant's retention purge (tenants with dispatched outbox events or
finished webhook deliveries), its nightly loyalty run (tenants with members), and the condition offered to plugins'
scheduled jobs (``ScheduledJob.when = "members"``: tenants with an active member). ``fealty_due_tenants`` gains their
conditions; its role already reads the three tables they look at (0025, 0026).

Revision ID: 0029_daily_sweeps
Revises: 0028_invitation_profile
Create Date: 2026-12-05 22:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0029_daily_sweeps"
down_revision: str | Sequence[str] | None = "0028_invitation_profile"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION fealty_due_tenants(job_kind text, at timestamptz) RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT t.id FROM tenants t
  WHERE t.status = 'active' AND CASE job_kind
    WHEN 'ledger.release' THEN EXISTS (
      SELECT 1 FROM lots l WHERE l.tenant_id = t.id AND l.status = 'pending' AND l.available_at <= at)
    WHEN 'ledger.expire' THEN EXISTS (
      SELECT 1 FROM lots l WHERE l.tenant_id = t.id AND l.remaining > 0 AND l.status = 'posted'
        AND l.expires_at IS NOT NULL AND l.expires_at <= at)
    WHEN 'rewards.expire' THEN EXISTS (
      SELECT 1 FROM redemptions r WHERE r.tenant_id = t.id AND r.status = 'issued'
        AND r.expires_at IS NOT NULL AND r.expires_at <= at)
    WHEN 'outbox.dispatch' THEN EXISTS (
      SELECT 1 FROM outbox_events o WHERE o.tenant_id = t.id AND o.dispatched_at IS NULL)
    WHEN 'webhooks.deliver' THEN EXISTS (
      SELECT 1 FROM webhook_deliveries d WHERE d.tenant_id = t.id AND d.status IN ('pending', 'sending')
        AND d.next_attempt_at <= at)
    WHEN 'care.deliver' THEN EXISTS (
      SELECT 1 FROM care_messages m WHERE m.tenant_id = t.id AND m.state IN ('queued', 'deferred')
        AND m.due_at <= at)
    WHEN 'care.occasions' THEN EXISTS (
      SELECT 1 FROM care_rules r WHERE r.tenant_id = t.id AND r.active)
    WHEN 'idempotency.purge' THEN EXISTS (
      SELECT 1 FROM idempotency_records k WHERE k.tenant_id = t.id AND k.expires_at <= at)
    WHEN 'tiers.close_periods' THEN EXISTS (
      SELECT 1 FROM members m WHERE m.tenant_id = t.id AND m.status = 'active' AND m.tier_valid_until <= at)
    WHEN 'cases.breaches' THEN EXISTS (
      SELECT 1 FROM cases c WHERE c.tenant_id = t.id AND c.status <> 'closed' AND (
        (c.first_reply_due_at <= at AND c.first_replied_at IS NULL AND c.first_reply_breached_at IS NULL)
        OR (c.resolution_due_at <= at AND c.resolved_at IS NULL AND c.resolution_breached_at IS NULL)))
    WHEN 'surveys.invitations' THEN EXISTS (
      SELECT 1 FROM surveys s WHERE s.tenant_id = t.id AND s.status = 'active')
    WHEN 'retention.tenant' THEN EXISTS (
      SELECT 1 FROM outbox_events o WHERE o.tenant_id = t.id AND o.dispatched_at IS NOT NULL) OR EXISTS (
      SELECT 1 FROM webhook_deliveries d WHERE d.tenant_id = t.id AND d.status IN ('succeeded', 'cancelled', 'dead'))
    WHEN 'measurement.loyalty' THEN EXISTS (
      SELECT 1 FROM members m WHERE m.tenant_id = t.id)
    WHEN 'members' THEN EXISTS (
      SELECT 1 FROM members m WHERE m.tenant_id = t.id AND m.status = 'active')
    ELSE false
  END
$$
"""

PREVIOUS = """
CREATE OR REPLACE FUNCTION fealty_due_tenants(job_kind text, at timestamptz) RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT t.id FROM tenants t
  WHERE t.status = 'active' AND CASE job_kind
    WHEN 'ledger.release' THEN EXISTS (
      SELECT 1 FROM lots l WHERE l.tenant_id = t.id AND l.status = 'pending' AND l.available_at <= at)
    WHEN 'ledger.expire' THEN EXISTS (
      SELECT 1 FROM lots l WHERE l.tenant_id = t.id AND l.remaining > 0 AND l.status = 'posted'
        AND l.expires_at IS NOT NULL AND l.expires_at <= at)
    WHEN 'rewards.expire' THEN EXISTS (
      SELECT 1 FROM redemptions r WHERE r.tenant_id = t.id AND r.status = 'issued'
        AND r.expires_at IS NOT NULL AND r.expires_at <= at)
    WHEN 'outbox.dispatch' THEN EXISTS (
      SELECT 1 FROM outbox_events o WHERE o.tenant_id = t.id AND o.dispatched_at IS NULL)
    WHEN 'webhooks.deliver' THEN EXISTS (
      SELECT 1 FROM webhook_deliveries d WHERE d.tenant_id = t.id AND d.status IN ('pending', 'sending')
        AND d.next_attempt_at <= at)
    WHEN 'care.deliver' THEN EXISTS (
      SELECT 1 FROM care_messages m WHERE m.tenant_id = t.id AND m.state IN ('queued', 'deferred')
        AND m.due_at <= at)
    WHEN 'care.occasions' THEN EXISTS (
      SELECT 1 FROM care_rules r WHERE r.tenant_id = t.id AND r.active)
    WHEN 'idempotency.purge' THEN EXISTS (
      SELECT 1 FROM idempotency_records k WHERE k.tenant_id = t.id AND k.expires_at <= at)
    WHEN 'tiers.close_periods' THEN EXISTS (
      SELECT 1 FROM members m WHERE m.tenant_id = t.id AND m.status = 'active' AND m.tier_valid_until <= at)
    WHEN 'cases.breaches' THEN EXISTS (
      SELECT 1 FROM cases c WHERE c.tenant_id = t.id AND c.status <> 'closed' AND (
        (c.first_reply_due_at <= at AND c.first_replied_at IS NULL AND c.first_reply_breached_at IS NULL)
        OR (c.resolution_due_at <= at AND c.resolved_at IS NULL AND c.resolution_breached_at IS NULL)))
    WHEN 'surveys.invitations' THEN EXISTS (
      SELECT 1 FROM surveys s WHERE s.tenant_id = t.id AND s.status = 'active')
    ELSE false
  END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)  # CREATE OR REPLACE keeps the owner and the grants


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PREVIOUS)
