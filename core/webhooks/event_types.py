"""The domain event types a webhook endpoint may subscribe to: the one list, shared by validation, docs and tests.

Features emit these into the outbox (:func:`core.outbox.service.emit`); the dispatcher turns each into one delivery
per active endpoint whose ``event_types`` names the type or ``"*"``. Plugins declare the types they emit
(``fealty_webhook_event_types``): a tenant that enabled the plugin may subscribe to them (:func:`for_tenant`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.plugin.manager import PluginManager

#: Subscribes an endpoint to every event type, including types added later.
ALL = "*"

#: Every event type, with what it means (served by ``GET /v1/webhook-event-types``).
EVENT_TYPES: dict[str, str] = {
    "member.enrolled": "A member was enrolled.",
    "member.updated": "A member's details or consents changed.",
    "member.anonymized": "A member's personal data was erased (the ledger stays).",
    "points.earned": "Points were credited for an activity event.",
    "points.adjusted": "An admin credited or debited points by hand.",
    "points.expired": "Points expired under the program's expiry policy.",
    "event.processed": "An activity event was accepted and its awards posted.",
    "event.held": "An activity event was held for review.",
    "event.rejected": "An activity event was refused.",
    "event.reversed": "An activity event was reversed (refund, cancellation): what it earned was taken back.",
    "tier.changed": "A member moved up or down a tier.",
    "reward.redeemed": "A member redeemed a reward (a redemption with a voucher code was created).",
    "redemption.used": "A voucher was used.",
    "redemption.cancelled": "A redemption was cancelled and its points returned.",
    "redemption.expired": "A voucher expired unused.",
    "billing.status_changed": "The tenant's billing status changed (active, past due, suspended).",
    "care.requested": "A care notice is due for a member (for tenants who send their own messages).",
    "care.message": "A care message for the tenant's own channel (a care rule with the webhook channel).",
    "care.reply_received": "A member's reply to a message was relayed: opted out, claimed by a plugin, or a case.",
    "case.opened": "A complaint or service case was opened (through the API, a reply or a plugin).",
    "case.classified": "A case was given its category (and SLA clocks).",
    "case.assigned": "A case was assigned (or reassigned).",
    "case.investigating": "A case is being investigated (or was reopened).",
    "case.resolved": "A case was resolved, with its cause, prevention and any goodwill gesture.",
    "case.replied": "The member was told a case's resolution.",
    "case.closed": "A case was closed.",
    "case.responded": "A first word went to the member of a case (the first-reply clock stops).",
    "case.sla_breached": "A case's first-reply or resolution SLA ran out (once per breach).",
    "webhook.test": "A test event sent on request to one endpoint (POST /v1/webhook-endpoints/{id}/test).",
}

TEST_EVENT = "webhook.test"


@dataclass(frozen=True)
class Listed:
    """One event type a tenant may subscribe to: core's (``plugin`` None) or an enabled plugin's."""

    type: str
    description: str
    plugin: str | None = None


def for_tenant(plugins: PluginManager, enabled: Iterable[str]) -> dict[str, Listed]:
    """The event types a tenant's endpoints may name: core's, then those of the plugins it enabled (in the plugins'
    call order; :meth:`PluginManager.webhook_event_types` checked them at startup)."""
    found = {kind: Listed(kind, description) for kind, description in EVENT_TYPES.items()}
    wanted = set(enabled)
    for name, declared in plugins.webhook_event_types().items():
        if declared.plugin in wanted:
            found[name] = Listed(name, declared.description, declared.plugin)
    return found


def matches(subscribed: list[str] | tuple[str, ...], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``subscribed`` wants ``event_type``."""
    return event_type in subscribed or ALL in subscribed
