"""The plugin guide (docs/hooks.md) documents every hook, with an example, and every export of ``core``; every hook
is declared with a docstring and typed arguments, and the example plugin implements every one."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import core
from core.plugin import spec as hookspecs

DOCS = Path(__file__).parents[2] / "docs" / "hooks.md"


def declared() -> dict[str, object]:
    return {name: f for name, f in vars(hookspecs).items() if name.startswith("fealty_") and callable(f)}


def sections() -> dict[str, str]:
    """The guide's ``## `` sections by title."""
    parts = re.split(r"^## (.+)$", DOCS.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_hook_has_a_docstring_and_typed_arguments() -> None:
    for name, function in declared().items():
        assert inspect.getdoc(function), f"{name} has no docstring"
        signature = inspect.signature(function)  # type: ignore[arg-type]
        assert signature.return_annotation is not inspect.Signature.empty, f"{name} has no return type"
        for parameter in signature.parameters.values():
            assert parameter.annotation is not inspect.Parameter.empty, f"{name}({parameter.name}) is untyped"


def test_every_tenant_hook_takes_one_ctx_and_every_startup_hook_none() -> None:
    for name, function in declared().items():
        parameters = list(inspect.signature(function).parameters)  # type: ignore[arg-type]
        assert parameters == ([] if name in hookspecs.STARTUP_HOOKS else ["ctx"]), name


def test_every_hook_is_documented_with_an_example_and_every_documented_hook_exists() -> None:
    documented = {title: body for title, body in sections().items() if title.startswith("fealty_")}
    assert set(documented) == set(declared())
    for name, body in documented.items():
        assert "```python" in body and name in body.split("```python", 1)[1], f"{name} has no example"


def test_every_export_is_documented_in_the_exports_section() -> None:
    exports = sections()["Exports"]
    undocumented = [name for name in core.__all__ if f"`{name}`" not in exports]
    assert undocumented == []


def test_every_export_resolves() -> None:
    for name in core.__all__:
        assert getattr(core, name) is not None, name


def test_the_example_plugin_implements_every_hook() -> None:
    from tests.plugins.example import hooks

    implemented = {name for name in vars(hooks) if name.startswith("fealty_")}
    assert implemented == set(declared())
