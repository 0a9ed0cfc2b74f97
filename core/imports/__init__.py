"""Bulk imports of members and opening balances from CSV, row by row, idempotent per row."""
