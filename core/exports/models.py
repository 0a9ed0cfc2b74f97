"""Background exports to S3: what was asked, where it goes, and how far it got."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

EXPORT_STATES = ("queued", "running", "done", "failed")
EXPORT_FORMATS = ("csv", "parquet")


class DataExport(TenantScoped, Base):
    __tablename__ = "data_exports"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint(f"state IN {EXPORT_STATES!r}", name="state"),
        CheckConstraint(f"format IN {EXPORT_FORMATS!r}", name="format"),
        CheckConstraint("rows_done >= 0", name="rows_done"),
        Index("ix_data_exports_created", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    #: ``members``, ``ledger``, ``events`` or ``report:<name>``.
    kind: Mapped[str] = mapped_column(String(60))
    format: Mapped[str] = mapped_column(String(8))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(8), default="queued")
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    bytes_written: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
