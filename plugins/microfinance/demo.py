"""The rural lender of ``fealty demo`` (``make demo``), seeded through core's demo hook (``fealty_demo_tenants``).

``<prefix>-microfinance``: a rural lender in Huai'an (CNY, zh-CN), 60 borrowers in 12 joint-liability groups of five
in three centres, each trained in integrity before signing; a weekly flat product and a monthly declining-balance one;
a year of repayments through ``POST /v1/events/batch`` (most on time, a few late or partial, three borrowers who
stopped paying six weeks ago: PAR30 to read), weekly group meetings with their attendance, use-of-funds and monthly
visits with the forms the borrowers signed, a bereavement, care rules for reminders, arrears notices and birthday
greetings, then the nightly job's follow-up tasks. Everything goes through the tenant's HTTP API (``ctx.api``).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from core import DemoContext, DemoSeeded, DemoTenant

SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙"]
GIVEN = ["秀英", "建华", "桂兰", "国强", "玉梅", "志刚", "红霞", "海燕", "德明", "春花"]
BUSINESSES = ["生猪养殖", "蔬菜大棚", "小卖部", "水产养殖", "农机维修", "家禽养殖"]
VILLAGES = ["清江村", "涟水村", "洪泽村", "盱眙村"]
CENTRES = ["清江浦中心", "涟水中心", "洪泽中心"]
OFFICERS = ["officer-wang", "officer-li", "officer-zhou"]
#: Borrowers (by index) who stopped paying six weeks ago, paid late, or paid in part.
STOPPED = {6, 22, 40}
LATE = {3, 12, 30, 48, 55}
PARTIAL = {9, 27, 50}


def _weekly_product() -> dict[str, Any]:
    return {
        "code": "WEEKLY52",
        "name": "每周还款 · 一年期",
        "interest_method": "flat",
        "annual_rate": "10",
        "frequency": "weekly",
        "instalments": 52,
        "min_principal": "5000",
        "max_principal": "100000",
        "late_penalty": "20",
        "penalty_after_days": 3,
    }


def _monthly_product() -> dict[str, Any]:
    return {
        "code": "MONTHLY12",
        "name": "按月还款 · 等额本息",
        "interest_method": "declining",
        "annual_rate": "12",
        "frequency": "monthly",
        "instalments": 12,
        "min_principal": "5000",
        "max_principal": "100000",
    }


async def seed(ctx: DemoContext) -> DemoSeeded:
    api, rng, today = ctx.api, ctx.rng, ctx.today
    weekly = await api.post("/v1/microfinance/products", _weekly_product())
    monthly = await api.post("/v1/microfinance/products", _monthly_product())
    groups = [
        await api.post(
            "/v1/microfinance/groups",
            {"name": f"第{n + 1}组", "centre": CENTRES[n % 3], "meeting_day": n % 5},
        )
        for n in range(12)
    ]
    members = [
        {
            "external_id": f"HA-{i + 1:03d}",
            "name": SURNAMES[i % 12] + GIVEN[(i * 7) % 10],
            "phone": f"+86138{51700000 + i:08d}",
            "birthday": date(1965 + i % 30, 1 + i % 12, 1 + (i * 3) % 28).isoformat(),
            "timezone": "Asia/Shanghai",
            "locale": "zh-CN",
        }
        for i in range(60)
    ]
    ids = await api.enrol(members)
    events: list[dict[str, Any]] = []
    loans: list[dict[str, Any]] = []
    for i, body in enumerate(members):
        member_id = ids[body["external_id"]]
        group = groups[i // 5]
        officer = OFFICERS[(i // 5) % 3]
        is_weekly = i % 2 == 0
        principal = Decimal(rng.randrange(20, 80) * 1000)
        # enough household income for the instalments (weekly: 1/52 principal + interest, about 4.8% a month)
        income = (principal * Decimal("0.25")).quantize(Decimal(100)) if is_weekly else principal / 4
        await api.call(
            "PUT",
            f"/v1/microfinance/borrowers/{member_id}",
            {
                "household_income_monthly": str(income),
                "business": BUSINESSES[i % len(BUSINESSES)],
                "village": VILLAGES[i % len(VILLAGES)],
                "officer": officer,
            },
        )
        disbursed = today - timedelta(days=rng.randrange(300, 365) if is_weekly else rng.randrange(200, 390))
        await api.post(
            f"/v1/microfinance/borrowers/{member_id}/training",
            {"trained_on": (disbursed - timedelta(days=7)).isoformat(), "trainer": "诚信培训 · 刘老师"},
        )
        await api.post(f"/v1/microfinance/groups/{group['id']}/members", {"member_id": member_id, "leader": i % 5 == 0})
        product = weekly if is_weekly else monthly
        loan = await api.post(
            "/v1/microfinance/loans",
            {
                "member_id": member_id,
                "product_id": product["id"],
                "principal": str(principal),
                "purpose": BUSINESSES[i % len(BUSINESSES)],
            },
        )
        await api.post(f"/v1/microfinance/loans/{loan['id']}/approve", {})
        await api.post(f"/v1/microfinance/loans/{loan['id']}/sign", {})
        await api.post(f"/v1/microfinance/loans/{loan['id']}/disburse", {"disbursed_on": disbursed.isoformat()})
        schedule = await api.get(f"/v1/microfinance/loans/{loan['id']}/schedule")
        loans.append({"i": i, "member_id": member_id, "loan": loan, "disbursed": disbursed, "officer": officer})
        for inst in schedule["instalments"]:
            due = date.fromisoformat(inst["due_on"])
            if due >= today or (i in STOPPED and due >= today - timedelta(days=42)):
                continue
            paid_on, amount = due, Decimal(inst["total"])
            if i in LATE and inst["no"] % 6 == 0:
                paid_on = due + timedelta(days=rng.randrange(3, 20))
            if i in PARTIAL and inst["no"] % 8 == 0:
                amount = (amount / 2).quantize(Decimal("0.01"))
            if paid_on >= today:
                continue
            events.append(
                {
                    "type": "microfinance.repayment",
                    "event_id": f"HA-PAY-{loan['id'][-12:]}-{inst['no']}",
                    "member": {"member_id": member_id},
                    "occurred_at": ctx.local(paid_on, 9, rng.randrange(0, 480)).isoformat(),
                    "amount": str(amount),
                    "currency": "CNY",
                    "attributes": {"loan_id": loan["id"], "channel": "group meeting"},
                }
            )
    statuses = await api.send_events(events)
    # Weekly meetings for the last four weeks; one borrower in group 4 mostly away.
    meetings = 0
    for n, group in enumerate(groups):
        for week in range(4, 0, -1):
            held = today - timedelta(days=7 * week)
            present = [m for m in group["members"] if not (n == 3 and m == group["members"][-1] and week != 4)]
            await api.post(
                f"/v1/microfinance/groups/{group['id']}/meetings", {"held_on": held.isoformat(), "present": present}
            )
            meetings += 1
    # Use-of-funds visits (all but a few), then monthly visits for the most recent loans.
    visits = 0
    for entry in loans:
        if entry["i"] % 10 == 9:
            continue
        for month, kind in ((0, "use_of_funds"), (1, "monthly"), (2, "monthly")):
            day = entry["disbursed"] + timedelta(days=20 + 30 * month)
            if day >= today:
                break
            await api.post(
                "/v1/microfinance/follow-ups/visits",
                {
                    "loan_id": entry["loan"]["id"],
                    "officer": entry["officer"],
                    "visited_on": day.isoformat(),
                    "place": "借款人家中",
                    "kind": kind,
                    "use_of_funds": "购买仔猪和饲料" if kind == "use_of_funds" else None,
                    "business_state": "经营正常",
                    "needs": "希望参加养殖技术培训" if entry["i"] % 4 == 0 else None,
                    "feedback": "对服务满意",
                    "signature_ref": f"form-{entry['loan']['id'][-8:]}-{month}",
                },
            )
            visits += 1
    mourning = loans[12]["member_id"]
    await api.post(
        f"/v1/microfinance/borrowers/{mourning}/bereavements",
        {"starts_on": (today - timedelta(days=3)).isoformat(), "ends_on": (today + timedelta(days=10)).isoformat()},
    )
    await ctx.care(
        [
            (
                "microfinance.repayment_due",
                {
                    "zh-CN": {
                        "subject": "还款提醒",
                        "body": "您好，第{{ instalment }}期还款{{ amount }}元将于{{ due_on }}到期。",
                    },
                    "en": {
                        "subject": "Repayment due",
                        "body": "Instalment {{ instalment }}: {{ amount }} due {{ due_on }}.",
                    },
                },
                {"channels": ["sms"], "purpose": "service", "category": "reminder"},
            ),
            (
                "microfinance.arrears",
                {
                    "zh-CN": {"subject": "逾期提醒", "body": "您的贷款已逾期{{ days_past_due }}天，请联系信贷员。"},
                    "en": {"subject": "Overdue", "body": "Your loan is {{ days_past_due }} days overdue."},
                },
                {"channels": ["sms"], "purpose": "service", "category": "collection"},
            ),
            (
                "birthday",
                {
                    "zh-CN": {"subject": "生日快乐", "body": "{{ member.name }}，祝您生日快乐，身体健康！"},
                    "en": {"subject": "Happy birthday", "body": "Happy birthday, {{ member.name }}!"},
                },
                {"channels": ["sms"], "purpose": "service", "category": "greeting"},
            ),
        ]
    )
    await ctx.work()  # the nightly job: arrears, penalties, follow-up tasks; reminders through care
    tasks = await api.all_items("/v1/microfinance/follow-ups")
    par = await api.get("/v1/microfinance/reports/par", days=30)
    good = loans[0]["member_id"]
    late = loans[sorted(STOPPED)[0]]["member_id"]
    k = ctx.key_variable
    return DemoSeeded(
        members={"on_time": good, "in_arrears": late},
        extras={"par30": par["portfolio"]["par"], "late_loan": loans[sorted(STOPPED)[0]]["loan"]["id"]},
        counts={
            "borrowers": len(loans),
            "groups": len(groups),
            "repayments": statuses["awarded"],
            "meetings": meetings,
            "visits": visits,
            "follow_up_tasks": len(tasks),
        },
        lines=[
            f"BORROWER={late}   # stopped paying six weeks ago",
            f"LOAN={loans[sorted(STOPPED)[0]]['loan']['id']}",
            f'curl -s "$B/v1/microfinance/reports/par?days=30" -H "Authorization: Bearer ${k}"',
            f'curl -s $B/v1/microfinance/loans/$LOAN/schedule -H "Authorization: Bearer ${k}"',
            f'curl -s "$B/v1/microfinance/follow-ups?officer=officer-wang" -H "Authorization: Bearer ${k}"',
            f"# PAR30 today: {par['portfolio']['par']}",
        ],
    )


def demo_tenants() -> list[DemoTenant]:
    return [
        DemoTenant(
            slug_suffix="microfinance",
            name="淮安农村小额信贷 (demo)",
            currency="CNY",
            timezone="Asia/Shanghai",
            country="CN",
            locale="zh-CN",
            settings={"seed_defaults": True},
            program={"points_name": "信用积分"},
            key_variable="KM",
            seed=seed,
        )
    ]
