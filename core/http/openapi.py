"""The OpenAPI schema as a contract: what every ``/v1`` route can answer and accept, declared in one place.

Litestar describes each route from its signature; this module completes that description, app-wide, from the same
rules the API enforces, so that a route author declares nothing beyond the route itself:

* **Problems.** Every operation lists each error status it can answer, as an RFC 9457 problem document
  (``application/problem+json``, the ``Problem`` component), worked out from the route: 401 unless it is
  anonymous; 403, 429 (and 402 for a write a suspended tenant may not make) for tenant routes; 404 for a route with
  a path parameter, a query parameter or a plugin's; 400, 409 (a reused ``Idempotency-Key``) and 413 for writes;
  415 for a JSON body; 422 for every route. A route that can answer another status says so in its ``opt``:
  ``opt={"problems": (409, 503)}``.
* **Query parameters** are declared with the type the input gate (:mod:`core.http.inputs`) enforces: the route's
  msgspec constraints, or the API-wide rule of a well-known name (``limit`` 1-500, ``cursor``); a date-time is an
  RFC 3339 string.
* **Request bodies** are declared with msgspec's own JSON schema of the type the strict decoder decodes into:
  unknown fields refused (``additionalProperties: false``), lengths, bounds and patterns as declared, and a decimal
  as a number or a decimal string, within the range and decimal places of its ``decimal_bounds(...)``
  (:mod:`core.decimals`).

The result is what ``/schema/openapi.json`` serves (:class:`ContractJsonRenderPlugin`) and what
:func:`served_schema` returns. ``tests/contract/test_openapi.py`` holds every route to it with schemathesis.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import BodyKwarg
from litestar.routes import HTTPRoute

from core.decimals import DECIMAL_PATTERN
from core.errors import PROBLEM_BASE
from core.http.inputs import declared_type, query_name, query_type
from core.http.problems import PROBLEM_MEDIA_TYPE
from core.idempotency.service import MAX_KEY_LENGTH

PROBLEM_REF = "#/components/schemas/Problem"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: RFC 9457 problem details, as :meth:`core.errors.FealtyError.to_problem` writes them (extension members allowed).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "An RFC 9457 problem document. `type` is stable (a URI under " + PROBLEM_BASE + "); `detail` is "
    "for humans; `field` names the offending input as a JSON path.",
    "properties": {
        "type": {"type": "string", "format": "uri", "examples": [PROBLEM_BASE + "validation-error"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": "string", "description": "The offending input: a JSON path, or a parameter's name."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "detail": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
}

#: What each status means here, and the problem types it carries (docs/api.md lists them all).
STATUS_MEANINGS: dict[int, str] = {
    400: "The body is not JSON (`malformed-request`) or nests too deeply (`json-too-deep`).",
    401: "No valid API key (`unauthenticated`).",
    402: "The tenant's writes are suspended by billing (`tenant-suspended`, `subscription-ended`).",
    403: "The key lacks the scope (`forbidden`), the tenant is disabled (`tenant-disabled`) or its plan does not "
    "allow more (`plan-limit-reached`).",
    404: "No such resource for this tenant (`not-found`), including a plugin's route the tenant has not enabled.",
    409: "A conflict with the current state (`conflict`, `already-exists`, ...) or an Idempotency-Key reused with "
    "another request (`idempotency-key-reused`).",
    413: "The body is larger than the limit (`payload-too-large`).",
    415: "The body is not JSON (`unsupported-media-type`).",
    422: "The input is not valid (`validation-error`); `field` names the offending input.",
    429: "Too many requests (`rate-limited`); `Retry-After` says when to retry.",
    502: "The payment provider refused the request (`billing-provider-error`).",
    503: "A dependency is unavailable (`service-unavailable`, `billing-unavailable`).",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    429: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
}

#: A decimal as the API takes it: a JSON number, or a string of digits (exact, as money should be sent). A field
#: declared with ``decimal_bounds(...)`` (core.decimals) states its own range instead.
DECIMAL_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": DECIMAL_PATTERN}]}


#: Every write takes an ``Idempotency-Key`` (core.idempotency): 1 to MAX_KEY_LENGTH printable ASCII characters.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retry the request with the same key as often as needed: it is applied once, and the first "
    "answer is replayed (`Idempotent-Replayed: true`) for 24 hours at least; the same key with another request is "
    "a 409 `idempotency-key-reused`.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": "^[!-~]([ -~]*[!-~])?$",
        "examples": ["welcome-G-1001"],
    },
}


#: Request examples of the main operations (by operationId): what the README's tour and docs/events.md send.
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "createTenant": {
        "name": "Grand Hotels",
        "slug": "grand",
        "timezone": "Europe/London",
        "currency": "GBP",
        "country": "GB",
    },
    "enrolMember": {
        "external_id": "G-1001",
        "name": "Ada",
        "email": "Ada@Example.com",
        "phone": "07911 123456",
        "consents": [{"channel": "email", "purpose": "marketing", "granted": True, "source": "web"}],
    },
    "adjustPoints": {"points": 500, "reason": "welcome bonus"},
    "sendEvent": {
        "type": "purchase",
        "event_id": "till-7-0001",
        "member": {"external_id": "cust-42"},
        "occurred_at": "2026-03-01T09:30:00Z",
        "amount": "12.50",
        "currency": "GBP",
        "quantity": "2",
        "unit": "cup",
        "attributes": {"category": "coffee"},
    },
    "createEarningRule": {
        "name": "10 points per GBP",
        "kind": "per_amount",
        "points": "10",
        "per": "1",
        "rounding": "floor",
        "event_types": ["purchase"],
        "priority": 10,
    },
    "createRedemption": {
        "member_id": "01934f6e-7b3c-7d2a-9f1e-2b3c4d5e6f70",
        "reward_id": "01934f6e-7b3c-7d2a-9f1e-2b3c4d5e6f71",
    },
}


def http_handlers(app: Litestar) -> Iterator[tuple[HTTPRoute, str, HTTPRouteHandler]]:
    """Every ``/v1`` (route, method, handler) of ``app`` that the schema describes."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1/"):
            continue
        for handler in route.route_handlers:
            if handler.include_in_schema:
                for method in sorted(handler.http_methods):
                    yield route, method, handler


