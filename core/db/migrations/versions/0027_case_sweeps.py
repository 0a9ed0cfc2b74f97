"""Two more swept kinds (``core/jobs/sweeps.py``): the SLA breach sweep (tenants with an open case whose first-reply
or resolution clock ran out, not yet flagged) and the survey invitations (tenants with an active survey).
``fealty_due_tenants`` gains their conditions, and its role may read ``cases`` and ``surveys``.

Revision ID: 0027_case_sweeps
Revises: 0020_surveys
Create Date: 2026-12-05 20:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from core.db import rls

revision: str = "0027_case_sweeps"
down_revision: str | Sequence[str] | None = "0020_surveys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("cases", "surveys")

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
    ELSE false
  END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    sweeper = f"{rls.app_role()}_sweeper"
    for table in TABLES:
        op.execute(f"GRANT SELECT ON {table} TO {sweeper}")
        op.execute(f"CREATE POLICY sweeper_reads ON {table} FOR SELECT TO {sweeper} USING (true)")
    op.execute(FUNCTION)  # CREATE OR REPLACE keeps the owner and the grants


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS sweeper_reads ON {table}")
