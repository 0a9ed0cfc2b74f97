"""The error vocabulary. Every failure a client can see is a :class:`FealtyError` with a stable problem ``type``.

Errors are rendered as RFC 9457 problem documents by :mod:`core.http.problems`. The ``type`` URI never changes once
published; ``detail`` is for humans; ``field`` names the offending input (a JSON path like ``member.external_id``).
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://fealty.dev/problems/"


class FealtyError(Exception):
    """Base of every client-visible error."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if instance:
            doc["instance"] = instance
        if self.field:
            doc["field"] = self.field
        if self.errors:
            doc["errors"] = self.errors
        doc.update(self.extra)
        return doc


class ValidationFailed(FealtyError):
    status = 422
    slug = "validation-error"
    title = "The request is not valid"


class InconsistentJudgements(ValidationFailed):
    """An AHP judgement matrix whose consistency ratio is 0.10 or more (the CR and the judgement that disagrees most
    with the weights ride along as ``consistency_ratio`` and ``judgement``)."""

    slug = "inconsistent-judgements"
    title = "The pairwise judgements are too inconsistent"


class MalformedRequest(FealtyError):
    status = 400
    slug = "malformed-request"
    title = "The request body is not valid JSON"


class JsonTooDeep(FealtyError):
    status = 400
    slug = "json-too-deep"
    title = "The JSON body is nested too deeply"


class UnsupportedMediaType(FealtyError):
    status = 415
    slug = "unsupported-media-type"
    title = "The request body must be JSON"


class PayloadTooLarge(FealtyError):
    status = 413
    slug = "payload-too-large"
    title = "The request body is too large"


class AuthenticationRequired(FealtyError):
    status = 401
    slug = "unauthenticated"
    title = "A valid API key is required"

    def __init__(self, detail: str = "Send a valid API key as 'Authorization: Bearer <key>'.", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="fealty"'})
        super().__init__(detail, **kw)


class PermissionDenied(FealtyError):
    status = 403
    slug = "forbidden"
    title = "The API key lacks the required scope"


class NotFound(FealtyError):
    status = 404
    slug = "not-found"
    title = "No such resource"


class Conflict(FealtyError):
    status = 409
    slug = "conflict"
    title = "The request conflicts with the current state"


class AlreadyExists(Conflict):
    slug = "already-exists"
    title = "A resource with this identity already exists"


class SecretNotStandard(Conflict):
    """A webhook endpoint asked to sign with Standard Webhooks while its secret predates them: rotate it."""

    slug = "webhook-secret-not-standard"
    title = "The endpoint's secret cannot sign Standard Webhooks"


class IdempotencyKeyReused(Conflict):
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used with a different request"


class InsufficientPoints(Conflict):
    slug = "insufficient-points"
    title = "The member does not have enough points"


class RewardUnavailable(Conflict):
    slug = "reward-unavailable"
    title = "The reward cannot be redeemed now"


class NotEligible(Conflict):
    slug = "not-eligible"
    title = "The member is not eligible for this reward"


class LimitReached(Conflict):
    slug = "redemption-limit-reached"
    title = "The member has reached this reward's redemption limit"


class OutOfStock(Conflict):
    slug = "out-of-stock"
    title = "The reward is out of stock"


class RewardNotFulfilled(Conflict):
    slug = "reward-not-fulfilled"
    title = "No enabled plugin fulfils this kind of reward"


class RedemptionClosed(Conflict):
    slug = "redemption-closed"
    title = "The voucher is no longer issued (used, cancelled or expired)"


class TenantSuspended(FealtyError):
    status = 402
    slug = "tenant-suspended"
    title = "The tenant's account is suspended"


class SubscriptionEnded(FealtyError):
    status = 402
    slug = "subscription-ended"
    title = "The tenant's subscription has ended"


class PaymentFailed(FealtyError):
    status = 402
    slug = "payment-failed"
    title = "The payment was declined"


class PlanLimitReached(FealtyError):
    status = 403
    slug = "plan-limit-reached"
    title = "The tenant's plan does not allow more"


class BillingDisabled(Conflict):
    slug = "billing-disabled"
    title = "Billing is not configured on this deployment"


class InvalidWebhookSignature(FealtyError):
    status = 400
    slug = "invalid-webhook-signature"
    title = "The webhook signature is missing or does not verify"


class TenantDisabled(FealtyError):
    status = 403
    slug = "tenant-disabled"
    title = "The tenant has been disabled by the platform operator"


class RateLimited(FealtyError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class MethodNotAllowed(FealtyError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class ServiceUnavailable(FealtyError):
    status = 503
    slug = "service-unavailable"
    title = "A dependency is unavailable"


def invalid(message: str, prefix: str = "") -> ValidationFailed:
    """A msgspec validation message (``Expected `int`, got `str` - at `$.a[0].b```, ``Object contains unknown
    field `x```) as a 422 naming the offending field, under ``prefix``."""
    head, _, where = message.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    named = head.split("field `", 1)[1].split("`", 1)[0] if "field `" in head else ""
    field = ".".join(p for p in (prefix, path, named) if p).replace(".[", "[")
    return ValidationFailed(f"{field}: {head}" if field else head, field=field or None)


class BillingUnavailable(ServiceUnavailable):
    slug = "billing-unavailable"
    title = "The payment provider is unavailable"


class BillingProviderError(FealtyError):
    status = 502
    slug = "billing-provider-error"
    title = "The payment provider refused the request"


class MissingTenantContext(RuntimeError):
    """A tenant-owned table was queried with no tenant in context: a programming error, never a client error."""


class CrossTenantWrite(RuntimeError):
    """A row carrying another tenant's id was about to be written: a programming error."""


class InvalidLink(FealtyError):
    """A signed link (unsubscribe) that was altered, made for another purpose, or never made by this platform."""

    status = 400
    slug = "invalid-link"
    title = "The link is not valid"


class LinkExpired(FealtyError):
    status = 410
    slug = "link-expired"
    title = "The link has expired"
