"""What a ``/v1`` request's input must be before any handler sees it: the one place these rules are enforced.

* A route that takes a JSON body gets JSON: a body of another media type is a 415, no body at all a 422 (an
  absent ``Content-Type`` is read as JSON).
* The body is decoded *strictly*, straight into the handler's declared type: an ``int`` field refuses ``"5"``, and
  the decoded value is handed to the framework so the body is decoded once.
* A ``Decimal`` field takes a JSON number (read exactly, never through a float) or a string of digits, within the
  bounds its ``decimal_bounds(...)`` declares (:mod:`core.decimals`): every decimal of the body, at any depth, is
  checked as the request wrote it (``"NaN"``, ``" 1"`` and ``"1_000"`` are not digits).
* JSON nests at most :data:`MAX_JSON_DEPTH` levels (checked without recursion).
* No string of the body, the query or the path may contain the NUL character (``\\u0000``): PostgreSQL cannot store
  it in text, and SQLite must behave the same.
* Every query parameter is converted to its declared type (``?active=maybe`` and ``?active=null`` are refused, not
  read as absent) and obeys the constraints its annotation declares (``FromQuery[Annotated[int, Meta(ge=0)]]``,
  ``FromQuery[AwareDatetime | None]``): the framework only enforces constraints given as ``Parameter(...)``.
  The well-known parameters (:data:`WELL_KNOWN_QUERY`: ``limit``, ``cursor``) obey the API-wide rules whatever their
  route declares, and a date or time in the query must be written as RFC 3339 (``0.5`` is not a date-time).
  :mod:`core.http.openapi` declares exactly these types in the OpenAPI schema: what is enforced is what is declared.

Each refusal is a problem document naming the offending field, raised before any transaction is opened.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Union, cast, get_args, get_origin

import msgspec
import msgspec.inspect as mi
from litestar.connection import ASGIConnection
from litestar.enums import ParamType, RequestEncodingType
from litestar.params import BodyKwarg, ParameterKwarg
from litestar.types import Scope
from litestar.utils.scope.state import ScopeState

from core.decimals import decimal_problem, rule_of
from core.errors import FealtyError, JsonTooDeep, MalformedRequest, UnsupportedMediaType, ValidationFailed, invalid
from core.http.pagination import Cursor, Limit

#: The deepest a JSON body may nest (objects and arrays). Loyalty payloads need a handful of levels.
MAX_JSON_DEPTH = 32

_NUL = "\x00"

#: Query parameters whose rules are the API's, not their route's: a route's ``limit: FromQuery[int] = 50`` is checked
#: (and declared in the schema) as 1 to 500, its ``cursor`` as a cursor.
WELL_KNOWN_QUERY: dict[str, Any] = {"limit": Limit, "cursor": Cursor}

_TEMPORAL = (datetime, date, time)


@dataclass(frozen=True, slots=True)
class QueryCheck:
    name: str
    #: The parameter's declared type with its msgspec constraints (the framework's own markers removed).
    type: Any
    #: Dates and times are converted strictly (an RFC 3339 string only; the lax conversion reads ``0.5`` as a Unix
    #: time); numbers and booleans leniently, as query strings carry them.
    strict: bool = False


#: Checks the decimals of a body as the request wrote it (the JSON value, its path): raises a 422 naming the field.
DecimalCheck = Callable[[Any, str], None]


@dataclass(frozen=True, slots=True)
class RouteInputs:
    """What one route handler accepts, worked out once from its signature."""

    body: msgspec.json.Decoder[Any] | None
    body_required: bool
    query: tuple[QueryCheck, ...]
    body_type: Any = None
    #: The body's decimals, checked on the JSON as written (None: the body has no decimal).
    decimals: DecimalCheck | None = None


def declared_type(annotation: Any) -> Any:
    """``annotation`` as msgspec should see it: msgspec ``Meta`` constraints kept (also inside unions), the
    framework's markers (``QueryParameter()``, ``BodyKwarg``) dropped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extras = get_args(annotation)
        kept = [m for m in extras if isinstance(m, msgspec.Meta)]
        inner = declared_type(base)
        return Annotated[(inner, *kept)] if kept else inner
    if origin is Union or origin is types.UnionType:
        return Union[tuple(declared_type(a) for a in get_args(annotation))]  # noqa: UP007
    return annotation


