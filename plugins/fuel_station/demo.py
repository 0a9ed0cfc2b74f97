"""The fuel network of ``fealty demo`` (``make demo``), seeded through core's demo hook (``fealty_demo_tenants``).

``<prefix>-fuel``: a fuel network around Shanghai (CNY, earning per currency unit), six sites of which a franchise
does not take part, levels on 90 days of spend, 30 drivers (taxis, commuters, weekend drivers, truckers, lapsed and
new) and three months of fill-ups and shop purchases: capped months, a fill-up held for review (more litres than a
tank), a repeat fill rejected by a reviewer, win-back care for who stopped coming, a cents-off voucher used at the
pump. Everything goes through the tenant's HTTP API (``ctx.api``), as the pumps, the tills and the reviewers would.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from core import DemoContext, DemoSeeded, DemoTenant


def money(value: float | Decimal | str) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


#: code, name, region, overrides; the last one does not take part in the programme.
FUEL_SITES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("SH-001", "Pudong Expressway", "Shanghai", {}),
    ("SH-002", "Hongqiao Transport Hub", "Shanghai", {}),
    ("SH-003", "Minhang South", "Shanghai", {}),
    ("SZ-101", "Suzhou Industrial Park", "Suzhou", {}),
    ("TRUCK-7", "G15 Truck Stop", "Jiaxing", {"tank_size_litres": "600", "daily_max_litres": "1200"}),
    ("HZ-900", "Hangzhou Bay (franchise)", "Hangzhou", {}),
]
NOT_PARTICIPATING = "HZ-900"
#: Pump prices, CNY a litre.
FUEL_PRICES = {"gasoline": Decimal("7.82"), "premium": Decimal("8.36"), "diesel": Decimal("7.49")}

FUEL_LEVELS: list[dict[str, Any]] = [
    {"code": "member", "name": "Member", "rank": 0},
    {
        "code": "silver",
        "name": "Silver",
        "rank": 1,
        "downgrade": "to_qualified",
        "validity": {"kind": "days", "days": 30},
        "qualification": {
            "window": {"kind": "rolling_days", "days": 90},
            "criteria": [{"metric": "fuel_spend", "min": "2500"}],
        },
    },
    {
        "code": "gold",
        "name": "Gold",
        "rank": 2,
        "downgrade": "to_qualified",
        "validity": {"kind": "days", "days": 30},
        "qualification": {
            "window": {"kind": "rolling_days", "days": 90},
            "mode": "any",
            "criteria": [{"metric": "fuel_spend", "min": "6000"}, {"metric": "fill_ups", "min": "18"}],
        },
    },
]

#: How each kind of driver fills up: days between fill-ups, litres, grades, sites, how often they shop.
DRIVER_PROFILES: dict[str, dict[str, Any]] = {
    "taxi": {"gap": (1, 2), "litres": (35, 50), "grades": ["gasoline"], "sites": 1, "shop": 0.3},
    "commuter": {"gap": (5, 9), "litres": (35, 55), "grades": ["gasoline"] * 3 + ["premium"], "sites": 2, "shop": 0.4},
    "weekend": {"gap": (10, 20), "litres": (30, 60), "grades": ["premium", "gasoline"], "sites": 2, "shop": 0.5},
    "trucker": {"gap": (2, 4), "litres": (250, 450), "grades": ["diesel"], "sites": 0, "shop": 0.3},
    "lapsed": {"gap": (5, 10), "litres": (30, 50), "grades": ["gasoline"], "sites": 1, "shop": 0.3},
    "new": {"gap": (4, 8), "litres": (30, 50), "grades": ["gasoline", "premium"], "sites": 1, "shop": 0.4},
}
DRIVERS: list[tuple[str, str]] = [
    ("Wang Wei", "taxi"),
    ("Li Na", "taxi"),
    ("Zhang Lei", "commuter"),
    ("Liu Yang", "commuter"),
    ("Chen Jing", "commuter"),
    ("Yang Fan", "commuter"),
    ("Zhao Min", "commuter"),
    ("Huang Tao", "commuter"),
    ("Zhou Xin", "commuter"),
    ("Wu Hao", "commuter"),
    ("Xu Li", "commuter"),
    ("Sun Qiang", "commuter"),
    ("Ma Jun", "commuter"),
    ("Zhu Hong", "taxi"),
    ("Hu Bin", "commuter"),
    ("Guo Ying", "weekend"),
    ("He Peng", "weekend"),
    ("Gao Yan", "weekend"),
    ("Lin Feng", "weekend"),
    ("Luo Mei", "weekend"),
    ("Zheng Kai", "weekend"),
    ("Liang Hui", "weekend"),
    ("Song Jie", "trucker"),
    ("Xie Lan", "trucker"),
    ("Tang Rui", "lapsed"),
    ("Han Bo", "lapsed"),
    ("Feng Xue", "lapsed"),
    ("Deng Chao", "lapsed"),
    ("Cao Ning", "new"),
    ("Peng Yu", "new"),
]
#: Days ago the lapsed drivers stopped coming: two inside the retention report's cohort window (churned), two
#: long enough ago for the win-back job.
LAPSED_DAYS_AGO = (38, 47, 66, 75)
SHOP_ITEMS = [("coffee", 12, 28), ("snacks", 6, 35), ("car_care", 25, 120), ("drinks", 4, 15)]


class _FuelDemo:
    """The fuel network's seeding, through the tenant's API (``ctx.api``)."""

    history_days = 91

    def __init__(self, ctx: DemoContext) -> None:
        self.ctx = ctx
        self.api = ctx.api
        self.rng = ctx.rng
        self.now = ctx.now
        self.today = ctx.today
        self.local = ctx.local
        self.currency = ctx.currency

    def drivers(self) -> list[dict[str, Any]]:
        members = []
        for i, (name, profile) in enumerate(DRIVERS):
            member: dict[str, Any] = {
                "external_id": f"D-{2001 + i}",
                "card": f"622200{1230001 + i}",
                "name": name,
                "phone": f"139 {self.rng.randrange(10**4):04d} {self.rng.randrange(10**4):04d}",
                "locale": "zh-CN",
                "attributes": {"profile": profile},
                "consents": [{"channel": "sms", "purpose": "marketing", "granted": self.rng.random() < 0.5}],
            }
            members.append(member)
        return members

    def fill_up(self, card: str, at: datetime, site: str, grade: str, litres: Decimal, event_id: str) -> dict[str, Any]:
        return {
            "type": "fuel.fill_up",
            "event_id": event_id,
            "member": {"card": card},
            "occurred_at": iso(at),
            "quantity": str(litres),
            "unit": "litre",
            "amount": money(litres * FUEL_PRICES[grade]),
            "currency": self.currency,
            "attributes": {
                "site": site,
                "pump": self.rng.randint(1, 12),
                "grade": grade,
                "payment_method": self.rng.choice(["card", "mobile", "mobile", "cash"]),
            },
        }

    def history(self, members: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        regular_sites = [code for code, *_ in FUEL_SITES if code not in ("TRUCK-7", NOT_PARTICIPATING)]
        lapsed = iter(LAPSED_DAYS_AGO)
        receipt = 880000
        for member in members:
            profile_name = member["attributes"]["profile"]
            profile = DRIVER_PROFILES[profile_name]
            homes = self.rng.sample(regular_sites, profile["sites"]) if profile["sites"] else ["TRUCK-7"]
            first = self.today - timedelta(days=self.history_days - self.rng.randint(0, profile["gap"][1]))
            last = self.today - timedelta(days=1)
            if profile_name == "new":
                first = self.today - timedelta(days=self.rng.randint(15, 25))
            if profile_name == "lapsed":
                last = self.today - timedelta(days=next(lapsed))
            day = first
            while day <= last:
                at = self.local(day, self.rng.randint(6, 21), self.rng.randint(0, 59))
                site = self.rng.choice(homes)
                if profile_name == "weekend" and self.rng.random() < 0.08:
                    site = NOT_PARTICIPATING  # a franchise station outside the programme: earns nothing
                grade = self.rng.choice(profile["grades"])
                litres = Decimal(self.rng.randint(profile["litres"][0] * 100, profile["litres"][1] * 100)) / 100
                receipt += self.rng.randint(1, 9)
                events.append(self.fill_up(member["card"], at, site, grade, litres, f"{site}-R-{receipt}"))
                if self.rng.random() < profile["shop"] and site != NOT_PARTICIPATING:
                    category, low, high = self.rng.choice(SHOP_ITEMS)
                    receipt += 1
                    events.append(
                        {
                            "type": "fuel.shop_purchase",
                            "event_id": f"{site}-R-{receipt}",
                            "member": {"card": member["card"]},
                            "occurred_at": iso(at + timedelta(minutes=self.rng.randint(2, 8))),
                            "amount": money(self.rng.randint(low * 100, high * 100) / 100),
                            "currency": self.currency,
                            "attributes": {"site": site, "category": category},
                        }
                    )
                day += timedelta(days=self.rng.randint(*profile["gap"]))
        return events

    async def seed(self) -> DemoSeeded:
        api = self.api
        sites = {}
        for code, name, region, overrides in FUEL_SITES:
            sites[code] = await api.post("/v1/fuel/sites", {"code": code, "name": name, "region": region} | overrides)
        await api.patch(f"/v1/fuel/sites/{sites[NOT_PARTICIPATING]['id']}", {"participating": False})
        for level in FUEL_LEVELS:
            await api.post("/v1/tiers", level)
        cents_off = await api.post(
            "/v1/rewards",
            {
                "code": "FUEL-2000",
                "name": "20 fen off a litre",
                "points_cost": 2000,
                "kind": "fuel.cents_off",
                "voucher_valid_days": 90,
            },
        )
        coffee = await api.post(
            "/v1/rewards",
            {"code": "FREE-COFFEE", "name": "A free coffee in the shop", "points_cost": 400, "voucher_valid_days": 30},
        )

        await self.ctx.care([("fuel.win_back", FUEL_WIN_BACK, {"channels": ["sms"], "purpose": "marketing"})])
        members = self.drivers()
        ids = await api.enrol(members)
        statuses = await api.send_events(self.history(members))
        await self.ctx.work()  # levels renew or move down, win-back care requests for who stopped coming

        by_name = {m["name"]: m for m in members}
        roles = {
            "taxi": "Wang Wei",
            "commuter": "Zhang Lei",
            "trucker": "Song Jie",
            "lapsed": "Deng Chao",
            "new": "Cao Ning",
        }
        # Today: a fill-up of more litres than a car's tank is held for review ...
        commuter = by_name[roles["commuter"]]
        held = await api.send_event(
            self.fill_up(
                commuter["card"],
                self.now - timedelta(hours=3),
                "SH-002",
                "gasoline",
                Decimal("128.40"),
                "SH-002-R-990001",
            )
        )
        # ... and a second fill at the same pump within minutes, which a reviewer rejects.
        taxi = by_name[roles["taxi"]]
        first_fill = self.now - timedelta(hours=5)
        await api.send_event(
            self.fill_up(taxi["card"], first_fill, "SH-001", "gasoline", Decimal("41.20"), "SH-001-R-990002")
        )
        repeat = await api.send_event(
            self.fill_up(
                taxi["card"],
                first_fill + timedelta(minutes=11),
                "SH-001",
                "gasoline",
                Decimal("38.75"),
                "SH-001-R-990003",
            )
        )
        if repeat["status"] == "held":
            await api.post(
                f"/v1/fuel/reviews/{repeat['id']}/reject",
                {"reason": "the same card twice within minutes: a customer's fill-up on a staff card (CCTV)"},
            )
        # The taxi driver turns 2,000 points into 20 fen off a litre, used at the pump; a commuter takes a coffee.
        taxi_id = ids[taxi["external_id"]]
        voucher = await api.post("/v1/redemptions", {"member_id": taxi_id, "reward_id": cents_off["id"]})
        discount = await api.post(
            f"/v1/fuel/redemptions/{voucher['id']}/apply",
            {"litres": "42.50", "price_per_litre": str(FUEL_PRICES["gasoline"]), "site": "SH-001"},
        )
        coffee_voucher = await api.post(
            "/v1/redemptions", {"member_id": ids[commuter["external_id"]], "reward_id": coffee["id"]}
        )
        await api.post(f"/v1/redemptions/{coffee_voucher['id']}/use", {"location": "SH-002 shop"})
        await self.ctx.work()

        extras = {
            "held_event": held["id"],
            "held_status": held["status"],
            "cents_off_redemption": voucher["id"],
            "amount_off": discount["amount_off"],
        }
        chosen = {role: ids[by_name[name]["external_id"]] for role, name in roles.items()}
        return DemoSeeded(
            members=chosen,
            extras=extras,
            counts={"sites": len(FUEL_SITES), "history_awarded": statuses["awarded"]},
            lines=await self.what_to_try(chosen, held["id"]),
        )

    async def what_to_try(self, members: dict[str, str], held: str) -> list[str]:
        """The lines ``fealty demo`` prints for the fuel network: a taxi driver, the held fill-up, what to ask."""
        f = f'-H "Authorization: Bearer ${self.ctx.key_variable}"'
        return [
            f"DRIVER={members['taxi']}   # {await self.ctx.describe(members['taxi'])} (a taxi driver)",
            f"HELD={held}   # a fill-up held for review: more litres than a car's tank",
            "# Fuel: the review queue, the retention report, win-back requests, a driver's balance and capped awards",
            f"curl -s $B/v1/fuel/reviews {f}",
            f'curl -s "$B/v1/fuel/reviews?status=rejected" {f}',
            f'curl -s "$B/v1/fuel/reports/retention?days=30" {f}',
            f'curl -s "$B/v1/care/requests?kind=fuel.win_back" {f}',
            f"curl -s $B/v1/members/$DRIVER/balance {f}",
            f'curl -s "$B/v1/members/$DRIVER/ledger?limit=5" {f}',
            f"curl -s $B/v1/members/$DRIVER/tier {f}",
            f"curl -s $B/v1/fuel/sites {f}",
            "# Decide the held fill-up (it earns now, once):",
            f"curl -s -X POST $B/v1/fuel/reviews/$HELD/approve {f} -H 'content-type: application/json' \\",
            '  -d \'{"reason": "two cars on one card, CCTV checked"}\'',
        ]


FUEL_WIN_BACK = {
    "zh-CN": {"body": "好久不见！{{ days_inactive }}天没来加油了，本周加油每升立减0.2元。"},
    "en": {"body": "We miss you! 20 fen off a litre this week."},
}


async def seed(ctx: DemoContext) -> DemoSeeded:
    return await _FuelDemo(ctx).seed()


def demo_tenants() -> list[DemoTenant]:
    """What the plugin's ``fealty_demo_tenants`` answers."""
    return [
        DemoTenant(
            slug_suffix="fuel",
            name="Huangpu Energy (demo)",
            currency="CNY",
            timezone="Asia/Shanghai",
            country="CN",
            locale="zh-CN",
            # the demo sets up its own levels
            settings={"seed_defaults": False, "earn_mode": "per_amount", "monthly_points_cap": 7000},
            program={"points_name": "Huangpu Points"},
            key_variable="KF",
            seed=seed,
        )
    ]
