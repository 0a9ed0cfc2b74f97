"""The models Fealty ships: a tenant copies one (``POST /v1/measurement/models/copy``) and tunes it.

The loyalty model follows the operators' texts: behaviour (frequency, recency, spend, tenure), the customer's nature
(government, key account, business or retail; products held; services used) and commitment (sole provider or not,
switched provider before). The satisfaction model's leaves are survey factors. Every matrix is consistent (CR < 0.10).
"""

from __future__ import annotations

from typing import Any

from core.measurement.spec import Kind, ModelSpec, decode


def _linear(source: str, low: float, high: float, default: float = 0.0) -> dict[str, Any]:
    return {"source": source, "kind": "linear", "low": low, "high": high, "default": default}


LOYALTY: dict[str, Any] = {
    "judgements": [[2, 3], [2]],
    "factors": [
        {
            "code": "behaviour",
            "name": "Buying behaviour",
            "judgements": [[1, 2, 3], [2, 3], [2]],
            "factors": [
                {
                    "code": "frequency",
                    "name": "Purchases in the window",
                    "mapping": _linear("loyalty.frequency", 0, 24),
                },
                {
                    "code": "recency",
                    "name": "Days since the last purchase (fewer is better)",
                    "mapping": _linear("loyalty.recency_days", 365, 0),
                },
                {"code": "monetary", "name": "Spend in the window", "mapping": _linear("loyalty.monetary", 0, 1000)},
                {"code": "tenure", "name": "Days as a member", "mapping": _linear("loyalty.tenure_days", 0, 1095)},
            ],
        },
        {
            "code": "nature",
            "name": "Customer nature",
            "judgements": [[2, 2], [1]],
            "factors": [
                {
                    "code": "customer_nature",
                    "name": "Government, key account, business or retail",
                    "mapping": {
                        "source": "member.attributes.customer_nature",
                        "kind": "categories",
                        "categories": {"government": 100, "key_account": 90, "business": 70, "retail": 50},
                        "default": 50,
                    },
                },
                {
                    "code": "products_held",
                    "name": "Products held",
                    "mapping": _linear("member.attributes.products_held", 0, 5),
                },
                {
                    "code": "services_used",
                    "name": "Services used",
                    "mapping": _linear("member.attributes.services_used", 0, 5),
                },
            ],
        },
        {
            "code": "commitment",
            "name": "Commitment",
            "judgements": [[2]],
            "factors": [
                {
                    "code": "sole_provider",
                    "name": "We are the only provider",
                    "mapping": {"source": "member.attributes.sole_provider", "kind": "boolean", "default": 50},
                },
                {
                    "code": "never_switched",
                    "name": "Has not switched provider before",
                    "mapping": {
                        "source": "member.attributes.switched_provider_before",
                        "kind": "categories",
                        "categories": {"true": 0, "false": 100},
                        "default": 50,
                    },
                },
            ],
        },
    ],
}

SATISFACTION: dict[str, Any] = {
    "judgements": [[1, 2, 3], [2, 3], [2]],
    "factors": [
        {
            "code": "product",
            "name": "Product",
            "judgements": [[3]],
            "factors": [{"code": "quality", "name": "Quality"}, {"code": "range", "name": "Range"}],
        },
        {
            "code": "service",
            "name": "Service",
            "judgements": [[2, 1], ["1/2"]],
            "factors": [
                {"code": "staff", "name": "Staff"},
                {"code": "speed", "name": "Speed"},
                {"code": "complaint_handling", "name": "Complaint handling"},
            ],
        },
        {"code": "value_for_money", "name": "Value for money"},
        {
            "code": "convenience",
            "name": "Convenience",
            "judgements": [[1]],
            "factors": [{"code": "locations", "name": "Locations"}, {"code": "digital", "name": "App and website"}],
        },
    ],
}

DEFAULTS: dict[str, tuple[Kind, str, dict[str, Any]]] = {
    "loyalty": ("loyalty", "Loyalty index (default)", LOYALTY),
    "satisfaction": ("satisfaction", "Satisfaction index (default)", SATISFACTION),
}


def default_spec(name: str) -> tuple[Kind, str, ModelSpec]:
    kind, title, data = DEFAULTS[name]
    return kind, title, decode(data)
