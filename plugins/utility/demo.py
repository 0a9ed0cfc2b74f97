"""The utility's demo tenant in ``fealty demo``: a power supply company in Jiangsu (CNY, zh-CN), seeded through the
real HTTP API — accounts on three feeders, PSR customers, a large customer with a manager, SMEs by rating, a planned
outage with its notices, an unplanned outage restored after 15 hours with its compensation, on-time payers, a
peak-time event tomorrow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core import DemoContext, DemoSeeded, DemoTenant

CUSTOMERS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    # external id, name, feeder, class, extra account fields
    (
        "JS-1001",
        "王芳",
        "F-101",
        "residential",
        {"psr": {"needs": ["medical_equipment"], "consent": True, "source": "customer-call"}},
    ),
    ("JS-1002", "李强", "F-101", "residential", {}),
    (
        "JS-1003",
        "张伟",
        "F-101",
        "residential",
        {"psr": {"needs": ["pension_age"], "consent": True, "source": "community-office"}},
    ),
    ("JS-1004", "刘洋", "F-101", "sme", {"credit_rating": "A"}),
    ("JS-1005", "陈静", "F-102", "residential", {}),
    (
        "JS-1006",
        "杨磊",
        "F-102",
        "residential",
        {"psr": {"needs": ["children_under_5"], "consent": True, "source": "web-form"}},
    ),
    ("JS-1007", "赵敏", "F-102", "sme", {"credit_rating": "D"}),
    ("JS-1008", "南京钢铁厂", "F-102", "large", {"account_manager": "zhou.jie"}),
    ("JS-1009", "孙丽", "F-103", "residential", {}),
    ("JS-1010", "周涛", "F-103", "residential", {}),
    ("JS-1011", "吴霞", "F-103", "public", {}),
    ("JS-1012", "郑浩", "F-103", "residential", {}),
]

COMMON = "户号{{ account_number }}（{{ premises_address }}）"
TEXTS = {
    "utility.planned_notice": "计划停电通知："
    + COMMON
    + "将于{{ starts_at|datetime }}至{{ ends_at|datetime }}停电，原因：{{ reason }}。"
    "{% if late %}（本通知晚于规定提前期，敬请谅解）{% endif %}咨询{{ contact_line }}",
    "utility.planned_reminder": "停电提醒：" + COMMON + "将于{{ starts_at|datetime }}停电，请提前做好准备。",
    "utility.outage_alert": "停电告知："
    + COMMON
    + "所在线路故障停电，预计{{ etr|datetime }}恢复。咨询{{ contact_line }}",
    "utility.etr_update": "抢修进度：" + COMMON + "预计恢复时间调整为{{ etr|datetime }}。",
    "utility.restored": "恢复供电：" + COMMON + "已于{{ restored_at|datetime }}恢复供电。如仍停电请回复“仍然停电”。",
    "utility.compensation": "停电补偿：" + COMMON + "停电{{ hours }}小时，补偿{{ amount }}元已按积分计入。",
    "utility.peak_event": "用电高峰：{{ name }}，{{ starts_at|datetime }}至{{ ends_at|datetime }}少用电，"
    "每节约1千瓦时返{{ rate_per_kwh }}元。",
}
EN = "Account {{ account_number }} ({{ premises_address }}): "
ENGLISH = {
    "utility.planned_notice": EN + "planned outage {{ starts_at|datetime }} to {{ ends_at|datetime }} ({{ reason }}).",
    "utility.planned_reminder": EN + "reminder: planned outage from {{ starts_at|datetime }}.",
    "utility.outage_alert": EN + "power cut, expected back by {{ etr|datetime }}. Call {{ contact_line }}.",
    "utility.etr_update": EN + "now expected back by {{ etr|datetime }}.",
    "utility.restored": EN + "power restored at {{ restored_at|datetime }}. Still out? Reply STILL OUT.",
    "utility.compensation": EN + "{{ hours }} hours without power: {{ amount }} credited as points.",
    "utility.peak_event": "{{ name }}: use less from {{ starts_at|datetime }}, earn {{ rate_per_kwh }} a kWh saved.",
}
SAFETY = {"utility.outage_alert", "utility.etr_update"}


async def seed(ctx: DemoContext) -> DemoSeeded:
    api = ctx.api
    ids = await api.enrol(
        [
            {
                "external_id": ext,
                "name": name,
                "phone": f"+86139{1000_0000 + i:08d}",
                "email": f"{ext.lower()}@example.cn",
                "locale": "zh-CN",
            }
            for i, (ext, name, _, _, _) in enumerate(CUSTOMERS)
        ]
    )
    await ctx.care(
        [
            (
                trigger,
                {
                    "zh-CN": {"subject": "江苏供电", "body": text, "sms": text},
                    "en": {"subject": "Jiangsu Power", "body": ENGLISH[trigger]},
                },
                {"channels": ["sms" if trigger in SAFETY else "email"]},
            )
            for trigger, text in TEXTS.items()
        ]
    )
    accounts = {}
    for i, (ext, _, feeder, klass, extra) in enumerate(CUSTOMERS):
        made = await api.post(
            "/v1/utility/accounts",
            {
                "member_id": ids[ext],
                "account_number": f"32010{i + 1:05d}",
                "premises_address": f"南京市鼓楼区中山路{88 + i}号",
                "feeder": feeder,
                "area": "GL-03",
                "customer_class": klass,
                **extra,
            },
        )
        accounts[ext] = made["id"]
    # on-time payers: three months of bills, the last one of JS-1002 late
    events = []
    for month in range(3, 0, -1):
        due = ctx.today - timedelta(days=30 * month - 10)
        for i, (ext, *_) in enumerate(CUSTOMERS[:8]):
            late = ext == "JS-1002" and month == 1
            paid = due + timedelta(days=4 if late else -ctx.rng.randint(0, 6))
            events.append(
                {
                    "type": "utility.bill_paid",
                    "event_id": f"bill-{ext}-{month}",
                    "member": {"external_id": ext},
                    "occurred_at": ctx.local(paid, 10).isoformat(),
                    "amount": f"{ctx.rng.randint(60, 420)}.{ctx.rng.randint(0, 99):02d}",
                    "currency": "CNY",
                    "attributes": {
                        "account_number": f"32010{i + 1:05d}",
                        "bill_id": f"B{due:%Y%m}-{i + 1}",
                        "due_date": due.isoformat(),
                        "paid_date": paid.isoformat(),
                    },
                }
            )
    for i in (0, 4, 8):
        events.append(
            {
                "type": "utility.paperless_enrolled",
                "event_id": f"paperless-{i}",
                "member": {"external_id": CUSTOMERS[i][0]},
                "occurred_at": ctx.local(ctx.today - timedelta(days=40), 9).isoformat(),
                "attributes": {"account_number": f"32010{i + 1:05d}"},
            }
        )
    await api.send_events(events)
    # an unplanned outage on F-102 that began 15 hours ago, restored now: its alerts, restoration and compensation
    unplanned = await api.post(
        "/v1/utility/outages",
        {
            "kind": "unplanned",
            "feeders": ["F-102"],
            "starts_at": (ctx.now - timedelta(hours=15)).isoformat(),
            "etr": (ctx.now - timedelta(hours=11)).isoformat(),
            "reason": "台风导致线路故障",
            "contact_line": "95598",
            "reference": "OMS-20261205-01",
        },
    )
    await api.patch(f"/v1/utility/outages/{unplanned['id']}", {"etr": (ctx.now - timedelta(hours=1)).isoformat()})
    await api.post(f"/v1/utility/outages/{unplanned['id']}/restore", {"restored_at": ctx.now.isoformat()})
    # a planned outage on F-101 a week ahead: the priority customers were told (10 days' notice, late), the others
    # are told 7 days before by the worker
    start = ctx.local(ctx.today + timedelta(days=7), 8)
    planned = await api.post(
        "/v1/utility/outages",
        {
            "kind": "planned",
            "feeders": ["F-101"],
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=8)).isoformat(),
            "reason": "线路检修",
            "contact_line": "95598",
        },
    )
    # a peak-time event tomorrow evening on F-103: announced today
    peak_start = ctx.local(ctx.today + timedelta(days=1), 17)
    peak = await api.post(
        "/v1/utility/peak-events",
        {
            "name": "夏季晚高峰",
            "starts_at": peak_start.isoformat(),
            "ends_at": (peak_start + timedelta(hours=3)).isoformat(),
            "feeders": ["F-103"],
        },
    )
    await ctx.work()
    key = f"${ctx.key_variable}"
    return DemoSeeded(
        members={"medical": ids["JS-1001"], "large": ids["JS-1008"], "sme_a": ids["JS-1004"]},
        extras={"unplanned_outage": unplanned["id"], "planned_outage": planned["id"], "peak_event": peak["id"]},
        counts={"accounts": len(accounts), "outages": 2},
        lines=[
            f"OUTAGE={unplanned['id']}   # 15 hours on F-102, restored: compensation paid as points",
            f'curl -s $B/v1/utility/outages/$OUTAGE/compensation -H "Authorization: Bearer {key}"',
            f'curl -s "$B/v1/messages?trigger=utility.outage_alert" -H "Authorization: Bearer {key}"',
            f'curl -s "$B/v1/utility/call-tasks" -H "Authorization: Bearer {key}"',
            f'curl -s $B/v1/utility/outages/{planned["id"]}/accounts -H "Authorization: Bearer {key}"',
        ],
    )


def demo_tenants() -> list[DemoTenant]:
    return [
        DemoTenant(
            slug_suffix="power",
            name="江苏供电 Jiangsu Power (demo)",
            currency="CNY",
            timezone="Asia/Shanghai",
            country="CN",
            locale="zh-CN",
            settings={
                "compensation_payment": "points",
                "points_per_unit": "10",
                "normal_payment_domestic": "50",
                "normal_payment_business": "200",
                "normal_increment": "20",
            },
            program={"points_name": "电力积分"},
            key_variable="KP",
            seed=seed,
        )
    ]
