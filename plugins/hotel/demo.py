"""The hotel group of ``fealty demo`` (``make demo``), seeded through core's demo hook (``fealty_demo_tenants``).

``<prefix>-hotel``: a hotel group in London, Hilton-like Silver/Gold/Diamond status, four hotels, 25 guests with
preferences and about six months of stays: OTA bookings that earn nothing, a failed payment that takes a stay back, a
corrected folio (reversed and sent again), a cancelled booking, milestones chosen, pre-arrival care in each guest's
language, a free-night certificate and an afternoon tea. Everything goes through the tenant's HTTP API
(``ctx.api``), as the property management system and the front desk would. The status and milestones count this
calendar year's nights only (as the tiers are configured): the demo is at its fullest from July on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from core import DemoContext, DemoSeeded, DemoTenant


def money(value: float | Decimal | str) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


#: code -> (name, brand, category, nightly rate range in GBP)
HOTEL_PROPERTIES: dict[str, tuple[str, str, str, tuple[int, int]]] = {
    "LON-1": ("Grand London Bankside", "grand", "5", (175, 260)),
    "EDI-1": ("Grand Edinburgh Old Town", "grand", "4", (130, 185)),
    "BTH-1": ("Grand Bath Spa Resort", "grand", "6", (210, 320)),
    "MAN-1": ("Grand Express Manchester", "express", "2", (70, 99)),
}

HOTEL_TIERS: list[dict[str, Any]] = [
    {
        "code": code,
        "name": name,
        "rank": rank,
        "qualification": {
            "window": {"kind": "calendar_year"},
            "mode": "any",
            "criteria": [
                {"metric": "nights", "min": nights},
                {"metric": "stays", "min": stays},
                {"metric": "hotel_base_points", "min": points},
            ],
        },
        "validity": {"kind": "fixed_date", "years_after": 2, "month": 2, "day": 31},
    }
    for code, name, rank, nights, stays, points in (
        ("silver", "Silver", 1, "10", "4", "25000"),
        ("gold", "Gold", 2, "40", "20", "75000"),
        ("diamond", "Diamond", 3, "60", "30", "120000"),
    )
]

#: How each kind of guest travels: days between stays, nights a stay, where, at what rate, through which channel.
GUEST_PROFILES: dict[str, dict[str, Any]] = {
    "road_warrior": {"gap": (2, 5), "nights": (2, 4), "homes": ["LON-1", "EDI-1", "MAN-1"], "rate": "corporate"},
    "consultant": {"gap": (5, 9), "nights": (2, 4), "homes": ["LON-1", "MAN-1", "EDI-1"], "rate": "corporate"},
    "frequent": {"gap": (8, 15), "nights": (1, 3), "homes": ["LON-1", "EDI-1", "BTH-1"], "rate": "flexible"},
    "regular": {"gap": (21, 45), "nights": (1, 3), "homes": ["LON-1", "BTH-1", "EDI-1", "MAN-1"], "rate": "advance"},
    "occasional": {"gap": (45, 110), "nights": (1, 2), "homes": ["BTH-1", "LON-1", "MAN-1"], "rate": "package"},
    "new": {"gap": None, "nights": (1, 1), "homes": ["LON-1"], "rate": "flexible"},
}

#: (name, profile, preferences)
HOTEL_GUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("Ada Whitfield", "road_warrior", {"drink": "green tea", "pillow": "firm"}),
    ("Rahul Mehta", "consultant", {"snack": "dark chocolate"}),
    ("Sophie Laurent", "frequent", {"drink": "champagne"}),
    ("Tom Okafor", "frequent", {"pillow": "memory foam"}),
    ("Hannah Schmidt", "frequent", {"drink": "sparkling water", "snack": "macarons"}),
    ("James O'Connell", "regular", {"drink": "craft beer"}),
    ("Priya Nair", "regular", {"snack": "fresh mango"}),
    ("Oliver Bennett", "regular", {}),
    ("Mei Lin Chen", "regular", {"drink": "jasmine tea", "pillow": "soft"}),
    ("Lucas Moreau", "regular", {"drink": "red wine"}),
    ("Grace Adeyemi", "regular", {"snack": "shortbread"}),
    ("Daniel Novak", "regular", {}),
    ("Isabella Rossi", "regular", {"drink": "espresso"}),
    ("Samuel Clarke", "occasional", {}),
    ("Aisha Rahman", "occasional", {"snack": "dates"}),
    ("Ethan Walsh", "occasional", {}),
    ("Chloe Dubois", "occasional", {"pillow": "feather"}),
    ("Mohammed Al-Farsi", "occasional", {"drink": "mint tea"}),
    ("Emily Hughes", "occasional", {}),
    ("Kenji Watanabe", "occasional", {"drink": "sencha"}),
    ("Zoe Papadopoulos", "occasional", {}),
    ("Benjamin Carter", "occasional", {}),
    ("Fatima Haddad", "new", {"snack": "pistachio baklava"}),
    ("Noah Fischer", "new", {}),
    ("Olivia Grant", "new", {"drink": "elderflower cordial"}),
]


@dataclass
class HotelStay:
    guest: str
    reservation: str
    property: str
    check_in: date
    check_out: date
    rate_type: str
    channel: str
    folio: list[dict[str, str]]
    checked_out_at: datetime


class _HotelDemo:
    """The hotel group's seeding, through the tenant's API (``ctx.api``)."""

    history_days = 182

    def __init__(self, ctx: DemoContext) -> None:
        self.ctx = ctx
        self.api = ctx.api
        self.rng = ctx.rng
        self.now = ctx.now
        self.today = ctx.today
        self.local = ctx.local
        self.currency = ctx.currency

    def guests(self) -> list[dict[str, Any]]:
        members = []
        for i, (name, profile, preferences) in enumerate(HOTEL_GUESTS):
            first, last = name.split(" ", 1)
            email_name = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
            member: dict[str, Any] = {
                "external_id": f"G-{1001 + i}",
                "name": name,
                "email": f"{email_name}@example.com",
                "phone": f"07911 1{self.rng.randrange(10**5):05d}",
                "locale": "zh-CN" if i % 2 else "en-GB",
                "attributes": {"profile": profile, **({"preferences": preferences} if preferences else {})},
                "consents": [
                    {"channel": "email", "purpose": "service", "granted": True, "source": "web"},
                    {"channel": "email", "purpose": "marketing", "granted": self.rng.random() < 0.6, "source": "web"},
                ],
            }
            members.append(member)
        return members

    def stays(self, members: Sequence[dict[str, Any]]) -> list[HotelStay]:
        stays: list[HotelStay] = []
        start = self.today - timedelta(days=self.history_days)
        latest = self.now - timedelta(hours=1)
        number = 40000
        for member in members:
            profile = GUEST_PROFILES[member["attributes"]["profile"]]
            if profile["gap"] is None:
                continue
            day = start + timedelta(days=self.rng.randint(0, profile["gap"][1]))
            while True:
                nights = self.rng.randint(*profile["nights"])
                check_out = day + timedelta(days=nights)
                checked_out_at = self.local(check_out, 10, self.rng.randint(0, 90))
                if checked_out_at > latest:
                    break
                home = self.rng.choice(profile["homes"])
                channel = "direct"
                if profile is GUEST_PROFILES["occasional"] and self.rng.random() < 0.15:
                    channel = "ota"  # booked through an online travel agency: earns nothing
                elif self.rng.random() < 0.3:
                    channel = "mobile_app"
                number += self.rng.randint(1, 40)
                stays.append(
                    HotelStay(
                        guest=member["external_id"],
                        reservation=f"R-{number}",
                        property=home,
                        check_in=day,
                        check_out=check_out,
                        rate_type=profile["rate"],
                        channel=channel,
                        folio=self.folio(home, nights),
                        checked_out_at=checked_out_at,
                    )
                )
                day = check_out + timedelta(days=self.rng.randint(*profile["gap"]))
        return stays

    def folio(self, code: str, nights: int) -> list[dict[str, str]]:
        low, high = HOTEL_PROPERTIES[code][3]
        rate = self.rng.randint(low, high)
        lines = [{"category": "room", "amount": money(rate), "tax": money(rate * 0.2)} for _ in range(nights)]
        extras = [("food_beverage", 18, 95, 0.7), ("minibar", 6, 30, 0.2), ("parking", 25, 40, 0.25)]
        if code == "BTH-1":
            extras.append(("spa", 60, 180, 0.6))
        for category, low_, high_, chance in extras:
            if self.rng.random() < chance:
                amount = self.rng.randint(low_ * 100, high_ * 100) / 100
                lines.append({"category": category, "amount": money(amount), "tax": money(amount * 0.2)})
        return lines

    def stay_event(
        self,
        stay: HotelStay,
        status: str = "checked_out",
        n: int = 1,
        occurred_at: datetime | None = None,
        **changes: Any,
    ) -> dict[str, Any]:
        """The PMS's message about a reservation (one per change, each with its own event id)."""
        _, brand, category, _ = HOTEL_PROPERTIES[stay.property]
        attributes = {
            "reservation_id": stay.reservation,
            "property": stay.property,
            "brand": brand,
            "property_category": category,
            "check_in": stay.check_in.isoformat(),
            "check_out": stay.check_out.isoformat(),
            "rooms": 1,
            "rate_type": stay.rate_type,
            "booking_channel": stay.channel,
            "status": status,
            "payment_status": "paid",
            "folio": stay.folio,
        } | changes
        return {
            "type": "hotel.stay",
            "event_id": f"{stay.reservation}:{changes.get('payment_status', status)}:{n}",
            "member": {"external_id": stay.guest},
            "occurred_at": iso(occurred_at or stay.checked_out_at),
            "currency": self.currency,
            "attributes": attributes,
        }

    def booking(self, guest: str, reservation: str, code: str, arrival: date, nights: int) -> HotelStay:
        return HotelStay(
            guest, reservation, code, arrival, arrival + timedelta(days=nights), "flexible", "direct", [], self.now
        )

    async def seed(self) -> DemoSeeded:
        api = self.api
        for tier in HOTEL_TIERS:
            await api.post("/v1/tiers", tier)
        free_night = await api.post(
            "/v1/rewards",
            {
                "code": "FREE-NIGHT-CAT4",
                "name": "A free night at a category 4 hotel",
                "description": "One night for two, breakfast included, at Grand Edinburgh Old Town or alike.",
                "kind": "hotel.free_night",
                "points_cost": 25000,
                "attributes": {"category": "4", "nights": 1},
                "voucher_valid_days": 365,
            },
        )
        tea = await api.post(
            "/v1/rewards",
            {
                "code": "AFTERNOON-TEA",
                "name": "Afternoon tea for two",
                "points_cost": 6000,
                "stock": 50,
                "per_member_limit": 2,
                "voucher_valid_days": 90,
            },
        )

        await self.ctx.care([("hotel.pre_arrival", HOTEL_PRE_ARRIVAL, {"channels": ["email"]})])
        members = self.guests()
        ids = await api.enrol(members)
        stays = self.stays(members)
        statuses = await api.send_events([self.stay_event(s) for s in stays])
        await self.ctx.work()  # the stays' points post (they checked out days ago)

        by_guest: dict[str, list[HotelStay]] = {}
        for s in stays:
            by_guest.setdefault(s.guest, []).append(s)
        names = {m["external_id"]: m["name"] for m in members}
        guest = {name: external for external, name in names.items()}
        roles = {
            "diamond": guest["Ada Whitfield"],
            "gold": guest["Rahul Mehta"],
            "frequent": guest["Sophie Laurent"],
            "payment_failed": guest["James O'Connell"],
            "folio_corrected": guest["Priya Nair"],
            "new": guest["Fatima Haddad"],
        }

        # A failed payment takes back what a stay earned, with its nights.
        failed = next(s for s in by_guest[roles["payment_failed"]] if s.channel != "ota")
        later = min(self.now, failed.checked_out_at + timedelta(days=3))
        await api.send_event(self.stay_event(failed, n=2, occurred_at=later, payment_status="failed"))
        # A folio corrected after check-out (a dinner posted late): the earning event is reversed, then the stay is
        # sent again with the whole folio (a reservation earns once, so a correction goes through a reversal).
        corrected = next(s for s in reversed(by_guest[roles["folio_corrected"]]) if s.channel != "ota")
        page = await api.get("/v1/events", event_id=f"{corrected.reservation}:checked_out:1")
        await api.post(
            f"/v1/events/{page['items'][0]['id']}/reverse", {"reason": "folio corrected: a dinner was posted late"}
        )
        dinner = {"category": "food_beverage", "amount": "64.50", "tax": "12.90", "description": "dinner, posted late"}
        fixed = dataclasses.replace(corrected, folio=[*corrected.folio, dinner])
        await api.send_event(self.stay_event(fixed, n=2, occurred_at=self.now - timedelta(minutes=30)))
        # A booking cancelled ahead of arrival earns nothing.
        trip = self.booking(guest["Samuel Clarke"], "R-50001", "BTH-1", self.today + timedelta(days=12), 2)
        await api.send_event(self.stay_event(trip, "booked", occurred_at=self.now - timedelta(days=9)))
        await api.send_event(self.stay_event(trip, "cancelled", occurred_at=self.now - timedelta(minutes=20)))
        # A Diamond and a Gold guest arrive the day after tomorrow: the hotel is asked to prepare their welcome.
        arrival = self.today + timedelta(days=2)
        for role, reservation, code in (("diamond", "R-50002", "LON-1"), ("gold", "R-50003", "EDI-1")):
            trip = self.booking(roles[role], reservation, code, arrival, 3)
            await api.send_event(self.stay_event(trip, "booked", occurred_at=self.now - timedelta(minutes=10)))

        # Milestones: the Diamond guest takes 5,000 points for the first, a suite upgrade for the second.
        diamond_id = ids[roles["diamond"]]
        milestones = (await api.get(f"/v1/hotel/members/{diamond_id}/milestones"))["items"]
        for milestone, choice in zip(milestones, ("points", "suite_upgrade"), strict=False):
            await api.post(f"/v1/hotel/members/{diamond_id}/milestones/{milestone['id']}/choose", {"choice": choice})
        # Redemptions: a free night certificate, and an afternoon tea used at the hotel.
        night = await api.post("/v1/redemptions", {"member_id": diamond_id, "reward_id": free_night["id"]})
        gold_id = ids[roles["gold"]]
        voucher = await api.post("/v1/redemptions", {"member_id": gold_id, "reward_id": tea["id"]})
        await api.post(
            f"/v1/redemptions/{voucher['id']}/use", {"location": "Grand London Bankside", "reference": "folio 88412"}
        )
        await self.ctx.work()

        chosen = {role: ids[external] for role, external in roles.items()}
        return DemoSeeded(
            members=chosen,
            extras={"free_night_voucher": night["voucher_code"], "free_night_redemption": night["id"]},
            counts={"stays_sent": len(stays), "stays_awarded": statuses["awarded"]},
            lines=await self.what_to_try(chosen),
        )

    async def what_to_try(self, members: dict[str, str]) -> list[str]:
        """The lines ``fealty demo`` prints for the hotel: a Diamond and a Gold guest, and what to ask about them."""
        h = f'-H "Authorization: Bearer ${self.ctx.key_variable}"'
        return [
            f"GUEST={members['diamond']}   # {await self.ctx.describe(members['diamond'])} (a road warrior)",
            f"GOLD={members['gold']}   # {await self.ctx.describe(members['gold'])} (arrives the day after tomorrow)",
            "# Hotel: a guest's balance, points history, status and progress, perks, milestones and stays",
            f"curl -s $B/v1/members/$GUEST/balance {h}",
            f'curl -s "$B/v1/members/$GUEST/ledger?limit=5" {h}',
            f"curl -s $B/v1/members/$GUEST/tier {h}",
            f"curl -s $B/v1/hotel/members/$GUEST/perks {h}",
            f"curl -s $B/v1/hotel/members/$GUEST/milestones {h}",
            f'curl -s "$B/v1/hotel/members/$GUEST/stays?limit=3" {h}',
            f"curl -s $B/v1/members/$GOLD/tier {h}   # progress to Diamond",
            "# Care requests for the hotel: pre-arrival welcomes, milestones, a suite upgrade to arrange",
            f'curl -s "$B/v1/care/requests?kind=hotel.pre_arrival" {h}',
            f"curl -s $B/v1/care/requests {h}",
            f"curl -s $B/v1/tiers {h}   # how many guests hold each status",
            f'curl -s "$B/v1/events?status=rejected&limit=5" {h}   # OTA bookings, a failed payment, a cancellation',
        ]