def _has_constraints(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return True
    return any(_has_constraints(a) for a in get_args(annotation))


def _is_temporal(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, _TEMPORAL):
        return True
    return any(_is_temporal(a) for a in get_args(annotation))


def _without_none(annotation: Any) -> Any:
    """A query parameter's type without ``None``: a query string has no null (``?active=null`` is not a boolean),
    only absence."""
    if get_origin(annotation) is Union or get_origin(annotation) is types.UnionType:
        kept = [a for a in get_args(annotation) if a is not type(None)]
        return Union[tuple(kept)] if len(kept) > 1 else kept[0]  # noqa: UP007
    return annotation


_KWARG_BOUNDS = ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern")


def _kwarg_meta(annotation: Any) -> msgspec.Meta | None:
    """The bounds a ``QueryParameter(ge=..., le=...)`` marker gives, as msgspec constraints."""
    if get_origin(annotation) is not Annotated:
        return None
    for marker in get_args(annotation)[1:]:
        if isinstance(marker, ParameterKwarg):
            bounds = {k: getattr(marker, k) for k in _KWARG_BOUNDS if getattr(marker, k, None) is not None}
            if bounds:
                return msgspec.Meta(**bounds)
    return None


# --- decimals, as the request wrote them -----------------------------------------------------------------------------


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _decimal_leaf(info: Any) -> DecimalCheck:
    rule = rule_of(info.extra) if isinstance(info, mi.Metadata) else None

    def check(value: Any, path: str) -> None:
        problem = decimal_problem(value, rule)
        if problem is not None:
            raise ValidationFailed(f"{path}: {problem}." if path else f"The body {problem}.", field=path or None)

    return check


def _holds_decimal(info: Any, seen: frozenset[Any]) -> bool:
    """Whether a decimal is reachable in the type ``info`` describes."""
    inner = info.type if isinstance(info, mi.Metadata) else info
    if isinstance(inner, mi.DecimalType):
        return True
    if isinstance(inner, mi.StructType | mi.TypedDictType | mi.DataclassType):
        return inner.cls not in seen and any(_holds_decimal(f.type, seen | {inner.cls}) for f in inner.fields)
    if isinstance(inner, mi.UnionType):
        return any(_holds_decimal(t, seen) for t in inner.types)
    if isinstance(inner, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _holds_decimal(inner.item_type, seen)
    if isinstance(inner, mi.TupleType):
        return any(_holds_decimal(t, seen) for t in inner.item_types)
    if isinstance(inner, mi.DictType):
        return _holds_decimal(inner.value_type, seen)
    return False


class _DecimalChecks:
    """Builds, for a body's declared type, one function that checks every decimal in it (through structs, unions,
    lists and dicts) on the body's JSON as decoded without a type (numbers read exactly); None when the type holds no
    decimal, so such bodies cost nothing."""

    def __init__(self) -> None:
        self._objects: dict[Any, DecimalCheck | None] = {}

    def build(self, info: Any) -> DecimalCheck | None:
        inner = info.type if isinstance(info, mi.Metadata) else info
        if isinstance(inner, mi.DecimalType):
            return _decimal_leaf(info)
        if isinstance(inner, mi.StructType | mi.TypedDictType | mi.DataclassType):
            return self._object(inner)
        if isinstance(inner, mi.UnionType):
            return self._union(inner)
        if isinstance(inner, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            item = self.build(inner.item_type)
            return None if item is None else self._items(lambda i: item)
        if isinstance(inner, mi.TupleType):
            items = [self.build(t) for t in inner.item_types]
            if not any(items):
                return None
            return self._items(lambda i: items[i] if i < len(items) else None)
        if isinstance(inner, mi.DictType):
            value = self.build(inner.value_type)
            return None if value is None else self._values(value)
        return None

    def _object(self, info: Any) -> DecimalCheck | None:
        key = info.cls
        if key in self._objects:
            # A recursive type: checked through its entry, filled in once it is built.
            return lambda value, path: self._call(key, value, path)
        self._objects[key] = None
        if getattr(info, "array_like", False) or not _holds_decimal(info, frozenset()):
            return None
        fields = [(f.encode_name, inner) for f in info.fields if (inner := self.build(f.type)) is not None]

        def check(value: Any, path: str) -> None:
            if isinstance(value, dict):
                for name, inner in fields:
                    if name in value:
                        inner(value[name], _at(path, name))

        self._objects[key] = check
        return check

    def _call(self, key: Any, value: Any, path: str) -> None:
        found = self._objects.get(key)
        if found is not None:
            found(value, path)

    def _union(self, info: Any) -> DecimalCheck | None:
        scalar: DecimalCheck | None = None
        listed: DecimalCheck | None = None
        mapped: DecimalCheck | None = None
        tagged: dict[Any, DecimalCheck] = {}
        tag_field: str | None = None
        for member in info.types:
            inner = member.type if isinstance(member, mi.Metadata) else member
            built = self.build(member)
            if built is None:
                continue
            if isinstance(inner, mi.DecimalType):
                scalar = built
            elif isinstance(inner, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType | mi.TupleType):
                listed = built
            elif isinstance(inner, mi.StructType) and inner.tag_field is not None:
                tag_field = inner.tag_field
                tagged[inner.tag] = built
            else:
                mapped = built
        if not (scalar or listed or mapped or tagged):
            return None

        def check(value: Any, path: str) -> None:
            if isinstance(value, dict):
                chosen = tagged.get(value.get(tag_field)) if tag_field is not None else mapped
                if chosen is not None:
                    chosen(value, path)
            elif isinstance(value, list):
                if listed is not None:
                    listed(value, path)
            elif scalar is not None:
                scalar(value, path)

        return check

    @staticmethod
    def _items(item: Callable[[int], DecimalCheck | None]) -> DecimalCheck:
        def check(value: Any, path: str) -> None:
            if isinstance(value, list):
                for i, element in enumerate(value):
                    inner = item(i)
                    if inner is not None:
                        inner(element, f"{path}[{i}]")

        return check

    @staticmethod
    def _values(inner: DecimalCheck) -> DecimalCheck:
        def check(value: Any, path: str) -> None:
            if isinstance(value, dict):
                for key, element in value.items():
                    inner(element, _at(path, str(key)))

        return check


def decimal_checks(body_type: Any) -> DecimalCheck | None:
    """The check of every decimal ``body_type`` holds, or None when it holds none."""
    return _DecimalChecks().build(mi.type_info(body_type))


#: The body as JSON, without a type: numbers that are not integers read exactly, as ``Decimal``.
_AS_WRITTEN = msgspec.json.Decoder(float_hook=Decimal)
#: Writes such a body back with its decimals as the JSON numbers they were.
_AS_NUMBERS = msgspec.json.Encoder(decimal_format="number")


def query_type(name: str, annotation: Any) -> Any:
    """What a query parameter's value must be: the well-known rule for ``name``, or its declared type with the
    constraints of its msgspec ``Meta`` and of a ``QueryParameter(...)`` marker."""
    known = WELL_KNOWN_QUERY.get(name)
    wanted = declared_type(annotation)
    meta = _kwarg_meta(annotation)
    if known is not None and meta is None and not _has_constraints(wanted):
        return known
    return Annotated[wanted, meta] if meta is not None else wanted


def query_name(name: str, kwarg: Any) -> str | None:
    """The query-string name of a handler parameter, or None when it is not a query parameter."""
    if not isinstance(kwarg, ParameterKwarg) or kwarg.param_type != ParamType.QUERY:
        return None
    return kwarg.query or name


def inputs_of(handler: Any) -> RouteInputs:
    """The body and query checks of ``handler`` (a Litestar HTTP route handler)."""
    parameters = handler.parsed_fn_signature.parameters
    body: msgspec.json.Decoder[Any] | None = None
    decimals: DecimalCheck | None = None
    required = False
    data = parameters.get("data")
    if data is not None:
        kwarg = data.kwarg_definition
        media = kwarg.media_type if isinstance(kwarg, BodyKwarg) else RequestEncodingType.JSON
        if media == RequestEncodingType.JSON:
            body = msgspec.json.Decoder(declared_type(data.raw), strict=True)
            decimals = decimal_checks(body.type)
            required = not data.has_default and not data.is_optional
    checks = []
    for name, field in parameters.items():
        alias = query_name(name, field.kwarg_definition)
        if alias is None:
            continue
        wanted = _without_none(query_type(alias, field.raw))
        checks.append(QueryCheck(alias, wanted, strict=_is_temporal(wanted)))
    return RouteInputs(body, required, tuple(checks), body.type if body is not None else None, decimals)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _scan(value: Any, limit: int) -> tuple[str, str] | None:
    """The first (kind, path) of a string with a NUL or a container deeper than ``limit``, in document order,
    walked with an explicit stack (a recursive walk is what the depth limit guards against)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if _NUL in item:
                return "nul", path
        elif isinstance(item, dict):
            if depth > limit:
                return "deep", path
            children = []
            for key, child in item.items():
                if _NUL in key:
                    return "nul-key", path
                children.append((child, f"{path}.{key}" if path else key, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            if depth > limit:
                return "deep", path
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in reversed(list(enumerate(item))))
    return None


def _nul_refused(field: str | None, what: str = "text") -> ValidationFailed:
    label = f"{field}: " if field else ""
    return ValidationFailed(f"{label}{what} must not contain the NUL character (\\u0000).", field=field or None)


def _too_deep(field: str | None = None) -> JsonTooDeep:
    where = f" (at {field})" if field else ""
    return JsonTooDeep(f"The JSON body nests more than {MAX_JSON_DEPTH} levels deep{where}.", field=field)


def check_body_structure(body: bytes) -> None:
    """Refuse a body nested too deeply or carrying a NUL in any string. Cheap byte tests first: most bodies have
    neither an escaped NUL nor that many brackets, and are never walked."""
    if b"\\u0000" not in body and body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return
    try:
        value = msgspec.json.decode(body)
    except RecursionError:
        raise _too_deep() from None
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"The request body is not valid JSON: {exc}") from None
    found = _scan(value, MAX_JSON_DEPTH)
    if found is None:
        return
    kind, path = found
    if kind == "deep":
        raise _too_deep(path or None)
    if kind == "nul-key":
        raise _nul_refused(path or None, "an object key")
    raise _nul_refused(path or None)


def _integral(value: Any) -> Any:
    """``value`` with every integral number read as a decimal (``255.0``) as the integer it is, walked without
    recursion."""
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, Decimal) and item.is_finite() and item == item.to_integral_value() and abs(item) < 2**63:
            container[key] = int(item)
        elif isinstance(item, dict):
            stack.extend((item, k) for k in item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
    return root[0]


def _as_written(inputs: RouteInputs, body: bytes) -> Any:
    """The body decoded without a type, its decimals checked as written."""
    try:
        written = _AS_WRITTEN.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"The request body is not valid JSON: {exc}") from None
    if inputs.decimals is not None:
        inputs.decimals(written, "")
    return written


def _decode_with_integral_floats(inputs: RouteInputs, body: bytes, written: Any) -> Any:
    """The slow path of a body a strict decoder refused for a float: JSON has one number type, and ``255.0`` is the
    integer 255 (JSON Schema's ``integer`` says so too), so an integral number is taken where an integer is due. The
    body is written again with those numbers as integers and every other number as it was (exact: never through a
    float), and decoded strictly again. Other refusals stay what the strict decoder said."""
    assert inputs.body is not None
    again = _AS_NUMBERS.encode(_integral(_as_written(inputs, body) if written is None else written))
    try:
        return inputs.body.decode(again)
    except msgspec.ValidationError as exc:
        raise invalid(str(exc)) from None


def decode_body(inputs: RouteInputs, body: bytes, content_type: str | None) -> Any:
    """The body decoded into the route's type (``msgspec.UNSET`` when the route takes none or it was left out)."""
    if inputs.body is None:
        return msgspec.UNSET
    if not body:
        if inputs.body_required:
            raise ValidationFailed("A JSON body is required.")
        return msgspec.UNSET
    if not _is_json(content_type):
        raise UnsupportedMediaType(f"The body must be JSON (Content-Type: application/json), not '{content_type}'.")
    check_body_structure(body)
    # A body with decimals: each checked as the request wrote it first (its bounds, its digits).
    written = _as_written(inputs, body) if inputs.decimals is not None else None
    try:
        return inputs.body.decode(body)
    except RecursionError:
        raise _too_deep() from None
    except msgspec.ValidationError as exc:
        if "got `float`" in str(exc):
            return _decode_with_integral_floats(inputs, body, written)
        raise invalid(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"The request body is not valid JSON: {exc}") from None


def check_query_and_path(inputs: RouteInputs, scope: Scope) -> None:
    """No NUL in the path or the query; every constrained query parameter within its declared constraints."""
    params = cast(dict[str, Any], scope.get("path_params") or {})
    if _NUL in scope["path"]:
        for name, value in params.items():
            if isinstance(value, str) and _NUL in value:
                raise _nul_refused(name)
        raise _nul_refused("path")
    query_string: bytes = cast(Any, scope).get("query_string", b"")
    if not query_string:
        return
    query = ASGIConnection[Any, Any, Any, Any](scope).query_params
    if b"%00" in query_string or b"\x00" in query_string:
        for name, value in query.multi_items():
            if _NUL in name or _NUL in value:
                raise _nul_refused(name.replace(_NUL, "\\u0000"))
    for check in inputs.query:
        for value in query.getall(check.name, []):
            try:
                msgspec.convert(value, check.type, strict=check.strict)
            except msgspec.ValidationError as exc:
                raise ValidationFailed(f"{check.name}: {exc}", field=check.name) from None


class InputGate:
    """Per app: each route's checks, worked out on its first request."""

    def __init__(self) -> None:
        # Keyed by id(): route handlers live as long as the app, and so does this gate.
        self._routes: dict[int, RouteInputs] = {}

    def inputs(self, handler: Any) -> RouteInputs:
        found = self._routes.get(id(handler))
        if found is None:
            found = self._routes[id(handler)] = inputs_of(handler)
        return found

    def accepts(self, scope: Scope, body: bytes, content_type: str | None) -> bool:
        """Whether :meth:`check` would let the request through (for paths that decode the body themselves)."""
        try:
            self.check(scope, body, content_type)
        except FealtyError:
            return False
        return True

    def check(self, scope: Scope, body: bytes, content_type: str | None) -> None:
        """Raise the request's first input problem; hand a decoded body to the framework."""
        inputs = self.inputs(scope["route_handler"])
        check_query_and_path(inputs, scope)
        decoded = decode_body(inputs, body, content_type)
        if decoded is not msgspec.UNSET:
            # The framework reads the body's JSON from here instead of decoding it again, and its (lenient)
            # conversion passes an instance of the declared type through unchanged.
            ScopeState.from_scope(scope).json = decoded
