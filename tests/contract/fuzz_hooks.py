"""schemathesis hooks of the fuzz (``SCHEMATHESIS_HOOKS=tests.contract.fuzz_hooks``).

A ``cursor`` is opaque: only a ``next_cursor`` the API returned is one, and no schema can say which strings those
are, so generated requests leave it out (tests/contract/test_inputs.py sends foreign cursors and expects a 422).
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def map_query(ctx: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    if query:
        query.pop("cursor", None)
    return query
