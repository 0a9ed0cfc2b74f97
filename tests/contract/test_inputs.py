"""The input contract of every route, core's and the plugins': walked from the live app's route handlers, so a new
DTO, field or query parameter is covered the day it is added.

* Every datetime a request can carry (body field, at any depth, or query parameter) requires a UTC offset, and a
  naive one is answered with a 422 naming the field, on both databases.
* Every bounded query parameter refuses values out of its bounds with a 422 naming it, and the OpenAPI schema
  advertises the bounds.
* Every decimal a body can carry is declared as the input gate checks it: a field with ``decimal_bounds`` refuses
  values out of its range or with too many places (as a number or a string) with a 422 naming it, and the schema
  states that exact rule; any decimal refuses a string that is not digits (``"NaN"``).
* Every route's input checks (core.http.inputs) can be built, and every body is JSON.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import msgspec
import msgspec.inspect as mi
import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg

from core.app import create_app
from core.decimals import DECIMAL_PATTERN, DecimalRule, decimal_bounds, rule_of
from core.errors import ValidationFailed
from core.http.inputs import RouteInputs, decimal_checks, declared_type, decode_body, inputs_of, query_name
from core.http.openapi import served_schema
from core.plugin.manager import PluginManager
from core.testing import TEST_PLATFORM_KEY, AppClient, MakeTenant, registering, settings_for_tests
from core.validation import AwareDatetime
from plugins import fuel_station, hotel, microfinance, utility

NAIVE = "2030-01-01T00:00:00"
PLATFORM = {"Authorization": f"Bearer {TEST_PLATFORM_KEY}"}


_plugins = registering(hotel.PLUGIN, fuel_station.PLUGIN, utility.PLUGIN, microfinance.PLUGIN)


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    return _plugins


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Litestar:
    """The app with every plugin's routes (never started: its routes are all these tests read)."""
    path: Path = tmp_path_factory.mktemp("inputs") / "unused.db"
    return create_app(settings_for_tests(f"sqlite+aiosqlite:///{path}"), plugins=_plugins())


def _handlers(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler) and route.path.startswith("/v1/"):
                for method in sorted(handler.http_methods):
                    yield route.path, method, handler


# --- where datetimes hide in a type ---------------------------------------------------------------------------------

#: One step from a JSON value into a part of it: ("field", name, tag_field, tag) | ("item",) | ("value",).
Step = tuple[Any, ...]


def _datetimes(t: Any, steps: tuple[Step, ...] = (), seen: frozenset[type] = frozenset()) -> Iterator[Any]:
    """(steps, DateTimeType) for every datetime reachable in a msgspec type, through structs, unions and
    containers."""
    if isinstance(t, mi.DateTimeType):
        yield steps, t
    elif isinstance(t, mi.Metadata):
        yield from _datetimes(t.type, steps, seen)
    elif isinstance(t, mi.StructType):
        if t.cls in seen:
            return
        for f in t.fields:
            step = ("field", f.encode_name, t.tag_field, t.tag)
            yield from _datetimes(f.type, (*steps, step), seen | {t.cls})
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            yield from _datetimes(member, steps, seen)
    elif isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        yield from _datetimes(t.item_type, (*steps, ("item",)), seen)
    elif isinstance(t, mi.TupleType):
        for item in t.item_types:
            yield from _datetimes(item, (*steps, ("item",)), seen)
    elif isinstance(t, mi.DictType):
        yield from _datetimes(t.value_type, (*steps, ("value",)), seen)


def _json_with(steps: tuple[Step, ...], value: Any) -> Any:
    """The smallest JSON document holding ``value`` at ``steps``."""
    if not steps:
        return value
    step, inner = steps[0], _json_with(steps[1:], value)
    if step[0] == "field":
        _, name, tag_field, tag = step
        return {tag_field: tag, name: inner} if tag_field else {name: inner}
    if step[0] == "item":
        return [inner]
    return {"k": inner}


