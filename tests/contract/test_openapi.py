"""The OpenAPI schema is a contract (core.http.openapi): every route, core's and the plugins', walked from the live
app, so a route added tomorrow is held to it without its author doing anything.

* every operation has an operation id and tags, and lists its error statuses as problem documents;
* every query parameter is declared as the input gate enforces it (``limit`` 1-500, ``cursor``, RFC 3339 times);
* every JSON body is declared as the strict decoder decodes it (unknown fields refused);
* an unsupported method is a 405 with ``Allow``; ``OPTIONS`` lists every method of the resource.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar

from core.app import create_app
from core.http.openapi import PROBLEM_MEDIA_TYPE, http_handlers, served_schema
from core.plugin.manager import PluginManager
from core.testing import AppClient, MakeTenant, registering, settings_for_tests
from plugins import fuel_station, hotel, microfinance, utility

_plugins = registering(hotel.PLUGIN, fuel_station.PLUGIN, utility.PLUGIN, microfinance.PLUGIN)


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    return _plugins


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Litestar:
    """The app with every plugin's routes (never started: its routes and schema are all these tests read)."""
    path: Path = tmp_path_factory.mktemp("openapi") / "unused.db"
    return create_app(settings_for_tests(f"sqlite+aiosqlite:///{path}"), plugins=_plugins())


