"""The program's settings as the ledger reads them: its expiry policy, its reversal policy and its time zone (the
program settings know nothing of the ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from core.ledger import maths
from core.program.settings import ProgramSettings


@dataclass(frozen=True, slots=True)
class LedgerPolicy:
    """The program settings the ledger needs."""

    expiry: maths.ExpiryPolicy
    reversal: maths.ReversalPolicy
    timezone: ZoneInfo


def expiry_of(program: ProgramSettings) -> maths.ExpiryPolicy:
    """The program's points expiry policy."""
    return maths.ExpiryPolicy(program.expiry_kind, program.expiry_value)  # type: ignore[arg-type]


def policy_of(program: ProgramSettings) -> LedgerPolicy:
    """What the ledger needs of the program."""
    return LedgerPolicy(expiry=expiry_of(program), reversal=program.reversal_policy, timezone=program.tz)  # type: ignore[arg-type]