def _field_path(steps: tuple[Step, ...]) -> str:
    path = ""
    for step in steps:
        if step[0] == "field":
            path += f".{step[1]}" if path else step[1]
        elif step[0] == "item":
            path += "[0]"
        else:
            path += ".k"
    return path


def _body_datetimes(handler: HTTPRouteHandler) -> list[tuple[tuple[Step, ...], Any]]:
    data = handler.parsed_fn_signature.parameters.get("data")
    return list(_datetimes(mi.type_info(declared_type(data.raw)))) if data is not None else []


def _query_params(handler: HTTPRouteHandler) -> Iterator[tuple[str, Any, Any]]:
    """(query name, declared type info, the parameter's kwarg definition) of each query parameter."""
    for name, field in handler.parsed_fn_signature.parameters.items():
        alias = query_name(name, field.kwarg_definition)
        if alias is not None:
            yield alias, mi.type_info(declared_type(field.raw)), field.kwarg_definition


def _naive_accepting(app: Litestar) -> list[str]:
    found = []
    for path, method, handler in _handlers(app):
        for steps, dt in _body_datetimes(handler):
            if dt.tz is not True:
                found.append(f"{method} {path} body {_field_path(steps)}")
        for name, info, _ in _query_params(handler):
            for _, dt in _datetimes(info):
                if dt.tz is not True:
                    found.append(f"{method} {path} query {name}")
    return found


def test_every_request_datetime_requires_an_offset(app: Litestar) -> None:
    assert _naive_accepting(app) == [], "declare these with core.validation.AwareDatetime (from core import ...)"


class _Inner(msgspec.Struct, tag=True):
    at: datetime | None = None


class _Outer(msgspec.Struct):
    items: list[dict[str, _Inner]]
    when: AwareDatetime | None = None


def test_the_walk_finds_datetimes_that_accept_naive_values() -> None:
    """The walk above sees through structs, lists, dicts and unions (else the contract would pass vacuously)."""
    found = [(_field_path(s), dt.tz, _json_with(s, 1)) for s, dt in _datetimes(mi.type_info(_Outer))]
    assert found == [
        ("items[0].k.at", None, {"items": [{"k": {"type": "_Inner", "at": 1}}]}),
        ("when", True, {"when": 1}),
    ]


def test_the_walk_covers_the_known_datetime_inputs(app: Litestar) -> None:
    inputs = set()
    for path, method, handler in _handlers(app):
        inputs |= {(method, path, _field_path(steps)) for steps, _ in _body_datetimes(handler)}
        inputs |= {(method, path, name) for name, info, _ in _query_params(handler) if list(_datetimes(info))}
    assert {
        ("POST", "/v1/members/{member_id:uuid}/points/adjust", "available_at"),
        ("POST", "/v1/earning-rules", "valid_from"),
        ("PATCH", "/v1/campaigns/{campaign_id:uuid}", "rules[0].valid_until"),
        ("PUT", "/v1/members/{member_id:uuid}/tier", "until"),
        ("GET", "/v1/members", "created_after"),
        ("GET", "/v1/fuel/reports/retention", "as_of"),
    } <= inputs


def test_every_route_has_buildable_input_checks_and_json_bodies(app: Litestar) -> None:
    for path, method, handler in _handlers(app):
        inputs = inputs_of(handler)
        if "data" in handler.parsed_fn_signature.parameters:
            assert inputs.body is not None, f"{method} {path}: a body that is not JSON"


# --- over HTTP, on both databases -----------------------------------------------------------------------------------


def _url(path: str) -> str:
    def fill(match: re.Match[str]) -> str:
        return str(uuid.uuid4()) if match.group(2) == "uuid" else ("1" if match.group(2) == "int" else "x")

    return re.sub(r"\{(\w+):(\w+)\}", fill, path)


async def _send(client: AppClient, headers: dict[str, str], method: str, path: str, **kw: Any) -> Any:
    return await client.request(method, _url(path), headers=headers, **kw)


