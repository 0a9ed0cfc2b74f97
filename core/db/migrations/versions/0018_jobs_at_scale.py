"""Jobs at scale: the job resource (progress, result, problem, started_at, a ``task`` flag for jobs a tenant
started and may watch) and ``job_schedules``, recurring work stored once per tenant and kind with its next due time,
so that an idle worker tick reads only what is due.

Revision ID: 0018_jobs_at_scale
Revises: 0017_activity_times
On PostgreSQL the application role may now delete the rows retention removes (old deliveries, events, jobs).

Create Date: 2026-12-05 17:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0018_jobs_at_scale"
down_revision: str | Sequence[str] | None = "0017_activity_times"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("task", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("progress_done", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("progress_total", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("result", JSON, nullable=True))
        batch.add_column(sa.Column("problem", JSON, nullable=True))
    op.create_index(
        "ix_jobs_tasks",
        "jobs",
        ["tenant_id", "created_at"],
        postgresql_where=sa.text("task"),
        sqlite_where=sa.text("task"),
    )
    op.create_table(
        "job_schedules",
        sa.Column("kind", sa.String(length=100), nullable=False),
        #: The tenant's id as text, or "platform": a primary key cannot hold a null tenant.
        sa.Column("scope", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("every_seconds", sa.Integer(), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("every_seconds > 0", name=op.f("ck_job_schedules_every_positive")),
        sa.PrimaryKeyConstraint("kind", "scope", name=op.f("pk_job_schedules")),
    )
    op.create_index("ix_job_schedules_due", "job_schedules", ["next_due_at"])
    rls.global_table("job_schedules")  # like ``jobs``: the worker (the application role) sees every row
    if op.get_bind().dialect.name == "postgresql":
        # Retention (core.retention.jobs) deletes old rows as the application role, inside each tenant's scope.
        # The delivery log and the outbox stay append-only for everything else: restrictive policies let a DELETE
        # reach only rows that are finished and older than a day (the shortest retention); attempts go with their
        # delivery through the foreign key's cascade, and the role still may not delete them itself.
        role = rls.app_role()
        op.execute(f"GRANT DELETE ON webhook_deliveries, outbox_events, stripe_events, jobs TO {role}")
        op.execute(
            "CREATE POLICY retention_only ON webhook_deliveries AS RESTRICTIVE FOR DELETE USING ("
            "status IN ('succeeded', 'cancelled', 'dead') AND finished_at < now() - interval '1 day')"
        )
        op.execute(
            "CREATE POLICY retention_only ON outbox_events AS RESTRICTIVE FOR DELETE USING ("
            "dispatched_at IS NOT NULL AND dispatched_at < now() - interval '1 day')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        role = rls.app_role()
        op.execute(
            f"REVOKE DELETE ON webhook_deliveries, webhook_delivery_attempts, outbox_events, stripe_events FROM {role}"
        )
    op.drop_index("ix_job_schedules_due", table_name="job_schedules")
    op.drop_table("job_schedules")
    op.drop_index("ix_jobs_tasks", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("problem", "result", "progress_total", "progress_done", "started_at", "task"):
            batch.drop_column(column)
