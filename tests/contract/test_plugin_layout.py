"""Each plugin's own README and tests sit beside it (``plugins/<name>/README.md``, ``plugins/<name>/tests/``), and
the README links to the plugin's page under ``docs/``, which exists."""

from __future__ import annotations

import re
from pathlib import Path

PLUGINS = Path(__file__).parents[2] / "plugins"


def test_every_plugin_has_a_readme_linking_its_docs_page_and_its_tests_beside_it() -> None:
    packages = [p for p in PLUGINS.iterdir() if (p / "__init__.py").exists() and (p / "hooks.py").exists()]
    assert {p.name for p in packages} >= {"hotel", "fuel_station"}
    for package in packages:
        readme = package / "README.md"
        assert readme.exists(), f"{package.name} has no README.md"
        text = readme.read_text(encoding="utf-8")
        pages = re.findall(r"\]\((\.\./\.\./docs/[\w-]+\.md)[)#]", text)
        assert pages and all((package / page).resolve().exists() for page in pages), readme
        assert any((package / "tests").glob("test_*.py")), f"{package.name} has no tests beside it"
