"""Identifiers: time-ordered UUIDv7, so primary keys append to the right of B-tree indexes and sort by creation."""

from __future__ import annotations

import uuid

import uuid6


def new_id() -> uuid.UUID:
    return uuid.UUID(int=uuid6.uuid7().int)
