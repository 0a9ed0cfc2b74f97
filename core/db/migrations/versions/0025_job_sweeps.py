"""Swept recurring work (``core/jobs/sweeps.py``): ``fealty_due_tenants(kind, at)`` answers which active tenants have
due work of a kind, across tenants, and nothing but their ids.

The application role sees one tenant's rows at a time (row-level security), so the function is ``SECURITY DEFINER``,
owned by ``<app role>_sweeper``: a role without login that may only read the tables the sweeps look at, through a
policy of its own. The application role may execute the function and nothing more. The conditions are those of
``core.jobs.sweeps.CONDITIONS`` as of this revision.

Revision ID: 0025_job_sweeps
Revises: 0019_cases
Create Date: 2026-12-05 20:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from core.db import rls

revision: str = "0025_job_sweeps"
down_revision: str | Sequence[str] | None = "0019_cases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("lots", "redemptions", "outbox_events", "webhook_deliveries", "care_messages", "care_rules")

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
    ELSE false
  END
$$
"""


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _is_postgres():
        return
    app = rls.app_role()
    sweeper = f"{app}_sweeper"
    # The role names are checked to be plain identifiers by rls.app_role().
    op.execute(
        f"""
        DO $$
        BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{sweeper}') THEN
            CREATE ROLE {sweeper} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        EXCEPTION WHEN duplicate_object THEN NULL;
        END $$;
        """  # noqa: S608
    )
    op.execute(f"GRANT {sweeper} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {sweeper}")
    op.execute(f"GRANT SELECT ON tenants TO {sweeper}")
    for table in TABLES:
        op.execute(f"GRANT SELECT ON {table} TO {sweeper}")
        op.execute(f"CREATE POLICY sweeper_reads ON {table} FOR SELECT TO {sweeper} USING (true)")
    op.execute(FUNCTION)
    # A new owner needs CREATE on the schema at the moment it takes the function (PostgreSQL 15 grants it to nobody
    # by default); it keeps the function without it.
    op.execute(f"GRANT CREATE ON SCHEMA public TO {sweeper}")
    op.execute(f"ALTER FUNCTION fealty_due_tenants(text, timestamptz) OWNER TO {sweeper}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {sweeper}")
    op.execute("REVOKE ALL ON FUNCTION fealty_due_tenants(text, timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION fealty_due_tenants(text, timestamptz) TO {app}")


def downgrade() -> None:
    if not _is_postgres():
        return
    op.execute("DROP FUNCTION IF EXISTS fealty_due_tenants(text, timestamptz)")
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS sweeper_reads ON {table}")
