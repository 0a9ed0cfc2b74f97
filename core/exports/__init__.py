"""Exports: the tenant's members and ledger as CSV, streamed page by page (``GET /v1/exports/...``)."""
