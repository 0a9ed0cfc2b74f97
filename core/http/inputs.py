"""What a ``/v1`` request's input must be before any handler sees it: the one place these rules are enforced.

* A route that takes a JSON body gets JSON: a body of another media type is a 415, no body at all a 422 (an
  absent ``Content-Type`` is read as JSON).
* The body is decoded *strictly*, straight into the handler's declared type: an ``int`` field refuses ``"5"`` (a
  ``Decimal`` field takes a JSON string or a number, as the API documents), and the decoded value is handed to the
  framework so the body is decoded once.
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
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Annotated, Any, Union, cast, get_args, get_origin

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ParamType, RequestEncodingType
from litestar.params import BodyKwarg, ParameterKwarg
from litestar.types import Scope
from litestar.utils.scope.state import ScopeState

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


@dataclass(frozen=True, slots=True)
class RouteInputs:
    """What one route handler accepts, worked out once from its signature."""

    body: msgspec.json.Decoder[Any] | None
    body_required: bool
    query: tuple[QueryCheck, ...]
    body_type: Any = None


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
    required = False
    data = parameters.get("data")
    if data is not None:
        kwarg = data.kwarg_definition
        media = kwarg.media_type if isinstance(kwarg, BodyKwarg) else RequestEncodingType.JSON
        if media == RequestEncodingType.JSON:
            body = msgspec.json.Decoder(declared_type(data.raw), strict=True)
            required = not data.has_default and not data.is_optional
    checks = []
    for name, field in parameters.items():
        alias = query_name(name, field.kwarg_definition)
        if alias is None:
            continue
        wanted = _without_none(query_type(alias, field.raw))
        checks.append(QueryCheck(alias, wanted, strict=_is_temporal(wanted)))
    return RouteInputs(body, required, tuple(checks), body.type if body is not None else None)


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
    """``value`` with every integral float (``255.0``) as the integer it is, walked without recursion."""
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, float) and item.is_integer() and abs(item) < 2**63:
            container[key] = int(item)
        elif isinstance(item, dict):
            stack.extend((item, k) for k in item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
    return root[0]


def _decode_with_integral_floats(inputs: RouteInputs, body: bytes) -> Any:
    """The slow path of a body a strict decoder refused for a float: JSON has one number type, and ``255.0`` is the
    integer 255 (JSON Schema's ``integer`` says so too), so an integral float is taken where an integer is due. Other
    refusals stay what the strict decoder said."""
    assert inputs.body is not None
    try:
        return msgspec.convert(_integral(msgspec.json.decode(body)), inputs.body_type, strict=True)
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
    try:
        return inputs.body.decode(body)
    except RecursionError:
        raise _too_deep() from None
    except msgspec.ValidationError as exc:
        if "got `float`" in str(exc):
            return _decode_with_integral_floats(inputs, body)
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
