"""schemathesis hooks of the fuzz (loaded with ``SCHEMATHESIS_HOOKS=tests.contract.fuzz_hooks``; see docs/api.md).

Schema-valid input must be accepted. schemathesis' own check of that (``positive_data_acceptance``) is replaced by
:func:`schema_valid_input_is_accepted`, which is as strict except for rules no JSON schema can express, each listed
below with the operation, the field the 422 names and why. Anything else refused (a bound, a format, a pattern the
schema does not declare) is a finding.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import schemathesis

#: Rules that depend on stored data, on reference databases or on several fields at once, which no schema can say:
#: ``"METHOD /path"`` (``"*"``: every operation) -> regular expressions on the problem's ``field`` (``""``: none).
RULES_NO_SCHEMA_CAN_SAY: dict[str, tuple[str, ...]] = {
    # Only a next_cursor the API returned is a cursor (its alphabet is declared, not which strings are cursors).
    "*": ("cursor",),
    # Looked up in reference databases: IANA time zones, CLDR locales, ISO 4217 currencies, phone and email syntax;
    # a birthday is not in the future (today's date, which a schema cannot name).
    "POST /v1/members": ("timezone", "locale", "email", "phone", "birthday"),
    "PATCH /v1/members/{member_id}": ("timezone", "locale", "email", "phone", "birthday"),
    "GET /v1/members": ("email", "phone"),
    # Plugins are those installed in this deployment.
    "POST /v1/platform/tenants": ("timezone", "currency", "country", "plugins"),
    # A price has at most the decimals of the plan's currency (JPY none, GBP 2, BHD 3): within the declared 4.
    "POST /v1/platform/plans": ("currency", "block_size", "monthly_price", r"overage_price_per_\w+"),
    "PATCH /v1/care/settings": ("email_from", "email_reply_to", "sms_sender", "sms_sender_id"),
    "POST /v1/care/suppressions": ("address",),
    "GET /v1/care/suppressions/{channel}/{address}": ("address",),
    "DELETE /v1/care/suppressions/{channel}/{address}": ("address",),
    "POST /v1/care/opt-outs": ("address",),
    "POST /v1/care/calendar/import": ("country",),
    # Names the tenant's own data defines: event types, tiers, care triggers, webhook event types.
    # ... and an event's occurred_at is not in the future (now, which a schema cannot name).
    "POST /v1/events": ("type", "occurred_at"),
    "POST /v1/events/simulate": ("type", "occurred_at"),
    "POST /v1/events/batch": (r"events\[\d+\]\.type", "events"),
    "PUT /v1/members/{member_id}/tier": ("tier", "until"),
    "POST /v1/care/rules": ("trigger",),
    # Factors named in the groups must be leaves of the stored model.
    "POST /v1/measurement/models/{model_id}/satisfaction-index": ("model_id", r"groups.*"),
    "POST /v1/measurement/models/{model_id}/loyalty-index": ("model_id",),
    "POST /v1/hotel/quotes/points-stay": ("nights", "category"),
    "POST /v1/exports": ("kind",),  # a report's name, from the reports' registry
    # A per_block plan needs block_size; an import is the CSV itself or where it is in S3, one of the two.
    "PATCH /v1/platform/plans/{code}": ("currency", "block_size", "monthly_price", r"overage_price_per_\w+"),
    "POST /v1/imports": ("csv", "s3"),
    # A plan of the platform's catalogue.
    "PATCH /v1/platform/tenants/{tenant_id}": ("plan",),
    # One field given with, or instead of, another; an ordered window; a time that must be in the future.
    "PATCH /v1/program": (r"expiry_policy\..*", "timezone", "currency", "country", "locale", "plugins"),
    # A trigger is core's or one registered by a plugin the tenant enabled: the set differs per tenant.
    "POST /v1/care/templates": ("default_locale", "trigger"),
    "PATCH /v1/care/templates/{template_id}": ("default_locale",),
    "PATCH /v1/billing/subscription": ("plan",),
    "PATCH /v1/platform/tenants/{tenant_id}/subscription": ("plan",),
    "PATCH /v1/rewards/{reward_id}": ("add_stock", "valid_until"),
    "POST /v1/rewards": ("valid_until",),
    "POST /v1/campaigns": ("ends_at", r"rules.*"),
    "PATCH /v1/campaigns/{campaign_id}": ("ends_at",),
    "GET /v1/exports/ledger": ("created_after",),
    "GET /v1/exports/members": ("created_after",),
    # A rolling qualification window and a validity of kind "days" need their days.
    "POST /v1/tiers": (r"validity\.days", r"qualification\.window\.days"),
    "PATCH /v1/tiers/{tier_id}": (r"validity\.days", r"qualification\.window\.days"),
    # A fill-up's litres are at most the tenant's max_valid_litres (a setting; the static 100,000 is declared).
    "POST /v1/fuel/redemptions/{redemption_id}/apply": ("litres",),
    # Rule and model structure: conditions that must name known fields, factor trees that must be complete.
    "POST /v1/segments": ("conditions",),
    "POST /v1/measurement/models": ("factors", "judgements", "children"),
    "PATCH /v1/measurement/models/{model_id}": ("factors", "judgements", "children"),
    # A credit or a debit, never zero; a rule's rate; a stay the tenant's settings price.
    "POST /v1/members/{member_id}/points/adjust": ("points", "expires_at", "available_at"),  # in the future
    "POST /v1/earning-rules": ("points", r"conditions.*"),
    # The stored rule with the changes, validated whole: which fields a kind takes (a currency only per_amount...),
    # an ordered window, a rate, depend on what is stored. Unknown fields are declared refused like everywhere.
    "PATCH /v1/earning-rules/{rule_id}": (
        "points",
        "per",
        "currency",
        "whole_units",
        "applies_to",
        "valid_from",
        "valid_until",
        "kind",
        "event_types",
        r"conditions.*",
    ),
    # http:// is taken for loopback receivers only when FEALTY_WEBHOOK_ALLOW_LOOPBACK is on (a deployment setting).
    "POST /v1/webhook-endpoints": ("event_types", "url"),
    "PATCH /v1/webhook-endpoints/{endpoint_id}": ("event_types", "url"),
    # Utility: a rating only for SMEs and from the tenant's table, PSR needs from the register's and the tenant's
    # categories and only with consent; feeders or areas; a planned window in the future, an unplanned start in the
    # past, an ETR after the start, a restoration between the start and now; the tenant's weather categories.
    "POST /v1/utility/accounts": ("credit_rating", r"psr\..*"),
    "PATCH /v1/utility/accounts/{account_id}": ("credit_rating", r"psr\..*"),
    "POST /v1/utility/outages": ("feeders", "category", "starts_at", "ends_at", "etr"),
    "PATCH /v1/utility/outages/{outage_id}": ("category", "starts_at", "ends_at", "etr"),
    "POST /v1/utility/outages/{outage_id}/restore": ("restored_at",),
    "POST /v1/utility/outages/{outage_id}/accounts/{account_id}/restore": ("restored_at",),
    "POST /v1/utility/outages/{outage_id}/claims": ("out_from", "restored_at"),
    "POST /v1/utility/peak-events": ("starts_at", "ends_at", "feeders"),
    # The body is one of three SES/SNS notification shapes, read by hand (the schema does not describe it).
    "POST /v1/care/feedback": ("", r".*"),
    # Cases: a member or a contact; a category, event, redemption or message the tenant has; not in the future;
    # a goodwill gesture is points or a reward (and needs the case's member); business hours end after they start.
    "POST /v1/cases": ("member_id", "category", "received_at", r"related\..*"),
    "POST /v1/cases/{case_id}/classify": ("category",),
    "POST /v1/cases/{case_id}/resolve": ("goodwill",),
    "POST /v1/case-categories": (r"business_hours\.end",),
    "PATCH /v1/case-categories/{category_id}": (r"business_hours\.end",),
    # Replies: an address, member or message; a phone number or email address; text not only spaces; not later.
    "POST /v1/care/replies": ("address", "text", "received_at", "message_id"),
    # Surveys: codes unique across the factor tree, every factor with questions, levels best first; an event
    # trigger names its type; invitations name one audience; answers name the survey's questions and levels.
    "POST /v1/surveys": (r"factors.*", "levels", r"invite_on.*"),
    "PATCH /v1/surveys/{survey_id}": (r"factors.*", "levels", r"invite_on.*"),
    "POST /v1/surveys/{survey_id}/invitations": ("member_ids", "segment", "tier"),
    "POST /v1/surveys/{survey_id}/responses": (r"answers.*", "nps", "comment", "invitation_id", "member_id"),
}

#: Refusals that are not about a field: a signature or a signed link no generator can forge.
SIGNED = {
    "POST /v1/billing/stripe/webhook": "invalid-webhook-signature",
    "GET /v1/care/unsubscribe": "invalid-link",
    "POST /v1/care/unsubscribe": "invalid-link",
    "GET /v1/reports/dashboard/shared": "invalid-link",
    "GET /v1/surveys/respond": "invalid-link",
    "POST /v1/surveys/respond": "invalid-link",
}

#: API-wide rules documented in docs/api.md that the schema does not repeat on every string.
DOCUMENTED_EVERYWHERE = (
    # No string may contain U+0000 (PostgreSQL cannot store it): refused with the field named.
    re.compile(r"must not contain the NUL character"),
)

ACCEPTED = re.compile(r"^(2\d\d|3\d\d|401|403|404|409|429)$")


def _excused(label: str, status: int, problem: dict[str, Any]) -> bool:
    field = str(problem.get("field") or "")
    detail = str(problem.get("detail") or "")
    if str(problem.get("type", "")).endswith("/" + SIGNED.get(label, "-")):
        return True
    if status != 422:
        return False
    if any(rule.search(detail) for rule in DOCUMENTED_EVERYWHERE):
        return True
    patterns = (*RULES_NO_SCHEMA_CAN_SAY.get("*", ()), *RULES_NO_SCHEMA_CAN_SAY.get(label, ()))
    return any(re.fullmatch(p + r"([.\[].*)?", field) for p in patterns)


#: The fuzzing tenant and its key (test_fuzz.py): never suspended, disabled or revoked by the fuzz itself, which would
#: leave every operation after it a 401/403 (the platform's routes and GET /v1/api-keys hand their ids out).
_OWN = {os.environ.get("FEALTY_FUZZ_TENANT_ID"), os.environ.get("FEALTY_FUZZ_KEY_ID")} - {None}


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    parameters = case.path_parameters or {}
    for name in ("tenant_id", "key_id"):
        if str(parameters.get(name)) in _OWN:
            parameters[name] = str(uuid.uuid4())  # someone else's, or no one's: a 404


@schemathesis.check
def schema_valid_input_is_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if ACCEPTED.match(str(response.status_code)):
        return None
    label = f"{case.operation.method.upper()} {case.operation.path}"
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    if _excused(label, response.status_code, problem):
        return None
    raise AssertionError(
        f"Schema-valid input refused with {response.status_code}: {problem.get('detail')!r} "
        f"(field {problem.get('field')!r}). Declare the rule in the schema (a constraint on the type), or, if no "
        "schema can say it, list the field in tests/contract/fuzz_hooks.py with its reason."
    )
