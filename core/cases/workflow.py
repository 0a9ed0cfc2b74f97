"""The complaint workflow the operators' texts name, as a pure table: receive, classify, assign, investigate,
resolve, reply, close -- and reopen. Each action moves a case from the statuses it is allowed in to one status;
``respond`` (a first word to the member, stopping the first-reply clock) leaves the status as it is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Transition:
    action: str
    allowed_from: frozenset[str]
    #: None: the status does not change.
    to: str | None


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        Transition("classify", frozenset({"received", "classified"}), "classified"),
        Transition("assign", frozenset({"classified", "assigned", "investigating"}), "assigned"),
        Transition("investigate", frozenset({"assigned"}), "investigating"),
        Transition("resolve", frozenset({"investigating"}), "resolved"),
        Transition("reply", frozenset({"resolved"}), "replied"),
        Transition("close", frozenset({"replied"}), "closed"),
        Transition("reopen", frozenset({"resolved", "replied", "closed"}), "investigating"),
        Transition(
            "respond",
            frozenset({"received", "classified", "assigned", "investigating", "resolved", "replied"}),
            None,
        ),
    )
}
#: The statuses of a case still being worked on (a reply to its thread joins it).
OPEN_STATUSES = frozenset({"received", "classified", "assigned", "investigating", "resolved", "replied"})


def allowed_actions(status: str) -> list[str]:
    """The actions a case in ``status`` accepts, in workflow order."""
    return [name for name, t in TRANSITIONS.items() if status in t.allowed_from]


def next_status(status: str, action: str) -> str | None:
    """The status after ``action``, or None when the action is not allowed from ``status``."""
    transition = TRANSITIONS[action]
    if status not in transition.allowed_from:
        return None
    return transition.to or status
