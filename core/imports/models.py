"""Imports (what was asked, progress, per-row errors) and the key of every row already applied."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

IMPORT_KINDS = ("members", "opening_balances")
IMPORT_STATES = ("queued", "running", "done", "failed")
#: Per-row errors kept per import at most (the counts stay exact).
MAX_ERRORS = 10_000


class DataImport(TenantScoped, Base):
    __tablename__ = "data_imports"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint(f"kind IN {IMPORT_KINDS!r}", name="kind"),
        CheckConstraint(f"state IN {IMPORT_STATES!r}", name="state"),
        Index("ix_data_imports_created", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(8), default="queued")
    #: The uploaded CSV (small files), or where it is in S3.
    source_text: Mapped[str | None] = mapped_column(Text)
    source_bucket: Mapped[str | None] = mapped_column(String(63))
    source_key: Mapped[str | None] = mapped_column(String(1024))
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    #: ``[{"row": 3, "field": "email", "detail": "..."}]`` (the header is row 1).
    errors: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class ImportedRow(TenantScoped, Base):
    """A row already applied, by its key (``opening:<external_id>``): a second run of any import skips it."""

    __tablename__ = "imported_rows"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    import_id: Mapped[uuid.UUID] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
