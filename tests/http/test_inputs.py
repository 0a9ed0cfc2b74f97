"""core.http.inputs: the pure checks behind every request's input (depth, NUL, strict bodies, declared types)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import msgspec
import pytest
from litestar.params import QueryParameter
from msgspec import Meta

from core.errors import JsonTooDeep, MalformedRequest, UnsupportedMediaType, ValidationFailed
from core.http.inputs import MAX_JSON_DEPTH, RouteInputs, check_body_structure, declared_type, decode_body
from core.validation import AwareDatetime


class Adjust(msgspec.Struct, forbid_unknown_fields=True):
    points: int
    reason: str
    at: AwareDatetime | None = None
    rate: Any = None


ADJUST = RouteInputs(msgspec.json.Decoder(Adjust, strict=True), True, ())


def _nest(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"a": "x\u0000"}, "a"),
        ({"a": ["ok", {"b": "\u0000"}]}, "a[1].b"),
        (["fine", "\u0000"], "[1]"),
        ({"k\u0000": 1}, None),
    ],
)
def test_nul_anywhere_is_refused_with_its_path(body: Any, field: str | None) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_body_structure(json.dumps(body).encode())
    assert refused.value.field == field and "NUL" in refused.value.detail


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    check_body_structure(json.dumps({"a": "\\u0000"}).encode())  # the text \u0000, six characters


def test_depth_is_counted_without_recursion() -> None:
    check_body_structure(_nest(MAX_JSON_DEPTH))
    with pytest.raises(JsonTooDeep) as deep:
        check_body_structure(b'{"a": {"b": ' + _nest(MAX_JSON_DEPTH - 1) + b"}}")
    assert deep.value.field == "a.b" + "[0]" * (MAX_JSON_DEPTH - 2)
    # Deeper than the decoder itself can go: still a problem, never a RecursionError.
    with pytest.raises(JsonTooDeep):
        check_body_structure(_nest(200_000))


def test_many_brackets_side_by_side_are_not_depth() -> None:
    check_body_structure(json.dumps({"a": [[1]] * 500, "b": "[[[[[[" * 100}).encode())


def test_bodies_decode_strictly_into_the_declared_type() -> None:
    decoded = decode_body(ADJUST, b'{"points": 5, "reason": "x", "at": "2030-01-01T00:00:00Z"}', "application/json")
    assert decoded == Adjust(5, "x", datetime.fromisoformat("2030-01-01T00:00:00+00:00"))
    for body, field in [
        (b'{"points": "5", "reason": "x"}', "points"),
        (b'{"points": 5, "reason": "x", "at": "2030-01-01T00:00:00"}', "at"),
        (b'{"points": 5, "reason": "x", "evil": 1}', "evil"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            decode_body(ADJUST, body, None)
        assert refused.value.field == field


def test_media_types_and_empty_bodies() -> None:
    body = b'{"points": 5, "reason": "x"}'
    for media in (None, "", "application/json", "Application/JSON; charset=utf-8", "application/problem+json"):
        assert decode_body(ADJUST, body, media) == Adjust(5, "x")
    for media in ("text/plain", "application/x-www-form-urlencoded", "text/json"):
        with pytest.raises(UnsupportedMediaType):
            decode_body(ADJUST, body, media)
    with pytest.raises(ValidationFailed, match="A JSON body is required"):
        decode_body(ADJUST, b"", "application/json")
    optional = RouteInputs(ADJUST.body, False, ())
    assert decode_body(optional, b"", None) is msgspec.UNSET
    with pytest.raises(MalformedRequest):
        decode_body(ADJUST, b"{", None)


def test_declared_types_keep_constraints_and_drop_framework_markers() -> None:
    bounded = declared_type(Annotated[int, Meta(ge=0), QueryParameter()])
    assert msgspec.convert("3", bounded, strict=False) == 3
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert("-1", bounded, strict=False)
    moment = declared_type(Annotated[AwareDatetime | None, QueryParameter()])
    assert msgspec.convert("2030-01-01T00:00:00+01:00", moment, strict=False) is not None
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        msgspec.convert("2030-01-01T00:00:00", moment, strict=False)
    assert declared_type(Annotated[str, QueryParameter()]) is str
