from __future__ import annotations

import uuid

import pytest

from core.tenancy import keys


def test_tenant_key_round_trip() -> None:
    tenant_id, key_id = uuid.uuid4(), uuid.uuid4()
    raw = keys.new_tenant_key(tenant_id, key_id)
    parsed = keys.parse_tenant_key(raw)
    assert parsed == keys.ParsedTenantKey(tenant_id, key_id, raw)
    assert keys.keys_match(raw, keys.hash_key(raw))
    assert not keys.keys_match(raw + "x", keys.hash_key(raw))
    assert raw not in keys.key_hint(raw) and keys.key_hint(raw).endswith(raw[-4:])


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "fty_",
        "fty_abc_def_ghi",
        "ftp_x",
        "fty_" + "0" * 32 + "_" + "1" * 32 + "_",
        "fty_" + "z" * 32 + "_" + "1" * 32 + "_s",
        "x" * 500,
    ],
)
def test_malformed_keys_do_not_parse(raw: str) -> None:
    assert keys.parse_tenant_key(raw) is None


@pytest.mark.parametrize(
    ("granted", "required", "allowed"),
    [
        ({"admin"}, "reports:read", True),
        ({"members:write"}, "members:read", True),
        ({"members:read"}, "members:write", False),
        ({"events:write"}, "members:read", False),
        ({"reports:read"}, "admin", False),
        (set(), None, True),
    ],
)
def test_scope_rules(granted: set[str], required: str | None, allowed: bool) -> None:
    assert keys.scope_allows(frozenset(granted), required) is allowed
