"""The job queue: one global table (ids and timings only, no personal data), claimed with SKIP LOCKED."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, PrimaryKeyConstraint, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, id_column

JOB_STATUSES = ("queued", "running", "done", "dead")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),
        Index("ix_jobs_due", "status", "run_at"),
        Index("uq_jobs_dedupe_key", "dedupe_key", unique=True),
        Index(
            "ix_jobs_finished",
            "finished_at",
            postgresql_where=text("status = 'done'"),
            sqlite_where=text("status = 'done'"),
        ),
        Index("ix_jobs_tasks", "tenant_id", "created_at", postgresql_where=text("task"), sqlite_where=text("task")),
        {"info": {"tenant_owned": False}},
    )

    id: Mapped[uuid.UUID] = id_column()
    #: The tenant the job works for (None: a platform job). Not a tenant-owned row: the worker must see every job.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column()
    kind: Mapped[str] = mapped_column(String(100))
    #: Makes scheduling idempotent: one job per kind, tenant and time bucket, however many workers schedule it.
    dedupe_key: Mapped[str | None] = mapped_column(String(250))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=10)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    #: A job a tenant (or an operator) started and may watch: ``GET /v1/jobs`` lists these, not the recurring ones.
    task: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: When the current (or last) attempt started.
    started_at: Mapped[datetime | None] = mapped_column()
    #: Progress, in the job's own unit (members, rows...); ``progress_total`` is null until known.
    progress_done: Mapped[int] = mapped_column(default=0, server_default="0")
    progress_total: Mapped[int | None] = mapped_column()
    #: What a finished task answers (counts, ids), and an RFC 9457 problem when it died.
    result: Mapped[dict[str, Any] | None] = mapped_column()
    problem: Mapped[dict[str, Any] | None] = mapped_column()


class JobSchedule(Base):
    """Recurring work, one row per kind and tenant (``scope`` is the tenant id, or ``platform``) with its next due
    time: a worker's idle tick reads only the rows that are due (an index on ``next_due_at``), however many tenants
    there are, and turns them into jobs."""

    __tablename__ = "job_schedules"
    __table_args__ = (
        PrimaryKeyConstraint("kind", "scope"),
        CheckConstraint("every_seconds > 0", name="every_positive"),
        Index("ix_job_schedules_due", "next_due_at"),
        {"info": {"tenant_owned": False}},
    )

    kind: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(36))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column()
    every_seconds: Mapped[int] = mapped_column()
    next_due_at: Mapped[datetime] = mapped_column()
