"""core.logging: one format for every line, whoever logs it; secrets redacted; Alembic's chatter dropped."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from core.logging import configure_logging


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """Logs configured in the test itself (on the stderr pytest captures in that phase), and configured back on the
    real stderr afterwards."""
    yield capsys
    captured, sys.stderr = sys.stderr, sys.__stderr__
    try:
        configure_logging("WARNING", json=True)
    finally:
        sys.stderr = captured


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines()]


def test_standard_library_and_structlog_lines_are_json(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        # (uvicorn.error's own level may have been raised by a server an earlier test started: INFO goes elsewhere)
        logging.getLogger("fealty.tests.stdlib").info("Started server process [%d]", 42)
        structlog.get_logger("fealty.test").info("request", path="/v1/members", api_key="ftk_secret", key="x")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    finally:
        structlog.contextvars.clear_contextvars()
    started, request, failed = _lines(json_logs)
    assert started["event"] == "Started server process [42]" and started["logger"] == "fealty.tests.stdlib"
    assert started["level"] == "info" and started["timestamp"].endswith("Z") and started["request_id"] == "r-1"
    assert request["event"] == "request" and request["api_key"] == "[redacted]" and request["key"] == "[redacted]"
    assert (
        failed["level"] == "error" and failed["logger"] == "uvicorn.error" and "ValueError: boom" in failed["exception"]
    )


def test_alembic_chatter_is_dropped_but_migrations_are_logged(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    migration = logging.getLogger("alembic.runtime.migration")
    for logger in (migration, logging.getLogger("alembic.runtime.plugins")):
        logger.setLevel(logging.NOTSET)  # the root's INFO, whatever an earlier test left
    migration.info("Context impl PostgresqlImpl.")
    migration.info("Will assume transactional DDL.")
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
    migration.info("Running upgrade %s -> %s", "0001", "0002")
    migration.warning("Context impl is odd")  # warnings always pass
    assert [line["event"] for line in _lines(json_logs)] == ["Running upgrade 0001 -> 0002", "Context impl is odd"]


def test_configuring_again_keeps_one_handler_and_others_alone(json_logs: pytest.CaptureFixture[str]) -> None:
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    try:
        configure_logging("INFO", json=True)
        configure_logging("INFO", json=True)
        ours = [h for h in logging.getLogger().handlers if h.get_name() == "fealty"]
        assert len(ours) == 1 and other in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(other)
