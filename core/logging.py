"""Structured logs (structlog): JSON lines carrying the request id and tenant id bound for the current request.

Everything a process prints as a log goes through the same processors, whoever logs it: Fealty's own structlog
loggers, and the standard library's loggers of uvicorn, Alembic and the rest, which reach structlog's
``ProcessorFormatter`` through one root handler. With ``FEALTY_LOG_JSON`` (the default) every line is a JSON
object; otherwise every line is structlog's console format. Secrets are redacted in both.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from core.settings import SECRET_FIELDS

_REDACT = {"authorization", "api_key", "secret", "password", "platform_key", "key", "stripe-signature"} | set(
    SECRET_FIELDS
)

#: Standard-library loggers kept at WARNING: httpx logs every request's URL at INFO (webhook URLs often carry a
#: tenant's token, not ours to log), SQLAlchemy's engine logs statements and parameters.
_QUIET = ("uvicorn.access", "sqlalchemy.engine", "httpx", "httpcore")

#: What Alembic says at INFO each time it merely opens a migration context (every ``/readyz`` does, to compare
#: heads): noise, unlike the "Running upgrade ..." lines of a real migration, which stay.
_ALEMBIC_CHATTER = ("Context impl ", "Will assume ", "setup plugin ")


_HANDLER_NAME = "fealty"


def _redact_secrets(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in list(event):
        if name.lower() in _REDACT:
            event[name] = "[redacted]"
    return event


class _DropAlembicChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno <= logging.INFO and isinstance(record.msg, str) and record.msg.startswith(_ALEMBIC_CHATTER)
        )


def _add_logger_name(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record = event.get("_record")
    if record is not None:
        event.setdefault("logger", record.name)
    return event


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    exceptions = structlog.processors.format_exc_info if json else structlog.dev.set_exc_info
    structlog.configure(
        processors=[*shared, exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # One write() per line, like the standard library's handler below, on the same stream: lines never mix.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, exceptions, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_DropAlembicChatter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for existing in list(root.handlers):  # configured again (another app in this process): replace ours only
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Servers and libraries that install handlers of their own (uvicorn's default config) would print in their own
    # format: everything propagates to the root handler instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "litestar"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
