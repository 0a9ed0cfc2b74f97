"""RFC 9457 problem documents for every error: Fealty's own, Litestar's, and the database's."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from sqlalchemy.exc import DataError, IntegrityError

from core.errors import (
    PROBLEM_BASE,
    AlreadyExists,
    FealtyError,
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger("fealty.errors")

_JSON_PATH = re.compile(r"at `\$\.?([^`]*)`")


def problem_response(error: FealtyError, instance: str | None = None) -> Response[dict[str, Any]]:
    document = error.to_problem(instance)
    return Response(
        content=document,
        status_code=document["status"],
        media_type=PROBLEM_MEDIA_TYPE,
        headers=error.headers or None,
    )


_UNKNOWN_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]*)`")


def _field_from_message(message: str, key: str) -> str | None:
    """The offending field as a dotted path: from msgspec's ``at `$.a.b``` or Litestar's key, plus the name of a
    missing or unknown field when the message gives one."""
    match = _JSON_PATH.search(message)
    path = (match.group(1) if match else "") or ("" if key in ("", "data") else key.removeprefix("data."))
    named = _UNKNOWN_FIELD.search(message)
    if named:
        return f"{path}.{named.group(1)}" if path else named.group(1)
    return path or None


def problem_messages(error: FealtyError, instance: str | None = None) -> list[dict[str, Any]]:
    """The problem as raw ASGI messages, for middleware that answers before the app runs."""
    body = msgspec.json.encode(error.to_problem(instance))
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    return [
        {"type": "http.response.start", "status": error.status, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


def _validation_error(exc: ValidationException) -> FealtyError:
    errors: list[dict[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        field = _field_from_message(message, str(item.get("key") or "")) or ""
        if message.startswith("JSON is malformed") or "malformed" in message.lower():
            return MalformedRequest(message)
        errors.append({"field": str(field), "detail": message.split(" - at ")[0]})
    if not errors:
        text = str(exc.detail)
        if "malformed" in text.lower() or "decode" in text.lower():
            return MalformedRequest("The request body is not valid JSON.")
        return ValidationFailed(text)
    first = errors[0]
    detail = f"{first['field']}: {first['detail']}" if first["field"] else first["detail"]
    return ValidationFailed(detail, field=first["field"] or None, errors=errors)


def to_fealty_error(exc: Exception) -> FealtyError | None:
    """Translate a framework or database exception into Fealty's vocabulary (None: an unexpected error)."""
    if isinstance(exc, FealtyError):
        return exc
    if isinstance(exc, ValidationException):
        return _validation_error(exc)
    if isinstance(exc, SerializationException):
        return MalformedRequest("The request body is not valid JSON.")
    if isinstance(exc, NotFoundException):
        return NotFound("No such resource.")
    if isinstance(exc, MethodNotAllowedException):
        # RFC 9110: a 405 says which methods the resource supports (the router put them in its ``allow`` header).
        allow = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow")
        return MethodNotAllowed(str(exc.detail), headers={"Allow": allow} if allow else None)
    if isinstance(exc, IntegrityError):
        return AlreadyExists("The change conflicts with existing data (a unique identifier is already taken).")
    if isinstance(exc, DataError):
        return ValidationFailed("A value is out of range or too long for its field.")
    if isinstance(exc, HTTPException):
        if exc.status_code == 413:
            return PayloadTooLarge("The request body exceeds the size limit.")
        if exc.status_code == 400:
            # Litestar raises a plain 400 when the body cannot be decoded at all.
            return MalformedRequest(f"The request body is not valid JSON: {exc.detail}")
        return HttpProblem(exc.status_code, str(exc.detail))
    return None


class HttpProblem(FealtyError):
    """Any other HTTP error the framework raises, with its own status."""

    slug = "http-error"
    title = "HTTP error"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.http_status = status

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        return super().to_problem(instance) | {"status": self.http_status}


class InternalError(FealtyError):
    status = 500
    slug = "internal-error"
    title = "Internal error"


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    error = to_fealty_error(exc)
    if error is None:
        log.error("unhandled_error", exc_info=exc, path=request.url.path)
        error = InternalError("Something went wrong on our side; the request was not applied.")
    elif error.status >= 500:
        log.error("server_error", exc_info=exc, path=request.url.path)
    return problem_response(error, instance=request.url.path)


__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_MEDIA_TYPE",
    "handle_exception",
    "problem_messages",
    "problem_response",
    "to_fealty_error",
]