def _headers_for(handler: HTTPRouteHandler, tenant_headers: dict[str, str]) -> dict[str, str] | None:
    auth = handler.opt.get("auth", "tenant")
    return None if auth == "none" else PLATFORM if auth == "platform" else tenant_headers


async def test_naive_datetimes_are_refused_on_every_route(
    app: Litestar, client: AppClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant(plugins=sorted(_plugins().available()))
    tried = 0
    for path, method, handler in _handlers(app):
        headers = _headers_for(handler, tenant.headers)
        if headers is None:
            continue
        cases = [({"json": _json_with(s, NAIVE)}, _field_path(s)) for s, _ in _body_datetimes(handler)]
        cases += [({"params": {n: NAIVE}}, n) for n, info, _ in _query_params(handler) if list(_datetimes(info))]
        for request, field in cases:
            response = await _send(client, headers, method, path, **request)
            label = f"{method} {path} {field}"
            assert response.status_code == 422, f"{label}: {response.status_code} {response.text}"
            body = response.json()
            assert body["type"].endswith("/validation-error") and body["field"] == field, label
            assert "timezone" in body["detail"], label
            tried += 1
    assert tried >= 25
    # Nothing was written by any of them: the tenant has no rules, campaigns or members.
    for listing in ("/v1/earning-rules", "/v1/campaigns", "/v1/members"):
        listed = (await tenant.get(listing)).json()
        assert (listed["items"] if isinstance(listed, dict) else listed) == [], listing


def _bounds(info: Any, kwarg: Any) -> tuple[int | None, int | None]:
    """The lowest and highest integer a query parameter accepts (None: unbounded that way)."""
    low = high = None
    infos = info.types if isinstance(info, mi.UnionType) else (info,)
    for t in infos:
        if isinstance(t, mi.IntType):
            low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else low)
            high = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else high)
    if isinstance(kwarg, ParameterKwarg):
        low = kwarg.ge if kwarg.ge is not None else (kwarg.gt + 1 if kwarg.gt is not None else low)
        high = kwarg.le if kwarg.le is not None else (kwarg.lt - 1 if kwarg.lt is not None else high)
    return (None if low is None else int(low)), (None if high is None else int(high))


def _bounded_query_params(app: Litestar) -> list[tuple[str, str, HTTPRouteHandler, str, int | None, int | None]]:
    found = []
    for path, method, handler in _handlers(app):
        for name, info, kwarg in _query_params(handler):
            low, high = _bounds(info, kwarg)
            if low is not None or high is not None:
                found.append((path, method, handler, name, low, high))
    return found


def test_bounded_query_parameters_are_advertised(app: Litestar) -> None:
    bounded = _bounded_query_params(app)
    assert any(name == "expiring_within_days" for _, _, _, name, _, _ in bounded)
    schema = served_schema(app)  # what /schema/openapi.json serves
    for path, method, _, name, low, high in bounded:
        openapi_path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)
        parameters = schema["paths"][openapi_path][method.lower()]["parameters"]
        advertised = next(p["schema"] for p in parameters if p["name"] == name and p["in"] == "query")
        assert (advertised.get("minimum"), advertised.get("maximum")) == (low, high), f"{method} {path} {name}"


