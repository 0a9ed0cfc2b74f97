"""The event types a fuel network's pumps and tills send, with their attribute schemas and cross-field checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core import EventType, EventView, FieldIssue
from plugins.fuel_station import rules
from plugins.fuel_station.settings import FuelSettings

FILL_UP, SHOP = "fuel.fill_up", "fuel.shop_purchase"
#: The plugin's kind of transaction for each of its event types.
KIND_OF = {FILL_UP: "fill_up", SHOP: "shop"}
LITRE_UNITS = frozenset({"litre", "litres", "liter", "liters", "l"})

Text40 = Annotated[str, Meta(min_length=1, max_length=40)]


class FillUpAttributes(msgspec.Struct, forbid_unknown_fields=True):
    """A fill-up: litres in the event's ``quantity`` (``unit`` litre), the money in ``amount``/``currency``."""

    #: The site's code (``POST /v1/fuel/sites``).
    site: Text40
    #: One of the program's grades (settings ``grades``: gasoline, premium, diesel by default).
    grade: Text40
    pump: Annotated[str, Meta(min_length=1, max_length=20)] | Annotated[int, Meta(ge=0, le=9999)] | None = None
    payment_method: Literal["card", "cash", "mobile", "fleet_card", "voucher", "other"] | None = None


class ShopAttributes(msgspec.Struct, forbid_unknown_fields=True):
    """A shop purchase: the money in ``amount``/``currency``."""

    site: Text40
    category: Annotated[str, Meta(min_length=1, max_length=60)] = "general"


EVENT_TYPES = [
    EventType(
        FILL_UP,
        "A fill-up at a pump: litres as quantity (unit litre), amount and currency, site, grade, pump, payment.",
        attributes=FillUpAttributes,
        requires_amount=True,
        requires_quantity=True,
    ),
    EventType(
        SHOP,
        "A purchase in a station's shop: amount and currency, site, category.",
        attributes=ShopAttributes,
        requires_amount=True,
    ),
]


def event_issues(event: EventView, settings: FuelSettings, program_currency: str) -> list[FieldIssue]:
    """Cross-field checks of a fill-up or shop purchase beyond its schema (the site is checked against the
    database by the service): the currency, the unit and precision of litres, absurd volumes, unknown grades."""
    issues: list[FieldIssue] = []
    if event.currency != program_currency:
        issues.append(FieldIssue("currency", f"this program earns on {program_currency} only"))
    if event.type != FILL_UP:
        return issues
    litres: Decimal | None = event.quantity
    assert litres is not None
    if event.unit is not None and event.unit.lower() not in LITRE_UNITS:
        issues.append(FieldIssue("unit", "fill-ups are measured in litres (unit 'litre')"))
    if rules.decimal_places(litres) > rules.LITRE_PLACES:
        issues.append(FieldIssue("quantity", f"litres have at most {rules.LITRE_PLACES} decimal places"))
    if litres > settings.max_valid_litres:
        issues.append(FieldIssue("quantity", f"{litres} litres is not a fill-up (at most {settings.max_valid_litres})"))
    if event.attributes.grade not in settings.grades:
        issues.append(FieldIssue("attributes.grade", f"unknown grade; this program knows {sorted(settings.grades)}"))
    return issues