def _json_body(handler: HTTPRouteHandler) -> Any | None:
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return None
    kwarg = data.kwarg_definition
    if isinstance(kwarg, BodyKwarg) and kwarg.media_type != RequestEncodingType.JSON:
        return None
    return data


def problem_statuses(route: HTTPRoute, method: str, handler: HTTPRouteHandler) -> set[int]:
    """The error statuses ``method`` on ``route`` can answer (see the module's docstring)."""
    opt = handler.opt
    auth = opt.get("auth", "tenant")
    writes = method not in SAFE_METHODS
    statuses = {422}
    if auth != "none":
        statuses.add(401)
    if auth == "tenant":
        statuses |= {403, 429}
        if writes and opt.get("allowed_when_suspended") is not True:
            statuses.add(402)
    queries = [n for n, f in handler.parsed_fn_signature.parameters.items() if query_name(n, f.kwarg_definition)]
    if route.path_parameters or opt.get("plugin") or queries:
        statuses.add(404)
    if writes:
        statuses |= {400, 409, 413}
    if _json_body(handler) is not None:
        statuses |= {400, 415}
    statuses.update(opt.get("problems", ()))
    return statuses


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": STATUS_MEANINGS.get(status, "An error, as a problem document."),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }
    if status in _HEADERS:
        response["headers"] = copy.deepcopy(_HEADERS[status])
    return response


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without its ``null`` branch: a query string has no null, only absence."""
    for key in ("anyOf", "oneOf"):
        if key in schema:
            kept = [s for s in schema[key] if s != {"type": "null"}]
            rest = {k: v for k, v in schema.items() if k != key}
            return rest | kept[0] if len(kept) == 1 else rest | {key: kept}
    return schema


def _declare_parameters(operation: dict[str, Any], handler: HTTPRouteHandler) -> None:
    by_alias = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        alias = query_name(name, field.kwarg_definition)
        if alias is not None:
            by_alias[alias] = field
    for parameter in operation.get("parameters", ()):
        found = by_alias.get(parameter["name"]) if parameter.get("in") == "query" else None
        if found is None:
            continue
        schema = _without_null(msgspec.json.schema(query_type(parameter["name"], found.raw)))
        old = parameter.get("schema", {})
        if "default" in old:
            schema["default"] = old["default"]
        description = schema.pop("description", None)
        if description and not parameter.get("description"):
            parameter["description"] = description
        parameter["schema"] = schema


def _decimals_as_taken(node: Any) -> Any:
    """msgspec writes a ``Decimal`` as a string of format ``decimal``; the decoder also takes a JSON number, within
    the bounds of the field's ``decimal_bounds(...)`` when it has them (their ``anyOf``). (And an array of anything
    gets ``items: {}``, which client generators insist on.)"""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "decimal":
            rest = {k: v for k, v in node.items() if k not in ("type", "format")}
            return rest if "anyOf" in rest else rest | DECIMAL_SCHEMA
        if node.get("type") == "array" and "items" not in node and "prefixItems" not in node:
            node = {**node, "items": {}}
        return {k: _decimals_as_taken(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decimals_as_taken(v) for v in node]
    return node


_REF_PREFIX = "#/components/schemas/"


def _with_refs(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            return {**node, "$ref": _REF_PREFIX + names.get(ref[len(_REF_PREFIX) :], ref[len(_REF_PREFIX) :])}
        return {k: _with_refs(v, names) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_refs(v, names) for v in node]
    return node


def _referenced(schema: dict[str, Any]) -> set[str]:
    """The components reachable from the paths (a body's schema the framework generated and msgspec's replaced is
    not)."""
    components = schema["components"]["schemas"]
    found: set[str] = set()
    stack: list[Any] = [schema["paths"]]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
                name = ref[len(_REF_PREFIX) :]
                if name not in found and name in components:
                    found.add(name)
                    stack.append(components[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _plain_names(schema: dict[str, Any]) -> dict[str, Any]:
    """Only the components in use, named by identifiers, each its schema's title too: a generator names a model after
    its title, and two structs of one name in two modules (``DecisionIn``) would otherwise be one model."""
    used = _referenced(schema) | {"Problem"}
    schema["components"]["schemas"] = {k: v for k, v in schema["components"]["schemas"].items() if k in used}
    components = schema["components"]["schemas"]
    names: dict[str, str] = {}
    for name in components:
        plain = base = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "Schema"
        counter = 1
        while plain in names.values():
            counter += 1
            plain = f"{base}{counter}"
        names[name] = plain
    schema = _with_refs(schema, names)
    schema["components"]["schemas"] = {
        names[name]: {**value, "title": names[name]} if isinstance(value, dict) and "$ref" not in value else value
        for name, value in schema["components"]["schemas"].items()
    }
    return schema


def contract(app: Litestar, generated: dict[str, Any]) -> dict[str, Any]:
    """``generated`` (Litestar's schema) completed into the contract: problems, parameters and bodies declared."""
    schema = copy.deepcopy(generated)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    bodies: list[tuple[dict[str, Any], Any, bool]] = []
    for route, method, handler in http_handlers(app):
        operation = schema["paths"][route.path_format][method.lower()]
        statuses = problem_statuses(route, method, handler)
        # The framework's own error entries (its 400 "validation exception") are replaced by the problems.
        responses = {k: v for k, v in operation.get("responses", {}).items() if int(k) < 400}
        operation["responses"] = responses | {str(s): _problem_response(s) for s in sorted(statuses)}
        _declare_parameters(operation, handler)
        if method not in SAFE_METHODS and handler.opt.get("auth", "tenant") != "none":
            operation.setdefault("parameters", []).append(copy.deepcopy(IDEMPOTENCY_KEY_PARAMETER))
        data = _json_body(handler)
        if data is not None and "requestBody" in operation:
            required = not data.has_default and not data.is_optional
            bodies.append((operation, declared_type(data.raw), required))
    if bodies:
        refs, defined = msgspec.json.schema_components(
            [body for _, body, _ in bodies], ref_template="#/components/schemas/{name}"
        )
        components.update(_decimals_as_taken(defined))
        for (operation, _, required), ref in zip(bodies, refs, strict=True):
            body = operation["requestBody"]
            body["content"] = {"application/json": {"schema": _decimals_as_taken(ref)}}
            body["required"] = required
            example = REQUEST_EXAMPLES.get(operation.get("operationId", ""))
            if example is not None:
                body["content"]["application/json"]["example"] = example
    return _plain_names(schema)


_STATE_KEY = "fealty.openapi_contract"


def served_schema(app: Litestar) -> dict[str, Any]:
    """The contract of ``app`` as ``/schema/openapi.json`` serves it (built once per app, kept in its state)."""
    found: dict[str, Any] | None = app.state.get(_STATE_KEY)
    if found is None:
        found = app.state[_STATE_KEY] = contract(app, app.openapi_schema.to_schema())
    return found


class ContractJsonRenderPlugin(JsonRenderPlugin):
    """Serves :func:`served_schema` at ``/schema/openapi.json``."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self.render_json(request, served_schema(request.app))


__all__ = ["PROBLEM_MEDIA_TYPE", "ContractJsonRenderPlugin", "contract", "http_handlers", "served_schema"]
