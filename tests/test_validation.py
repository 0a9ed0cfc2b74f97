from __future__ import annotations

import pytest

from core import validation
from core.errors import ValidationFailed


@pytest.mark.parametrize(
    ("func", "args", "expected"),
    [
        (validation.email, ("Foo.Bar@Example.COM",), "foo.bar@example.com"),
        (validation.phone, ("020 7946 0958", "GB"), "+442079460958"),
        (validation.phone, ("+86 138 0013 8000", None), "+8613800138000"),
        (validation.phone, ("138 0013 8000", "CN"), "+8613800138000"),
        (validation.locale, ("zh_hans_cn",), "zh-Hans-CN"),
        (validation.locale, ("en-gb",), "en-GB"),
        (validation.currency, ("gbp",), "GBP"),
        (validation.country, ("cn",), "CN"),
        (validation.time_zone, ("Asia/Shanghai",), "Asia/Shanghai"),
    ],
)
def test_normalises(func, args, expected) -> None:
    assert func(*args) == expected


@pytest.mark.parametrize(
    ("func", "args", "field"),
    [
        (validation.email, ("a@",), "email"),
        (validation.phone, ("555", "US"), "phone"),
        (validation.phone, ("07911 123456", None), "phone"),
        (validation.locale, ("xx-QQ-nope",), "locale"),
        (validation.currency, ("EURO",), "currency"),
        (validation.country, ("XX",), "country"),
        (validation.time_zone, ("GMT+8",), "timezone"),
    ],
)
def test_rejects_with_field(func, args, field) -> None:
    with pytest.raises(ValidationFailed) as info:
        func(*args)
    assert info.value.field == field
    assert info.value.to_problem()["status"] == 422
