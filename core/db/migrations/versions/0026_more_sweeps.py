"""Two more swept kinds (``core/jobs/sweeps.py``): the idempotency purge (tenants with expired keys) and the tier
periods (tenants with an active member whose tier validity has ended). ``fealty_due_tenants`` gains their
conditions, and its role may read the two tables they look at.

Revision ID: 0026_more_sweeps
Revises: 0025_job_sweeps
Create Date: 2026-12-05 20:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from core.db import rls

revision: str = "0026_more_sweeps"
down_revision: str | Sequence[str] | None = "0025_job_sweeps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("idempotency_records", "members")

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
