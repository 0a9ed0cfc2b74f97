"""Care templates: Jinja2 in a sandbox with strict undefined, checked when saved, rendered per locale with Babel.

A template's texts are ``{locale: {"subject", "body", "html", "sms"}}``. What a text may name: ``member`` (its fields,
:data:`MEMBER_FIELDS`), ``program`` (:data:`PROGRAM_FIELDS`) and the variables of the template's trigger. A text
that does not parse, names another variable, or fails on the trigger's sample values (``member.nmae``) is refused at
save time with a 422 naming the variable and the text, so nothing can fail at send time for that reason.

Filters format for the message's locale (Babel): ``number``, ``money`` (the program's currency unless given),
``date``, ``datetime`` (in the member's time zone), ``percent``.

SMS: :func:`sms_segments` counts segments as carriers do (GSM-7: 160 characters alone, 153 per part; UCS-2 when any
character is outside GSM-7: 70 alone, 67 per part); a marketing SMS always ends with the opt-out line.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from core.errors import ValidationFailed

#: The parts of a locale's texts, and which channel uses them.
PARTS = ("subject", "body", "html", "sms")
MEMBER_FIELDS: dict[str, Any] = {
    "id": "00000000-0000-0000-0000-000000000000",
    "external_id": "M-1001",
    "name": "Ann Lee",
    "first_name": "Ann",
    "email": "ann@example.com",
    "phone": "+447700900123",
    "birthday": "1990-05-17",
    "timezone": "Europe/London",
    "locale": "en",
    "tier": "gold",
    "points": 1250,
    "enrolled_at": "2024-03-01T10:00:00+00:00",
    "attributes": {},
}
PROGRAM_FIELDS: dict[str, Any] = {
    "name": "Fealty Rewards",
    "currency": "GBP",
    "points_name": "points",
    "timezone": "UTC",
}
#: Appended to every marketing SMS (by the message's language; English when there is none for it).
OPT_OUT_LINES = {"en": "Reply STOP to opt out.", "zh": "回复TD退订", "fr": "STOP pour vous désabonner."}

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


def _locale_of(context: Context) -> str:
    return str(context.get("_locale") or "en")


def _as_decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value))


def _format(kind: str, value: Any, locale: str, zone: str | None, option: str | None) -> str:
    """``value`` formatted by the filter ``kind`` for ``locale`` (``option``: the money's currency or the date's
    format; ``zone``: the member's time zone)."""
    if kind == "number":
        return format_decimal(_as_decimal(value), locale=locale)
    if kind == "money":
        return format_currency(_as_decimal(value), option or "USD", locale=locale)
    if kind == "percent":
        return format_percent(_as_decimal(value), locale=locale)
    if kind == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            day = value
        else:
            moment = _as_datetime(value)
            if moment.tzinfo is not None and zone is not None:
                moment = moment.astimezone(ZoneInfo(zone))
            day = moment.date()
        return format_date(day, format=option or "long", locale=locale)
    moment = _as_datetime(value)
    tzinfo = ZoneInfo(zone) if zone is not None else None
    return format_datetime(moment, format=option or "medium", tzinfo=tzinfo, locale=locale)


@functools.lru_cache(maxsize=8192)
def _format_cached(
    kind: str, value_type: str, text: str, value: Any, locale: str, zone: str | None, option: str | None
) -> str:
    return _format(kind, value, locale, zone, option)


#: Values whose formatting is remembered: the same type and text format the same way (1 and 1.0 and True are equal
#: as keys but not as texts, hence the type and text in the key).
_MEMO_TYPES = (str, int, float, Decimal, date)


def _formatted(context: Context, kind: str, value: Any, option: str | None) -> str:
    """Babel's formatting costs tens of microseconds a call, and an outage's 100,000 alerts format the same
    restoration time: the result is remembered per (value, locale, zone, option)."""
    zone = context.get("_zone")
    zone = zone if isinstance(zone, str) else None
    locale = _locale_of(context)
    if isinstance(value, _MEMO_TYPES):
        return _format_cached(kind, type(value).__name__, str(value), value, locale, zone, option)
    return _format(kind, value, locale, zone, option)


@pass_context
def _number(context: Context, value: Any) -> str:
    return _formatted(context, "number", value, None)


@pass_context
def _money(context: Context, value: Any, currency: str | None = None) -> str:
    return _formatted(context, "money", value, currency or str(context.get("_currency") or "USD"))


@pass_context
def _percent(context: Context, value: Any) -> str:
    return _formatted(context, "percent", value, None)


@pass_context
def _date(context: Context, value: Any, format: str = "long") -> str:
    return _formatted(context, "date", value, format)


@pass_context
def _datetime(context: Context, value: Any, format: str = "medium") -> str:
    return _formatted(context, "datetime", value, format)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters.update(number=_number, money=_money, percent=_percent, date=_date, datetime=_datetime)
    return env


ENV = _environment()
HTML_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
HTML_ENV.filters.update(ENV.filters)


@functools.lru_cache(maxsize=2048)
def _compiled(source: str, html: bool = False) -> Template:
    """Templates compiled once per process (compiling costs far more than rendering)."""
    return (HTML_ENV if html else ENV).from_string(source)


@functools.lru_cache(maxsize=256)
def babel_locale(tag: str) -> str:
    """``zh-CN`` -> ``zh_CN``; an unknown tag falls back to ``en``."""
    try:
        return str(Locale.parse(tag.replace("-", "_")))
    except (ValueError, UnknownLocaleError):
        return "en"


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    body: str
    html: str | None
    sms: str


def check_texts(texts: Mapping[str, Mapping[str, str | None]], allowed: Mapping[str, Any]) -> None:
    """Refuse (422) a text that does not parse, names a variable not in ``allowed`` (whose values are samples), or
    fails when rendered with the samples."""
    if not texts:
        raise ValidationFailed("A template needs texts for at least one locale.", field="texts")
    for locale, parts in texts.items():
        if not parts.get("body"):
            raise ValidationFailed("Each locale needs a body.", field=f"texts.{locale}.body")
        for part, source in parts.items():
            if source is None:
                continue
            field = f"texts.{locale}.{part}"
            env = HTML_ENV if part == "html" else ENV
            try:
                tree = env.parse(source)
            except TemplateSyntaxError as exc:
                raise ValidationFailed(
                    f"The {part} does not parse (line {exc.lineno}): {exc.message}", field=field
                ) from None
            unknown = sorted(meta.find_undeclared_variables(tree) - set(allowed))
            if unknown:
                raise ValidationFailed(
                    f"Unknown variable '{unknown[0]}' in the {part}; known: {', '.join(sorted(allowed))}.",
                    field=field,
                    variable=unknown[0],
                )
            try:
                env.from_string(source).render(
                    {**allowed, "_locale": babel_locale(locale), "_currency": "GBP", "_zone": "UTC"}
                )
            except UndefinedError as exc:
                name = _undefined_name(str(exc))
                raise ValidationFailed(
                    f"Unknown variable in the {part}: {exc.message}.", field=field, variable=name
                ) from None
            except SecurityError as exc:
                raise ValidationFailed(f"Not allowed in a template: {exc}.", field=field) from None
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise ValidationFailed(f"The {part} fails with the sample values: {exc}.", field=field) from None


def _undefined_name(message: str) -> str:
    # "'dict object' has no attribute 'nmae'" / "'x' is undefined"
    parts = message.split("'")
    return parts[-2] if len(parts) >= 3 else message


def pick_locale(texts: Mapping[str, Any], wanted: str | None, default: str) -> str:
    """The member's locale if the template has it, else its language, else the template's default, else any."""
    if wanted:
        if wanted in texts:
            return wanted
        language = wanted.split("-")[0].split("_")[0]
        for locale in texts:
            if locale.split("-")[0].split("_")[0] == language:
                return locale
    if default in texts:
        return default
    return next(iter(texts))


def render(
    texts: Mapping[str, Mapping[str, str | None]],
    locale: str,
    variables: Mapping[str, Any],
    *,
    currency: str,
    zone: str,
    marketing_sms: bool = False,
) -> Rendered:
    parts = texts[locale]
    context = {**variables, "_locale": babel_locale(locale), "_currency": currency, "_zone": zone}
    subject_source, html_source, sms_source = parts.get("subject"), parts.get("html"), parts.get("sms")
    subject = _compiled(subject_source).render(context).strip() if subject_source else None
    body = _compiled(parts.get("body") or "").render(context)
    html = _compiled(html_source, html=True).render(context) if html_source else None
    sms = _compiled(sms_source).render(context).strip() if sms_source else body.strip()
    if marketing_sms:
        sms = with_opt_out(sms, locale)
    return Rendered(subject, body, html, sms)


def with_opt_out(text: str, locale: str) -> str:
    line = OPT_OUT_LINES.get(locale.split("-")[0].split("_")[0], OPT_OUT_LINES["en"])
    return text if text.rstrip().endswith(line) else f"{text.rstrip()} {line}"


def sms_segments(text: str) -> tuple[str, int]:
    """``("GSM-7" | "UCS-2", segments)`` as a carrier counts them."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in text):
        septets = sum(2 if c in _GSM7_EXTENDED else 1 for c in text)
        return "GSM-7", 1 if septets <= 160 else -(-septets // 153)
    units = len(text.encode("utf-16-le")) // 2
    return "UCS-2", 1 if units <= 70 else -(-units // 67)
