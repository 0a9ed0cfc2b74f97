"""Normalising and validating what people type: time zones, currencies, countries, locales, emails, phones.

Each function returns the canonical form or raises :class:`~core.errors.ValidationFailed` naming ``field``.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime
from typing import Annotated

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from email_validator import EmailNotValidError, validate_email
from msgspec import Meta

from core.errors import ValidationFailed

#: A moment in time as the API takes it: RFC 3339 with a UTC offset (``2026-03-01T09:30:00Z``, ``...+01:00``).
#: Every datetime a request carries (body field or query parameter) is declared with this type; a value without an
#: offset is refused with a 422 naming the field (a contract test walks every route to keep it so).
AwareDatetime = Annotated[datetime, Meta(tz=True)]


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def time_zone(value: str, field: str = "timezone") -> str:
    if value not in _time_zones():
        raise ValidationFailed(f"'{value}' is not an IANA time zone (for example Europe/London).", field=field)
    return value


def currency(value: str, field: str = "currency") -> str:
    code = value.upper()
    if code not in _currencies():
        raise ValidationFailed(f"'{value}' is not an ISO 4217 currency code.", field=field)
    return code


def country(value: str, field: str = "country") -> str:
    code = value.upper()
    if len(code) != 2 or code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(f"'{value}' is not an ISO 3166 country code.", field=field)
    return code


def locale(value: str, field: str = "locale") -> str:
    """A BCP 47 tag that CLDR knows, returned in canonical form (``zh-hans-cn`` -> ``zh-Hans-CN``)."""
    try:
        parsed = Locale.parse(value.replace("_", "-"), sep="-")
    except (ValueError, UnknownLocaleError):
        raise ValidationFailed(f"'{value}' is not a known locale (for example en-GB, zh-CN).", field=field) from None
    parts = [parsed.language, parsed.script, parsed.territory, parsed.variant]
    return "-".join(p for p in parts if p)


def email(value: str, field: str = "email") -> str:
    """A syntactically valid address, lower-cased so that matching ignores case (no DNS lookups)."""
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(f"'{value}' is not a valid email address: {exc}", field=field) from None
    return result.normalized.lower()


def phone(value: str, default_region: str | None, field: str = "phone") -> str:
    """E.164 (``+447911123456``). Numbers without a country code are read in the program's country."""
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        hint = "" if default_region else " (give it in international form, +<country code>...)"
        raise ValidationFailed(f"'{value}' is not a phone number{hint}.", field=field) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed(f"'{value}' is not a valid phone number.", field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
