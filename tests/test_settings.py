"""Strict settings: unknown variables, typed values naming their variable, strict booleans, masked secrets."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from click.testing import CliRunner

from core.cli import main
from core.settings import MASK, Settings, SettingsError, mask_url


def problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    return caught.value.problems


def test_a_typo_refuses_to_start_with_a_did_you_mean_hint() -> None:
    assert problems({"FEALTY_DATABSE_URL": "postgresql+asyncpg://db/x"}) == [
        "FEALTY_DATABSE_URL is not a Fealty setting; did you mean FEALTY_DATABASE_URL?"
    ]
    (far,) = problems({"FEALTY_NOTHING_LIKE_IT": "1"})
    assert far.startswith("FEALTY_NOTHING_LIKE_IT is not a Fealty setting")


def test_the_test_suite_and_bench_variables_are_not_settings() -> None:
    settings = Settings.from_env({"FEALTY_TEST_BACKENDS": "sqlite", "FEALTY_BENCH_ADMIN_URL": "x", "HOME": "/"})
    assert settings == Settings()


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("false", False), ("0", False), (" No ", False)],
)
def test_booleans_accept_the_six_words(raw: str, value: bool) -> None:
    assert Settings.from_env({"FEALTY_LOG_JSON": raw}).log_json is value


@pytest.mark.parametrize("raw", ["ture", "on", "off", "", "2", "y"])
def test_any_other_boolean_is_refused_naming_the_variable(raw: str) -> None:
    (problem,) = problems({"FEALTY_LOG_JSON": raw})
    assert problem == f"FEALTY_LOG_JSON: expected one of true/false/1/0/yes/no, got {raw!r}"


def test_every_error_names_its_variable_and_all_are_reported_at_once() -> None:
    found = problems(
        {
            "FEALTY_PORT": "80a",
            "FEALTY_WORKER_POLL_SECONDS": "soon",
            "FEALTY_EMBEDDED_WORKER": "maybe",
            "FEALTY_LOG_LEVL": "DEBUG",
        }
    )
    assert found == [
        "FEALTY_EMBEDDED_WORKER: expected one of true/false/1/0/yes/no, got 'maybe'",
        "FEALTY_LOG_LEVL is not a Fealty setting; did you mean FEALTY_LOG_LEVEL?",
        "FEALTY_PORT: expected a whole number, got '80a'",
        "FEALTY_WORKER_POLL_SECONDS: expected a number, got 'soon'",
    ]


def test_typed_values_and_overrides() -> None:
    settings = Settings.from_env(
        {"FEALTY_PORT": " 9001 ", "FEALTY_WORKER_POLL_SECONDS": "0.5", "FEALTY_PLUGINS": "hotel, fuel,"},
        log_level="WARNING",
    )
    assert (settings.port, settings.worker_poll_seconds, settings.plugins) == (9001, 0.5, ("hotel", "fuel"))
    assert settings.log_level == "WARNING"
    with pytest.raises(SettingsError, match="'log_levl' is not a Fealty setting"):
        Settings.from_env({}, log_levl="DEBUG")


def test_secrets_are_masked_in_the_repr_and_in_logs(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env(
        {
            "FEALTY_STRIPE_API_KEY": "sk_live_very_secret",
            "FEALTY_PLATFORM_KEY": "ftp_platform_secret-of-at-least-32-chars",
            "FEALTY_AWS_SECRET_ACCESS_KEY": "aws-secret",
            "FEALTY_DATABASE_URL": "postgresql+asyncpg://fealty:db-password@db.internal/fealty",
        }
    )
    shown = repr(settings)
    for secret in ("sk_live_very_secret", "ftp_platform_secret-of-at-least-32-chars", "aws-secret", "db-password"):
        assert secret not in shown
    assert f"stripe_api_key='{MASK}'" in shown and f"fealty:{MASK}@db.internal" in shown
    assert settings.stripe_api_key == "sk_live_very_secret"  # the value itself is intact

    from core.logging import configure_logging

    configure_logging("INFO", json=True)
    import structlog

    try:
        structlog.get_logger("t").info("starting", settings=settings, stripe_api_key=settings.stripe_api_key)
        logging.getLogger().handlers[-1].flush()
        printed = capsys.readouterr().err
    finally:
        # Back on the real stderr at the suite's level: later tests must not write to this test's captured stream.
        captured, sys.stderr = sys.stderr, sys.__stderr__
        try:
            configure_logging("WARNING", json=True)
        finally:
            sys.stderr = captured
    assert "sk_live_very_secret" not in printed and "db-password" not in printed and "starting" in printed


def test_mask_url() -> None:
    assert mask_url("postgresql://u:p@h:5432/d") == f"postgresql://u:{MASK}@h:5432/d"
    assert mask_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert mask_url("sqlite+aiosqlite:///fealty.db") == "sqlite+aiosqlite:///fealty.db"


def test_fealty_config_prints_the_effective_settings_masked() -> None:
    from core.settings import get_settings

    runner = CliRunner()
    env = {"FEALTY_STRIPE_API_KEY": "sk_live_very_secret", "FEALTY_PORT": "9001", "FEALTY_LOG_LEVEL": None}
    get_settings.cache_clear()
    try:
        result = runner.invoke(main, ["config"], env=env)
        assert result.exit_code == 0, result.output
        assert "FEALTY_PORT=9001  # environment" in result.output
        assert "FEALTY_HOST=127.0.0.1  # default" in result.output
        assert f"FEALTY_STRIPE_API_KEY={MASK}  # environment" in result.output
        assert "sk_live_very_secret" not in result.output
        get_settings.cache_clear()
        as_json = json.loads(runner.invoke(main, ["config", "--json"], env=env).output)
        assert as_json["port"] == 9001 and as_json["stripe_api_key"] == MASK

        get_settings.cache_clear()
        refused = runner.invoke(main, ["config"], env={"FEALTY_DATABSE_URL": "postgresql+asyncpg://x/y"})
        assert refused.exit_code == 2
        assert "did you mean FEALTY_DATABASE_URL?" in refused.output
    finally:
        get_settings.cache_clear()
