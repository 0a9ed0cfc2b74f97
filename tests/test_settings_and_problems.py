from __future__ import annotations

import pytest
from litestar.exceptions import ValidationException

from core.errors import ValidationFailed
from core.http.pagination import decode_cursor, encode_cursor
from core.http.problems import to_fealty_error
from core.settings import Settings


def test_settings_read_the_environment() -> None:
    settings = Settings.from_env(
        {
            "FEALTY_PORT": "9001",
            "FEALTY_EMBEDDED_WORKER": "no",
            "FEALTY_DATABASE_URL": "postgresql+asyncpg://u@h/db",
            "FEALTY_PLUGINS": "hotel, fuel",
        }
    )
    assert settings.port == 9001 and settings.embedded_worker is False and settings.plugins == ("hotel", "fuel")
    assert settings.is_postgres and not settings.runs_embedded_worker and not settings.migrates_on_start
    default = Settings.from_env({})
    assert default.is_sqlite and default.runs_embedded_worker and default.migrates_on_start


@pytest.mark.parametrize(
    ("message", "key", "field"),
    [
        ("Expected `int`, got `str` - at `$.points`", "", "points"),
        ("Object missing required field `purpose` - at `$.consents[0]`", "", "consents[0].purpose"),
        ("Object contains unknown field `bogus`", "data", "bogus"),
        ("Object missing required field `purpose`", "consents[0]", "consents[0].purpose"),
        ("Expected `int`, got `str`", "limit", "limit"),
    ],
)
def test_validation_errors_name_the_field(message: str, key: str, field: str) -> None:
    error = to_fealty_error(ValidationException(extra=[{"message": message, "key": key}]))
    assert isinstance(error, ValidationFailed)
    assert error.field == field


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor("a", 3), 2) == ["a", 3]
    with pytest.raises(ValidationFailed):
        decode_cursor("!!!", 1)
    with pytest.raises(ValidationFailed):
        decode_cursor(encode_cursor("a"), 2)
