"""``fealty citus-ddl``: every tenant table distributed on tenant_id and co-located, every global table a reference
table, every table of core and the installed plugins exactly once, in an order Citus accepts."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import Table

import core.db.models  # noqa: F401  (registers every core model)
from core.cli import main
from core.db.base import Base, tenant_tables
from core.plugin.manager import installed_plugins

INSTALLED = installed_plugins()  # their models join Base.metadata
REFERENCE = re.compile(r"^SELECT create_reference_table\('(\w+)'\);$")
DISTRIBUTED = re.compile(r"^SELECT create_distributed_table\('(\w+)', '(\w+)', colocate_with => '(\w+)'\);$")


@pytest.fixture(scope="module")
def ddl() -> str:
    result = CliRunner().invoke(main, ["citus-ddl"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def statements(ddl: str) -> list[tuple[str, str, str | None, str | None]]:
    """(kind, table, distribution column, colocate_with) per statement, in order; every line a comment or one of
    the two statements."""
    out: list[tuple[str, str, str | None, str | None]] = []
    for line in ddl.splitlines():
        if not line or line.startswith("--"):
            continue
        if m := REFERENCE.match(line):
            out.append(("reference", m.group(1), None, None))
        elif m := DISTRIBUTED.match(line):
            out.append(("distributed", m.group(1), m.group(2), m.group(3)))
        else:
            pytest.fail(f"unexpected line: {line!r}")
    return out


def test_every_table_once(statements: list[tuple[str, str, str | None, str | None]]) -> None:
    names = [table for _, table, _, _ in statements]
    assert len(names) == len(set(names)), "a table twice"
    assert set(names) == set(Base.metadata.tables)
    if "hotel" in INSTALLED:
        assert {"hotel_stays", "hotel_milestones"} <= set(names)
    if "fuel" in INSTALLED:
        assert "fuel_transactions" in names


def test_every_tenant_table_is_distributed_on_tenant_id_and_co_located(
    statements: list[tuple[str, str, str | None, str | None]],
) -> None:
    distributed = [(table, column, colocate) for kind, table, column, colocate in statements if kind == "distributed"]
    anchor = distributed[0][0]
    assert distributed[0] == (anchor, "tenant_id", "none")  # the first makes the co-location group
    assert all(column == "tenant_id" and colocate == anchor for _, column, colocate in distributed[1:])
    assert set(tenant_tables()) <= {table for table, _, _ in distributed}
    assert {"members", "ledger_entries", "point_balances", "events"} <= {table for table, _, _ in distributed}
    for table, _, _ in distributed:  # the distribution column: NOT NULL, leading the key
        key = list(Base.metadata.tables[table].primary_key.columns)
        assert key[0].name == "tenant_id" and not key[0].nullable, table


def test_every_global_table_is_a_reference_table(statements: list[tuple[str, str, str | None, str | None]]) -> None:
    reference = {table for kind, table, _, _ in statements if kind == "reference"}
    assert reference == set(Base.metadata.tables) - {t for k, t, _, _ in statements if k == "distributed"}
    assert not reference & set(tenant_tables())
    assert {"tenants", "billing_plans", "platform_credentials"} <= reference


def test_the_order_keeps_every_foreign_key(statements: list[tuple[str, str, str | None, str | None]]) -> None:
    """Citus needs a referenced table distributed (or made a reference table) before a referrer; a reference table
    may not reference a distributed one; a key between distributed tables must carry the distribution column."""
    position = {table: n for n, (_, table, _, _) in enumerate(statements)}
    kinds = {table: kind for kind, table, _, _ in statements}
    for name, table in Base.metadata.tables.items():
        assert isinstance(table, Table)
        for fk in table.foreign_key_constraints:
            target = fk.referred_table.name
            if target == name:
                continue
            assert position[target] < position[name], f"{name} references {target}, distributed after it"
            if kinds[name] == "reference":
                assert kinds[target] == "reference", f"reference table {name} references distributed {target}"
            elif kinds[target] == "distributed":
                assert fk.column_keys[0] == "tenant_id" and fk.elements[0].column.name == "tenant_id", fk.name


def test_the_same_output_every_run(ddl: str) -> None:
    assert CliRunner().invoke(main, ["citus-ddl"]).output == ddl