@pytest.fixture(scope="module")
def schema(app: Litestar) -> dict[str, Any]:
    return served_schema(app)


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) of every /v1 operation the schema describes."""
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        if path.startswith("/v1/")
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    ]


def test_every_route_has_an_operation_id_and_tags(app: Litestar) -> None:
    missing = [
        f"{method} {route.path}"
        for route, method, handler in http_handlers(app)
        if not handler.operation_id or not handler.resolve_tags()
    ]
    assert missing == [], "give these routes an operation_id and tags (a controller's `tags` will do)"


def test_every_operation_lists_its_problems(app: Litestar, schema: dict[str, Any]) -> None:
    handlers = list(http_handlers(app))
    assert len(handlers) > 100
    for route, method, handler in handlers:
        label = f"{method} {route.path}"
        op = schema["paths"][route.path_format][method.lower()]
        errors = {int(status): r for status, r in op["responses"].items() if int(status) >= 400}
        assert 422 in errors, label
        for status, response in errors.items():
            assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], f"{label} {status}"
            assert response["content"][PROBLEM_MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}
        auth = handler.opt.get("auth", "tenant")
        if auth == "none":
            assert 401 not in errors, label  # Stripe's signed calls, an unsubscribe link: no API key
        else:
            assert 401 in errors and "WWW-Authenticate" in errors[401]["headers"], label
        if auth == "tenant":
            assert {403, 429} <= set(errors), label
            assert errors[429]["headers"]["Retry-After"]["required"] is True
        if route.path_parameters or handler.opt.get("plugin"):
            assert 404 in errors, label
        if method not in ("GET", "HEAD"):
            assert 409 in errors, label  # a reused Idempotency-Key
        if "requestBody" in op:
            assert {400, 415} <= set(errors), label
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])


def test_query_parameters_declare_what_is_enforced(schema: dict[str, Any]) -> None:
    seen = {"limit": 0, "cursor": 0, "date-time": 0}
    for path, method, op in _operations(schema):
        for parameter in op.get("parameters", ()):
            if parameter["in"] != "query":
                continue
            declared = parameter["schema"]
            label = f"{method.upper()} {path} ?{parameter['name']}"
            assert {"type": "null"} not in declared.get("anyOf", []), label  # a query string has no null
            if parameter["name"] == "limit":
                seen["limit"] += 1
                # 1 to 500 unless the route sets its own bounds (a report's rows: 1 to 1,000)
                assert (declared["type"], declared["minimum"]) == ("integer", 1), label
                assert declared["maximum"] in (500, 1000), label
            if parameter["name"] == "cursor":
                seen["cursor"] += 1
                assert declared["pattern"] == "^[A-Za-z0-9_-]+$", label
            if declared.get("format") == "date-time":
                seen["date-time"] += 1
    assert all(seen.values()), seen


def test_bodies_declare_what_the_strict_decoder_enforces(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    enrol = schema["paths"]["/v1/members"]["post"]["requestBody"]
    assert enrol["required"] is True
    ref = enrol["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    member = components[ref]
    assert member["additionalProperties"] is False
    assert member["properties"]["external_id"] == {"type": "string", "minLength": 1, "maxLength": 128}
    rule = schema["paths"]["/v1/earning-rules"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" in rule or "anyOf" in rule or "oneOf" in rule
    text = repr(components)
    assert "'format': 'decimal'" not in text  # a decimal is declared as a number or a decimal string


async def test_a_date_time_query_parameter_takes_only_rfc_3339(
    client: AppClient, make_tenant: MakeTenant, schema: dict[str, Any]
) -> None:
    tenant = await make_tenant()
    for value in ("0.5", "1700000000", "2026-01-01", "2026-01-01T00:00:00", "null"):
        response = await tenant.get("/v1/members", params={"created_after": value})
        assert response.status_code == 422, f"{value}: {response.text}"
        assert response.json()["field"] == "created_after"
    ok = await tenant.get("/v1/members", params={"created_after": "2026-01-01T00:00:00+01:00"})
    assert ok.status_code == 200, ok.text


async def test_query_values_are_their_declared_type(client: AppClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    for value in ("null", "", "maybe"):
        response = await tenant.get("/v1/rewards", params={"active": value})
        assert response.status_code == 422, f"{value}: {response.text}"
        assert response.json()["field"] == "active"
    for limit in ("0", "501", "ten"):
        response = await tenant.get("/v1/members", params={"limit": limit})
        assert (response.status_code, response.json()["field"]) == (422, "limit"), limit
    assert (await tenant.get("/v1/rewards", params={"active": "true"})).status_code == 200


async def test_an_unsupported_method_is_a_405_with_allow(client: AppClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    member = await tenant.enrol()
    for method, path, allowed in (
        ("DELETE", "/v1/members", {"GET", "POST", "OPTIONS"}),
        ("TRACE", f"/v1/members/{member['id']}", {"GET", "PATCH", "OPTIONS"}),
        ("PUT", "/v1/program", {"GET", "PATCH", "OPTIONS"}),
    ):
        response = await tenant.client.request(method, path, headers=tenant.headers)
        assert response.status_code == 405, f"{method} {path}"
        assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
        assert response.json()["type"].endswith("/method-not-allowed")
        assert set(re.split(r",\s*", response.headers["allow"])) == allowed, f"{method} {path}"
        options = await client.options(path)  # no credentials: a CORS preflight has none
        assert options.status_code == 204
        assert set(re.split(r",\s*", options.headers["allow"])) == allowed, path


async def test_the_served_schema_is_the_contract(client: AppClient) -> None:
    served = (await client.get("/schema/openapi.json")).json()
    assert served["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail"]
    assert "422" in served["paths"]["/v1/members"]["get"]["responses"]
    assert served == served_schema(client.app)


def test_the_main_operations_have_valid_examples(schema: dict[str, Any]) -> None:
    """Examples on the main operations, each valid against its own body schema (the fuzz also sends them)."""
    from jsonschema import Draft202012Validator

    found = {}
    for path, method, op in _operations(schema):
        content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "example" in content:
            found[op["operationId"]] = f"{method.upper()} {path}"
            root = {**content["schema"], "components": schema["components"]}
            errors = [e.message for e in Draft202012Validator(root).iter_errors(content["example"])]
            assert errors == [], f"{op['operationId']}: {errors}"
    assert {"createTenant", "enrolMember", "adjustPoints", "sendEvent", "createRedemption"} <= set(found)
