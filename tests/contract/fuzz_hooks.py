"""schemathesis hooks of the fuzz (loaded with ``SCHEMATHESIS_HOOKS=tests.contract.fuzz_hooks``; see docs/api.md).

Schema-valid input must be accepted. schemathesis' own check of that (``positive_data_acceptance``) is replaced by
:func:`schema_valid_input_is_accepted`, which is as strict except for the rules no JSON schema can express: a 422
naming one of the fields listed for the operation in :data:`RULES_NO_SCHEMA_CAN_SAY` (an event type the tenant has
not registered, an ordered time window...). Anything else refused with a 422 (or a 400) is a bound, format or
pattern the schema does not declare: a finding.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

#: Per operation (``"METHOD /path"``, ``"*"`` for all), the fields (regular expressions on the problem's ``field``)
#: of rules that depend on data or on several fields at once, which no schema can say. Keep each with its reason.
RULES_NO_SCHEMA_CAN_SAY: dict[str, tuple[str, ...]] = {
    # Only a next_cursor the API returned is a cursor (its format is declared; which strings are cursors is not).
    "*": ("cursor",),
}

#: API-wide rules documented in docs/api.md that schemas do not repeat on every string.
DOCUMENTED_EVERYWHERE = (
    # No string may contain U+0000 (PostgreSQL cannot store it): refused with the field named.
    re.compile(r"must not contain the NUL character"),
)

ACCEPTED = re.compile(r"^(2\d\d|3\d\d|401|403|404|409|429)$")


def _excused(label: str, problem: dict[str, Any]) -> bool:
    field = str(problem.get("field") or "")
    detail = str(problem.get("detail") or "")
    if any(rule.search(detail) for rule in DOCUMENTED_EVERYWHERE):
        return True
    patterns = (*RULES_NO_SCHEMA_CAN_SAY.get("*", ()), *RULES_NO_SCHEMA_CAN_SAY.get(label, ()))
    return any(re.fullmatch(p + r"([.\[].*)?", field) for p in patterns)


@schemathesis.check
def schema_valid_input_is_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if ACCEPTED.match(str(response.status_code)):
        return None
    label = f"{case.operation.method.upper()} {case.operation.path}"
    problem: dict[str, Any] = {}
    try:
        body = response.json()
        problem = body if isinstance(body, dict) else {}
    except Exception:  # noqa: S110 - not JSON: a finding either way
        pass
    if response.status_code == 422 and _excused(label, problem):
        return None
    raise AssertionError(
        f"Schema-valid input refused with {response.status_code}: {problem.get('detail')!r} "
        f"(field {problem.get('field')!r}). Declare the rule in the schema (a msgspec constraint on the type), or, "
        "if no schema can say it, list the field in tests/contract/fuzz_hooks.py with its reason."
    )
