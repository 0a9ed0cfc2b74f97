"""Every hook is declared with a docstring and documented in docs/hooks.md (and nothing documented is missing)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from core.plugin import spec as hookspecs

DOCS = Path(__file__).parents[2] / "docs" / "hooks.md"


def declared() -> dict[str, object]:
    return {name: f for name, f in vars(hookspecs).items() if name.startswith("fealty_") and callable(f)}


def test_every_hook_has_a_docstring_and_typed_arguments() -> None:
    for name, function in declared().items():
        assert inspect.getdoc(function), f"{name} has no docstring"
        signature = inspect.signature(function)  # type: ignore[arg-type]
        assert signature.return_annotation is not inspect.Signature.empty, f"{name} has no return type"
        for parameter in signature.parameters.values():
            assert parameter.annotation is not inspect.Parameter.empty, f"{name}({parameter.name}) is untyped"


def test_every_hook_is_documented_and_every_documented_hook_exists() -> None:
    documented = set(re.findall(r"^## (fealty_\w+)$", DOCS.read_text(), flags=re.MULTILINE))
    assert documented == set(declared())


def test_the_example_plugin_implements_every_hook() -> None:
    from tests.plugins.example import hooks

    implemented = {name for name in vars(hooks) if name.startswith("fealty_")}
    assert implemented == set(declared())
