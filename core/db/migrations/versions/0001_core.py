"""Core schema: tenants, keys, program, members, consents, the ledger, idempotency; RLS and the app role.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-22 07:51:16.777413
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0001_core"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("core",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "platform_credentials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_credentials")),
    )
    op.create_table(
        "platform_idempotency_records",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column(
            "response_headers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_platform_idempotency_records")),
    )
    op.create_index(
        op.f("ix_platform_idempotency_records_expires_at"), "platform_idempotency_records", ["expires_at"], unique=False
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("plan_code", sa.String(length=64), nullable=True),
        sa.Column("billing_status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f("ck_tenants_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
    )
    op.create_table(
        "api_keys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_hint", sa.String(length=16), nullable=False),
        sa.Column(
            "scopes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_api_keys")),
    )
    op.create_index(op.f("ix_api_keys_tenant_id_created_at"), "api_keys", ["tenant_id", "created_at"], unique=False)
    op.create_table(
        "idempotency_records",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column(
            "response_headers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_idempotency_records_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "key", name=op.f("pk_idempotency_records")),
    )
    op.create_index(
        op.f("ix_idempotency_records_tenant_id_expires_at"),
        "idempotency_records",
        ["tenant_id", "expires_at"],
        unique=False,
    )
    op.create_table(
        "members",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("card", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "attributes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("anonymized_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'anonymized')", name=op.f("ck_members_status")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_members_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_members")),
    )
    op.create_index("ix_members_tenant_id_email", "members", ["tenant_id", "email"], unique=False)
    op.create_index("ix_members_tenant_id_phone", "members", ["tenant_id", "phone"], unique=False)
    op.create_index(
        "uq_members_tenant_id_card",
        "members",
        ["tenant_id", "card"],
        unique=True,
        postgresql_where=sa.text("card IS NOT NULL"),
        sqlite_where=sa.text("card IS NOT NULL"),
    )
    op.create_index("uq_members_tenant_id_external_id", "members", ["tenant_id", "external_id"], unique=True)
    op.create_table(
        "programs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("points_name", sa.String(length=40), nullable=False),
        sa.Column("expiry_kind", sa.String(length=24), nullable=False),
        sa.Column("expiry_value", sa.Integer(), nullable=True),
        sa.Column("reversal_policy", sa.String(length=16), nullable=False),
        sa.Column(
            "options", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "expiry_kind IN ('never', 'days_after_earn', 'end_of_month_after', 'inactivity')",
            name=op.f("ck_programs_expiry_kind"),
        ),
        sa.CheckConstraint(
            "reversal_policy IN ('allow_negative', 'claw_back')", name=op.f("ck_programs_reversal_policy")
        ),
        sa.CheckConstraint("expiry_value IS NULL OR expiry_value > 0", name=op.f("ck_programs_expiry_value")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_programs_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_programs")),
    )
    op.create_table(
        "consent_changes",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_consent_changes_tenant_id_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_consent_changes")),
    )
    op.create_index(
        op.f("ix_consent_changes_tenant_id_member_id_occurred_at"),
        "consent_changes",
        ["tenant_id", "member_id", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "ledger_entries",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cause_type", sa.String(length=16), nullable=False),
        sa.Column("cause_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("reverses_entry_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.CheckConstraint(
            "cause_type IN ('event', 'redemption', 'admin', 'plugin', 'system')",
            name=op.f("ck_ledger_entries_cause_type"),
        ),
        sa.CheckConstraint(
            "kind IN ('earn', 'redeem', 'expire', 'adjust', 'reverse', 'transfer')", name=op.f("ck_ledger_entries_kind")
        ),
        sa.CheckConstraint("kind NOT IN ('earn') OR points > 0", name=op.f("ck_ledger_entries_earn_positive")),
        sa.CheckConstraint(
            "kind NOT IN ('redeem', 'expire') OR points < 0", name=op.f("ck_ledger_entries_spend_negative")
        ),
        sa.CheckConstraint("points <> 0 OR kind = 'reverse'", name=op.f("ck_ledger_entries_points_not_zero")),
        sa.CheckConstraint("status IN ('posted', 'pending', 'cancelled')", name=op.f("ck_ledger_entries_status")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_ledger_entries_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "reverses_entry_id"],
            ["ledger_entries.tenant_id", "ledger_entries.id"],
            name=op.f("fk_ledger_entries_tenant_id_reverses_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_ledger_entries")),
    )
    op.create_index("ix_ledger_entries_cause", "ledger_entries", ["tenant_id", "cause_type", "cause_id"], unique=False)
    op.create_index(
        "ix_ledger_entries_member_created", "ledger_entries", ["tenant_id", "member_id", "created_at"], unique=False
    )
    op.create_index("ix_ledger_entries_reverses", "ledger_entries", ["tenant_id", "reverses_entry_id"], unique=False)
    op.create_table(
        "member_consents",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('email', 'sms', 'push')", name=op.f("ck_member_consents_channel")),
        sa.CheckConstraint("purpose IN ('service', 'marketing')", name=op.f("ck_member_consents_purpose")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_member_consents_tenant_id_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "member_id", "channel", "purpose", name=op.f("pk_member_consents")),
    )
    op.create_table(
        "point_balances",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_earned", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_redeemed", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_expired", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_adjusted", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_written_off", sa.BigInteger(), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "available = lifetime_earned - lifetime_redeemed - lifetime_expired + lifetime_adjusted + lifetime_written_off",
            name=op.f("ck_point_balances_totals_add_up"),
        ),
        sa.CheckConstraint(
            "lifetime_earned >= 0 AND lifetime_redeemed >= 0 AND lifetime_expired >= 0 AND lifetime_written_off >= 0",
            name=op.f("ck_point_balances_lifetime_not_negative"),
        ),
        sa.CheckConstraint("pending >= 0", name=op.f("ck_point_balances_pending_not_negative")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_point_balances_tenant_id_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "member_id", name=op.f("pk_point_balances")),
    )
    op.create_table(
        "lots",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("reversed", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'posted', 'cancelled')", name=op.f("ck_lots_status")),
        sa.CheckConstraint("kind IN ('earn', 'adjust')", name=op.f("ck_lots_kind")),
        sa.CheckConstraint("points > 0", name=op.f("ck_lots_points_positive")),
        sa.CheckConstraint("remaining >= 0 AND remaining <= points", name=op.f("ck_lots_remaining_in_range")),
        sa.CheckConstraint("reversed >= 0 AND reversed <= points", name=op.f("ck_lots_reversed_in_range")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "id"],
            ["ledger_entries.tenant_id", "ledger_entries.id"],
            name=op.f("fk_lots_tenant_id_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_lots_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_lots")),
    )
    op.create_index(
        "ix_lots_expiring",
        "lots",
        ["tenant_id", "expires_at"],
        unique=False,
        postgresql_where=sa.text("remaining > 0 AND status = 'posted' AND expires_at IS NOT NULL"),
        sqlite_where=sa.text("remaining > 0 AND status = 'posted' AND expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_lots_open_by_member",
        "lots",
        ["tenant_id", "member_id", "expires_at"],
        unique=False,
        postgresql_where=sa.text("remaining > 0"),
        sqlite_where=sa.text("remaining > 0"),
    )
    op.create_index(
        "ix_lots_releasing",
        "lots",
        ["tenant_id", "available_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "lot_consumptions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("points <> 0", name=op.f("ck_lot_consumptions_points_not_zero")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "entry_id"],
            ["ledger_entries.tenant_id", "ledger_entries.id"],
            name=op.f("fk_lot_consumptions_tenant_id_entry_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lot_id"],
            ["lots.tenant_id", "lots.id"],
            name=op.f("fk_lot_consumptions_tenant_id_lot_id_lots"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_lot_consumptions")),
    )
    op.create_index("ix_lot_consumptions_entry", "lot_consumptions", ["tenant_id", "entry_id"], unique=False)
    op.create_index("ix_lot_consumptions_lot", "lot_consumptions", ["tenant_id", "lot_id"], unique=False)
    rls.create_app_role()
    rls.global_table("tenants", ("SELECT", "INSERT", "UPDATE"))
    rls.global_table("platform_credentials", ("SELECT", "INSERT"))
    rls.global_table("platform_idempotency_records")
    for table in (
        "api_keys",
        "programs",
        "members",
        "member_consents",
        "point_balances",
        "lots",
        "idempotency_records",
    ):
        rls.tenant_table(table)
    # Append-only history: the application may add rows, never change or remove them.
    rls.tenant_table("consent_changes", ("SELECT", "INSERT"))
    rls.tenant_table("lot_consumptions", ("SELECT", "INSERT"))
    # Ledger entries are never updated in place, except a pending entry's status.
    rls.tenant_table("ledger_entries", ("SELECT", "INSERT"), update_columns=("status",))


def downgrade() -> None:
    op.drop_index("ix_lot_consumptions_lot", table_name="lot_consumptions")
    op.drop_index("ix_lot_consumptions_entry", table_name="lot_consumptions")
    op.drop_table("lot_consumptions")
    op.drop_index(
        "ix_lots_releasing",
        table_name="lots",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "ix_lots_open_by_member",
        table_name="lots",
        postgresql_where=sa.text("remaining > 0"),
        sqlite_where=sa.text("remaining > 0"),
    )
    op.drop_index(
        "ix_lots_expiring",
        table_name="lots",
        postgresql_where=sa.text("remaining > 0 AND status = 'posted' AND expires_at IS NOT NULL"),
        sqlite_where=sa.text("remaining > 0 AND status = 'posted' AND expires_at IS NOT NULL"),
    )
    op.drop_table("lots")
    op.drop_table("point_balances")
    op.drop_table("member_consents")
    op.drop_index("ix_ledger_entries_reverses", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_member_created", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_cause", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index(op.f("ix_consent_changes_tenant_id_member_id_occurred_at"), table_name="consent_changes")
    op.drop_table("consent_changes")
    op.drop_table("programs")
    op.drop_index("uq_members_tenant_id_external_id", table_name="members")
    op.drop_index(
        "uq_members_tenant_id_card",
        table_name="members",
        postgresql_where=sa.text("card IS NOT NULL"),
        sqlite_where=sa.text("card IS NOT NULL"),
    )
    op.drop_index("ix_members_tenant_id_phone", table_name="members")
    op.drop_index("ix_members_tenant_id_email", table_name="members")
    op.drop_table("members")
    op.drop_index(op.f("ix_idempotency_records_tenant_id_expires_at"), table_name="idempotency_records")
    op.drop_table("idempotency_records")
    op.drop_index(op.f("ix_api_keys_tenant_id_created_at"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
    op.drop_table("platform_credentials")
    op.drop_index(op.f("ix_platform_idempotency_records_expires_at"), table_name="platform_idempotency_records")
    op.drop_table("platform_idempotency_records")
