"""Stripe: the only module that imports ``stripe``. A small async gateway that returns plain dataclasses.

Every call goes through one :class:`stripe.StripeClient` whose API base is a setting (tests and local runs point it
at localstripe), with network retries (the SDK retries connection errors, 409s and 5xx with backoff), and every
create carries an idempotency key derived from what it creates, so a retried request -- ours or the SDK's -- never
makes a second object. Stripe's errors become Fealty's: unreachable or failing Stripe is ``BillingUnavailable``
(503, retry later), a declined card is ``PaymentFailed`` (402), anything else Stripe refuses is
``BillingProviderError`` (502). No Stripe object leaves this module.

Only what localstripe also implements is used: customers, payment methods, products, plans (not prices),
subscriptions with quantity and trial, invoice items, invoices and their payment.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import stripe
import structlog

from core.errors import BillingProviderError, BillingUnavailable, InvalidWebhookSignature, PaymentFailed

log = structlog.get_logger("fealty.stripe")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    id: str
    #: What a person recognises: ``visa •••• 4242``.
    summary: str


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    product: str
    amount: int
    currency: str
    active: bool


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    customer: str
    subscription: str | None
    status: str
    currency: str
    #: Minor units (pence, cents).
    amount_due: int
    amount_paid: int
    attempted: bool
    created: datetime
    number: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    paid_at: datetime | None = None
    hosted_invoice_url: str | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    customer: str
    status: str
    plan_id: str | None
    #: ``fealty_plan_code`` from the Stripe plan's metadata (set by ``fealty billing sync-plans``).
    plan_code: str | None
    item_id: str | None
    quantity: int
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    metadata: dict[str, str] = field(default_factory=dict)
    latest_invoice: Invoice | None = None
    #: The id of the latest invoice, expanded or not (None: the subscription has issued none, e.g. in a trial).
    latest_invoice_id: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceItem:
    id: str
    amount: int
    currency: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    type: str
    created: datetime
    #: ``data.object`` as Stripe sent it.
    object: dict[str, Any]


# --- parsing ----------------------------------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int | float) and value else None


def _id(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        found = value.get("id")
        return str(found) if found else None
    return None


def _metadata(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _plain(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    result: dict[str, Any] = obj.to_dict()
    return result


def parse_invoice(data: Mapping[str, Any]) -> Invoice:
    subscription = _id(data.get("subscription"))
    if subscription is None:  # newer API versions move it under parent.subscription_details
        parent = data.get("parent") or {}
        subscription = _id((parent.get("subscription_details") or {}).get("subscription"))
    transitions = data.get("status_transitions") or {}
    return Invoice(
        id=str(data["id"]),
        customer=_id(data.get("customer")) or "",
        subscription=subscription,
        status=str(data.get("status") or "draft"),
        currency=str(data.get("currency") or "eur").upper(),
        amount_due=int(data.get("amount_due") or 0),
        amount_paid=int(data.get("amount_paid") or 0),
        attempted=bool(data.get("attempted")),
        created=_time(data.get("created")) or datetime.now(UTC),
        number=data.get("number"),
        period_start=_time(data.get("period_start")),
        period_end=_time(data.get("period_end")),
        paid_at=_time(transitions.get("paid_at")),
        hosted_invoice_url=data.get("hosted_invoice_url"),
    )


def parse_subscription(data: Mapping[str, Any]) -> Subscription:
    items = (data.get("items") or {}).get("data") or []
    item: Mapping[str, Any] = items[0] if items else {}
    plan = item.get("plan") or data.get("plan") or {}
    latest = data.get("latest_invoice")
    # Since API version 2025-03-31 the period lives on the subscription item; localstripe keeps it on the subscription.
    start = data.get("current_period_start") or item.get("current_period_start")
    end = data.get("current_period_end") or item.get("current_period_end")
    return Subscription(
        id=str(data["id"]),
        customer=_id(data.get("customer")) or "",
        status=str(data.get("status")),
        plan_id=_id(plan),
        plan_code=_metadata(plan.get("metadata") if isinstance(plan, Mapping) else None).get("fealty_plan_code"),
        item_id=_id(item),
        quantity=int(item.get("quantity") or data.get("quantity") or 1),
        current_period_start=_time(start),
        current_period_end=_time(end),
        trial_end=_time(data.get("trial_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        metadata=_metadata(data.get("metadata")),
        latest_invoice=parse_invoice(latest) if isinstance(latest, Mapping) else None,
        latest_invoice_id=_id(latest),
    )


def _payment_method(data: Mapping[str, Any]) -> PaymentMethod:
    card = data.get("card") or {}
    if card:
        summary = f"{card.get('brand', 'card')} •••• {card.get('last4', '????')}"
    else:
        summary = str(data.get("type") or "payment method")
    return PaymentMethod(str(data["id"]), summary)


# --- the gateway ------------------------------------------------------------------------------------------------------


class StripeGateway:
    """Fealty's view of Stripe. One per process (it owns an HTTP connection pool); close it with :meth:`aclose`."""

    def __init__(self, *, api_key: str, api_base: str = "", max_network_retries: int = 2, timeout: float = 15.0):
        self._http = stripe.HTTPXClient(timeout=timeout)
        base: Any = {"api": api_base.rstrip("/")} if api_base else None
        self._client = stripe.StripeClient(
            api_key, base_addresses=base, max_network_retries=max_network_retries, http_client=self._http
        )

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        found = await self._request(what, call, missing_ok=False)
        assert found is not None
        return found

    async def _maybe(self, what: str, call: Awaitable[T]) -> T | None:
        """``call``, or None when Stripe answers 404 (the object does not exist)."""
        return await self._request(what, call, missing_ok=True)

    async def _request(self, what: str, call: Awaitable[T], *, missing_ok: bool) -> T | None:
        try:
            return await call
        except stripe.CardError as exc:
            raise PaymentFailed(
                f"The card was declined ({exc.code or 'card_declined'}): {exc.user_message or 'try another card'}.",
                decline_code=exc.code,
            ) from None
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            log.warning("stripe_unavailable", call=what, error=type(exc).__name__)
            raise BillingUnavailable(
                "The payment provider (Stripe) did not answer; nothing was changed. Retry in a moment.",
                headers={"Retry-After": "30"},
            ) from None
        except stripe.AuthenticationError:
            log.error("stripe_authentication_failed", call=what)
            raise BillingUnavailable("The payment provider refused Fealty's credentials; tell the operator.") from None
        except stripe.StripeError as exc:
            if missing_ok and exc.http_status == 404:
                return None
            log.warning("stripe_refused", call=what, status=exc.http_status, error=str(exc.user_message))
            raise BillingProviderError(
                f"Stripe refused {what}: {exc.user_message or type(exc).__name__}.", stripe_status=exc.http_status
            ) from None

    # customers and payment methods

    async def create_customer(self, *, name: str, metadata: dict[str, str], idempotency_key: str) -> Customer:
        customer = await self._call(
            "creating the customer",
            self._client.v1.customers.create_async(
                {"name": name, "metadata": metadata, "description": f"Fealty tenant {metadata.get('fealty_slug', '')}"},
                {"idempotency_key": idempotency_key},
            ),
        )
        data = _plain(customer)
        return Customer(str(data["id"]), _metadata(data.get("metadata")))

    async def attach_payment_method(self, customer_id: str, payment_method_id: str) -> PaymentMethod | None:
        """Attach ``payment_method_id`` and make it the customer's default; None when Stripe knows no such method."""
        attached = await self._maybe(
            "attaching the payment method",
            self._client.v1.payment_methods.attach_async(
                payment_method_id,
                {"customer": customer_id},
                {"idempotency_key": f"fealty-attach-{customer_id}-{payment_method_id}"},
            ),
        )
        if attached is None:
            return None
        method = _payment_method(_plain(attached))
        await self._call(
            "setting the default payment method",
            self._client.v1.customers.update_async(
                customer_id, {"invoice_settings": {"default_payment_method": method.id}}
            ),
        )
        return method

    # the catalogue

    async def retrieve_product(self, product_id: str) -> Product | None:
        found = await self._maybe("reading the product", self._client.v1.products.retrieve_async(product_id))
        if found is None:
            return None
        data = _plain(found)
        return Product(str(data["id"]), str(data.get("name") or ""))

    async def create_product(self, product_id: str, *, name: str, metadata: dict[str, str]) -> Product:
        created = await self._call(
            "creating the product",
            self._client.v1.products.create_async(
                {"id": product_id, "name": name, "metadata": metadata},
                {"idempotency_key": f"fealty-product-{product_id}"},
            ),
        )
        return Product(str(_plain(created)["id"]), name)

    async def rename_product(self, product_id: str, name: str) -> None:
        await self._call("renaming the product", self._client.v1.products.update_async(product_id, {"name": name}))

    async def retrieve_plan(self, plan_id: str) -> Plan | None:
        found = await self._maybe("reading the plan", self._client.v1.plans.retrieve_async(plan_id))
        return None if found is None else self._plan(_plain(found))

    async def create_plan(
        self, plan_id: str, *, product_id: str, amount: int, currency: str, nickname: str, metadata: dict[str, str]
    ) -> Plan:
        created = await self._call(
            "creating the plan",
            self._client.v1.plans.create_async(
                {
                    "id": plan_id,
                    "product": product_id,
                    "amount": amount,
                    "currency": currency.lower(),
                    "interval": "month",
                    "nickname": nickname,
                    "metadata": metadata,
                },
                {"idempotency_key": f"fealty-plan-{plan_id}"},
            ),
        )
        return self._plan(_plain(created))

    async def archive_plan(self, plan_id: str) -> None:
        """No new subscriptions on ``plan_id``; the subscriptions already on it keep it."""
        await self._call("archiving the plan", self._client.v1.plans.update_async(plan_id, {"active": False}))

    @staticmethod
    def _plan(data: Mapping[str, Any]) -> Plan:
        return Plan(
            str(data["id"]),
            _id(data.get("product")) or "",
            int(data.get("amount") or 0),
            str(data.get("currency") or "").upper(),
            bool(data.get("active", True)),
        )

    # subscriptions

    async def create_subscription(
        self,
        *,
        customer_id: str,
        plan_id: str,
        quantity: int,
        trial_end: datetime | None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> Subscription:
        params: dict[str, Any] = {
            "customer": customer_id,
            "items": [{"plan": plan_id, "quantity": quantity}],
            "metadata": metadata,
            "expand": ["latest_invoice"],
        }
        if trial_end is not None:
            params["trial_end"] = int(trial_end.timestamp())
        created = await self._call(
            "creating the subscription",
            self._client.v1.subscriptions.create_async(params, {"idempotency_key": idempotency_key}),  # type: ignore[arg-type]
        )
        return parse_subscription(_plain(created))

    async def retrieve_subscription(self, subscription_id: str) -> Subscription | None:
        found = await self._maybe(
            "reading the subscription",
            self._client.v1.subscriptions.retrieve_async(subscription_id, {"expand": ["latest_invoice"]}),
        )
        return None if found is None else parse_subscription(_plain(found))

    async def live_subscriptions(self, customer_id: str) -> list[Subscription]:
        """The customer's subscriptions that have not ended (Stripe leaves out canceled ones by default)."""
        found = await self._call(
            "listing the subscriptions", self._client.v1.subscriptions.list_async({"customer": customer_id})
        )
        return [parse_subscription(_plain(s)) for s in found.data]

    async def update_subscription(
        self,
        subscription_id: str,
        *,
        item_id: str | None = None,
        plan_id: str | None = None,
        quantity: int | None = None,
        cancel_at_period_end: bool | None = None,
        idempotency_key: str,
    ) -> Subscription:
        """Change plan or quantity (Stripe prorates by default) or the cancellation at period end."""
        params: dict[str, Any] = {"expand": ["latest_invoice"]}
        if plan_id is not None or quantity is not None:
            item: dict[str, Any] = {"id": item_id}
            if plan_id is not None:
                item["plan"] = plan_id
            if quantity is not None:
                item["quantity"] = quantity
            params["items"] = [item]
        if cancel_at_period_end is not None:
            params["cancel_at_period_end"] = cancel_at_period_end
        updated = await self._call(
            "changing the subscription",
            self._client.v1.subscriptions.update_async(
                subscription_id,
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            ),
        )
        return parse_subscription(_plain(updated))

    # invoices

    async def recent_invoices(self, customer_id: str, limit: int = 20) -> list[Invoice]:
        found = await self._call(
            "listing the invoices", self._client.v1.invoices.list_async({"customer": customer_id, "limit": limit})
        )
        return [parse_invoice(_plain(i)) for i in found.data]

    async def pay_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        paid = await self._call(
            "paying the invoice",
            self._client.v1.invoices.pay_async(invoice_id, options={"idempotency_key": idempotency_key}),
        )
        return parse_invoice(_plain(paid))

    async def create_invoice_item(
        self,
        *,
        customer_id: str,
        subscription_id: str | None,
        amount: int,
        currency: str,
        description: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> InvoiceItem:
        params: dict[str, Any] = {
            "customer": customer_id,
            "amount": amount,
            "currency": currency.lower(),
            "description": description,
            "metadata": metadata,
        }
        if subscription_id:
            params["subscription"] = subscription_id
        created = await self._call(
            "creating the invoice item",
            self._client.v1.invoice_items.create_async(params, {"idempotency_key": idempotency_key}),  # type: ignore[arg-type]
        )
        data = _plain(created)
        return InvoiceItem(
            str(data["id"]), int(data["amount"]), str(data["currency"]).upper(), _metadata(data["metadata"])
        )

    async def find_invoice_item(self, customer_id: str, *, metadata_key: str, value: str) -> InvoiceItem | None:
        """An invoice item of the customer carrying ``metadata[metadata_key] == value`` (among the latest 100)."""
        found = await self._call(
            "listing the invoice items",
            self._client.v1.invoice_items.list_async({"customer": customer_id, "limit": 100}),
        )
        for raw in found.data:
            data = _plain(raw)
            if _metadata(data.get("metadata")).get(metadata_key) == value:
                return InvoiceItem(
                    str(data["id"]), int(data["amount"]), str(data["currency"]).upper(), _metadata(data["metadata"])
                )
        return None


def verify_webhook(payload: bytes, signature: str | None, secret: str, *, tolerance: int = 300) -> WebhookEvent:
    """The event in ``payload`` if ``signature`` (the ``Stripe-Signature`` header) proves Stripe sent it with
    ``secret`` less than ``tolerance`` seconds ago; :class:`InvalidWebhookSignature` otherwise."""
    if not secret:
        raise InvalidWebhookSignature("No webhook secret is configured (FEALTY_STRIPE_WEBHOOK_SECRET).")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhookSignature(f"The Stripe-Signature does not verify: {exc.user_message or exc}") from None
    except UnicodeDecodeError:
        raise InvalidWebhookSignature("The webhook body is not UTF-8.") from None
    try:
        data = json.loads(payload)
        return WebhookEvent(
            id=str(data["id"]),
            type=str(data["type"]),
            created=_time(data.get("created")) or datetime.now(UTC),
            object=dict(data["data"]["object"]),
        )
    except (ValueError, KeyError, TypeError):
        raise InvalidWebhookSignature("The webhook body is not a Stripe event.") from None