async def test_bounded_query_parameters_refuse_values_out_of_bounds(
    app: Litestar, client: AppClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant(plugins=sorted(_plugins().available()))
    bounded = _bounded_query_params(app)
    assert bounded
    for path, method, handler, name, low, high in bounded:
        headers = _headers_for(handler, tenant.headers)
        assert headers is not None
        wrong = []  # just out of bounds, and beyond any machine integer (a 422, never an overflow)
        if low is not None:
            wrong += [low - 1, -(10**20)]
        if high is not None:
            wrong += [high + 1, 10**20]
        for value in wrong:
            response = await _send(client, headers, method, path, params={name: str(value)})
            label = f"{method} {path} {name}={value}"
            assert response.status_code == 422, f"{label}: {response.status_code} {response.text}"
            assert response.json()["field"] == name, label


# --- decimals: declared as checked ----------------------------------------------------------------------------------


def _decimals(t: Any, steps: tuple[Step, ...] = (), seen: frozenset[type] = frozenset()) -> Iterator[Any]:
    """(steps, the field's DecimalRule or None) for every decimal reachable in a msgspec type."""
    if isinstance(t, mi.DecimalType):
        yield steps, None
    elif isinstance(t, mi.Metadata):
        if isinstance(t.type, mi.DecimalType):
            yield steps, rule_of(t.extra)
        else:
            yield from _decimals(t.type, steps, seen)
    elif isinstance(t, mi.StructType):
        if t.cls in seen:
            return
        for f in t.fields:
            yield from _decimals(f.type, (*steps, ("field", f.encode_name, t.tag_field, t.tag)), seen | {t.cls})
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            yield from _decimals(member, steps, seen)
    elif isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        yield from _decimals(t.item_type, (*steps, ("item",)), seen)
    elif isinstance(t, mi.DictType):
        yield from _decimals(t.value_type, (*steps, ("value",)), seen)


def _body_decimals(app: Litestar) -> list[tuple[str, str, HTTPRouteHandler, tuple[Step, ...], DecimalRule | None]]:
    found = []
    for path, method, handler in _handlers(app):
        data = handler.parsed_fn_signature.parameters.get("data")
        if data is not None:
            for steps, rule in _decimals(mi.type_info(declared_type(data.raw))):
                found.append((path, method, handler, steps, rule))
    return found


def _out_of_rule(rule: DecimalRule) -> list[Any]:
    """Values just outside ``rule``, as JSON numbers and as strings, and strings that are not plain digits."""
    wrong: list[Any] = ["NaN", "Infinity", " 1", "1_0", "+1", "1e1", "0x10", "", "1.", ".5"]
    assert rule.low is not None
    below = [rule.low - 1] if rule.low_inclusive else [rule.low]
    wrong += [*below, *(str(v) for v in below), -(10**30)]
    if rule.high is not None:
        above = [rule.high + 1] if rule.high_inclusive else [rule.high]
        wrong += [*above, *(str(v) for v in above), 10**30, "1" + "0" * 40]
    if rule.places is not None:
        # Between two values the rule admits, with one place too many.
        inside = (rule.low + 1) if rule.high is None or rule.low + 1 < rule.high else rule.low
        too_fine = f"{inside}.{'0' * rule.places}1"
        wrong += [too_fine, float(too_fine)] if rule.places < 12 else [too_fine]
    return wrong


def test_every_bounded_decimal_is_declared_as_checked(app: Litestar) -> None:
    found = _body_decimals(app)
    bounded = {(method, path, _field_path(steps)): rule for path, method, _, steps, rule in found if rule}
    # The fields the contract once listed as undeclared, and the tier's multiplier: all declared now.
    assert {
        ("POST", "/v1/fuel/sites", "tank_size_litres"),
        ("PATCH", "/v1/fuel/sites/{site_id:uuid}", "daily_max_litres"),
        ("POST", "/v1/fuel/redemptions/{redemption_id:uuid}/apply", "litres"),
        ("POST", "/v1/platform/plans", "monthly_price"),
        ("PATCH", "/v1/platform/plans/{code:str}", "overage_price_per_1000_events"),
        ("POST", "/v1/platform/plans", "rate_limit_per_second"),
        ("PUT", "/v1/measurement/settings", "point_value"),
        ("POST", "/v1/tiers", "benefits.earning_multiplier"),
        ("PATCH", "/v1/tiers/{tier_id:uuid}", "qualification.criteria[0].min"),
    } <= set(bounded)
    schema = served_schema(app)
    components = schema["components"]["schemas"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = components[node["$ref"].rsplit("/", 1)[1]]
        return node

    def declared(body: dict[str, Any], steps: tuple[Step, ...]) -> list[dict[str, Any]]:
        """The schemas at ``steps`` (every branch of a union)."""
        nodes = [resolve(body)]
        for step in steps:
            expanded = []
            for node in nodes:
                branches = node.get("anyOf") or node.get("oneOf") or [node]
                for branch in map(resolve, branches):
                    if step[0] == "field" and step[1] in branch.get("properties", {}):
                        expanded.append(resolve(branch["properties"][step[1]]))
                    elif step[0] == "item" and "items" in branch:
                        expanded.append(resolve(branch["items"]))
                    elif step[0] == "value" and isinstance(branch.get("additionalProperties"), dict):
                        expanded.append(resolve(branch["additionalProperties"]))
            nodes = expanded
        return nodes

    for path, method, _, steps, rule in found:
        openapi_path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)
        body = schema["paths"][openapi_path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
        label = f"{method} {path} {_field_path(steps)}"
        nodes = declared(body, steps)
        assert nodes, label

        def branches_of(node: dict[str, Any]) -> list[dict[str, Any]]:
            if "anyOf" not in node:
                return [] if node == {"type": "null"} else [node]
            return [b for branch in node["anyOf"] for b in branches_of(resolve(branch))]

        for node in nodes:
            branches = branches_of(node)
            if rule is None:
                assert branches == [{"type": "number"}, {"type": "string", "pattern": DECIMAL_PATTERN}], label
            else:
                assert branches == rule.schema()["anyOf"], label


async def test_every_decimal_refuses_what_its_rule_refuses(
    app: Litestar, client: AppClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant(plugins=sorted(_plugins().available()))
    listings = ("/v1/tiers", "/v1/fuel/sites", "/v1/earning-rules")
    before = {listing: (await tenant.get(listing)).json() for listing in listings}
    tried = 0
    for path, method, handler, steps, rule in _body_decimals(app):
        headers = _headers_for(handler, tenant.headers)
        if headers is None:
            continue
        field = _field_path(steps)
        for value in _out_of_rule(rule) if rule is not None else ["NaN", " 1", "1_000", "١"]:
            response = await _send(client, headers, method, path, json=_json_with(steps, value))
            label = f"{method} {path} {field}={value!r}"
            assert response.status_code == 422, f"{label}: {response.status_code} {response.text}"
            body = response.json()
            assert body["type"].endswith("/validation-error") and body["field"] == field, f"{label}: {body}"
            tried += 1
    assert tried >= 200
    # Nothing was written by any of them (the tiers are the plugins' defaults).
    assert {listing: (await tenant.get(listing)).json() for listing in listings} == before


async def test_a_decimal_within_its_rule_is_taken_exactly(client: AppClient, make_tenant: MakeTenant) -> None:
    """As a number or a string, at its bounds, with trailing zeros: stored exactly, never through a float."""
    tenant = await make_tenant(plugins=["fuel"])
    site = await tenant.post(
        "/v1/fuel/sites",
        json={"code": "S-1", "name": "One", "tank_size_litres": 100000, "daily_max_litres": "0.0001"},
    )
    assert site.status_code == 201, site.text
    assert Decimal(site.json()["tank_size_litres"]) == 100000
    assert Decimal(site.json()["daily_max_litres"]) == Decimal("0.0001")
    # A number with more digits than a float holds is read as written (and refused only for its places).
    fine = await tenant.patch(f"/v1/fuel/sites/{site.json()['id']}", content=b'{"tank_size_litres": 12345.6789}')
    assert fine.status_code == 200 and Decimal(fine.json()["tank_size_litres"]) == Decimal("12345.6789"), fine.text
    too_fine = await tenant.patch(
        f"/v1/fuel/sites/{site.json()['id']}", content=b'{"tank_size_litres": 12345.678900000000000001}'
    )
    assert too_fine.status_code == 422 and too_fine.json()["field"] == "tank_size_litres", too_fine.text
    trailing = await tenant.patch(f"/v1/fuel/sites/{site.json()['id']}", json={"daily_max_litres": "100000.00000"})
    assert trailing.status_code == 200 and Decimal(trailing.json()["daily_max_litres"]) == 100000, trailing.text
    kept = (await tenant.get(f"/v1/fuel/sites/{site.json()['id']}")).json()
    assert Decimal(kept["tank_size_litres"]) == Decimal("12345.6789")


def test_the_string_pattern_admits_exactly_the_values_the_rule_admits(app: Litestar) -> None:
    """A rule's pattern against its number check, over every rule the app declares and values around each bound."""
    app_rules = {rule for *_, rule in _body_decimals(app) if rule is not None}
    assert len(app_rules) >= 5
    for rule in app_rules:
        assert rule.low is not None
        marks = {0, 1, 9, 10, rule.low, rule.low + 1, *([rule.high - 1, rule.high, rule.high + 1] if rule.high else [])}
        wholes = {str(m) for m in marks if m >= 0}
        fractions = ["", ".0", ".00000", ".5", ".05", ".50", ".0001", ".00001", ".000001", ".0000001", ".1000000"]
        for whole in wholes:
            for fraction in fractions:
                text = whole + fraction
                by_number = rule.problem(Decimal(text)) is None
                assert (rule.problem(text) is None) == by_number, (rule, text)
        for text in ("01", "00.5", "-0", "-1", "+1", "1e2", " 1", "1 ", "1\n", ".5", "5.", "", "NaN"):
            assert rule.problem(text) is not None, (rule, text)


class _Leaf(msgspec.Struct, tag=True):
    amount: Annotated[Decimal, decimal_bounds(ge=0, le=5, places=1)]


class _Other(msgspec.Struct, tag=True):
    note: str = ""


class _Tree(msgspec.Struct, forbid_unknown_fields=True):
    count: int = 0
    leaves: list[_Leaf | _Other] = msgspec.field(default_factory=list)
    by_name: dict[str, Annotated[Decimal, decimal_bounds(gt=0, le=1000, places=2)]] = msgspec.field(
        default_factory=dict
    )
    plain: Decimal | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    child: _Tree | None = None


def _tree_inputs() -> RouteInputs:
    return RouteInputs(msgspec.json.Decoder(_Tree, strict=True), True, (), _Tree, decimal_checks(_Tree))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"leaves": [{"type": "_Leaf", "amount": "1.5"}, {"type": "_Leaf", "amount": 5.5}]}, "leaves[1].amount"),
        ({"leaves": [{"type": "_Other"}, {"type": "_Leaf", "amount": "0.25"}]}, "leaves[1].amount"),
        ({"by_name": {"a": 1, "b": "0"}}, "by_name.b"),
        ({"plain": "NaN"}, "plain"),
        ({"child": {"child": {"leaves": [{"type": "_Leaf", "amount": -1}]}}}, "child.child.leaves[0].amount"),
        ({"count": 2.0, "plain": " 7"}, "plain"),  # the slow path of an integral float checks decimals too
    ],
)
def test_the_gate_finds_every_decimal_of_a_body(body: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        decode_body(_tree_inputs(), msgspec.json.encode(body), "application/json")
    assert refused.value.field == field


def test_a_body_with_an_integral_float_keeps_its_decimals_exact() -> None:
    """``5.0`` for an integer takes the slow path, which must not read the other numbers through floats."""
    body = b'{"count": 5.0, "plain": 0.1000000000000000000000001, "extra": {"x": 1.5, "y": 2.0}, "by_name": {"a": 3}}'
    tree = decode_body(_tree_inputs(), body, "application/json")
    assert tree.count == 5 and tree.plain == Decimal("0.1000000000000000000000001")
    assert tree.extra == {"x": 1.5, "y": 2} and isinstance(tree.extra["x"], float)
    assert tree.by_name == {"a": Decimal(3)}
    assert decimal_checks(_Other) is None  # a body without decimals costs nothing more
