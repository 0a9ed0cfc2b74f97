"""Peak-time events and their rebates."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