HOTEL_PRE_ARRIVAL = {
    "en": {
        "subject": "{{ member.first_name }}, we look forward to welcoming you on {{ check_in|date }}",
        "body": "Your {{ tier }} perks are ready: {{ welcome_gift or 'a warm welcome' }}, late checkout until "
        "{{ perks.late_checkout or '12:00' }}.",
    },
    "zh-CN": {
        "subject": "{{ member.name }}，期待您于{{ check_in|date }}光临",
        "body": "您的{{ tier }}礼遇已备好：{{ welcome_gift or '热情欢迎' }}，"
        "可延迟退房至{{ perks.late_checkout or '12:00' }}。",
    },
}


#: The demo's hotel settings (the demo sets up its own tiers, so no defaults are seeded).
DEMO_SETTINGS: dict[str, Any] = {
    "seed_defaults": False,
    "brand_points_per_unit": {"express": 5},
    "tier_bonus_percent": {"silver": 20, "gold": 80, "diamond": 100},
    "perks": {
        "silver": {"priority_check_in": True, "late_checkout": "14:00"},
        "gold": {"priority_check_in": True, "late_checkout": "14:00", "welcome_gift": True},
        "diamond": {"priority_check_in": True, "late_checkout": "16:00", "welcome_gift": True, "butler": True},
    },
    "pre_arrival_tiers": ["gold", "diamond"],
}


async def seed(ctx: DemoContext) -> DemoSeeded:
    return await _HotelDemo(ctx).seed()


def demo_tenants() -> list[DemoTenant]:
    """What the plugin's ``fealty_demo_tenants`` answers."""
    return [
        DemoTenant(
            slug_suffix="hotel",
            name="Grand Hotels (demo)",
            currency="GBP",
            timezone="Europe/London",
            country="GB",
            locale="en-GB",
            settings=DEMO_SETTINGS,
            program={"points_name": "Grand Points", "expiry_policy": {"kind": "inactivity", "value": 24}},
            key_variable="KH",
            seed=seed,
        )
    ]
