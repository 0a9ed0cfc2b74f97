"""The documentation: the site builds strictly (no broken link or anchor, no missing snippet), every page under
docs/ is in the nav, and every curl example on the pages and in the README calls a route the app serves, with that
method, sending a JSON body that parses. The walkthrough's figures are held by tests/test_walkthrough.py."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mkdocs.config import load_config

from core.app import create_app
from core.testing import registering, settings_for_tests
from plugins import fuel_station, hotel, microfinance, utility

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (what ``make docs`` runs): a warning (a broken link or anchor, a page outside the
    nav, a snippet that is not there) fails the build. Never ``-q``: strict mode counts the warnings it logs."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    index = (tmp_path / "site" / "index.html").read_text()
    assert "sealed from every other tenant" in index  # the README's sections are included, not copied
    assert (tmp_path / "site" / "events" / "index.html").exists()


def _nav_files(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_files(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_files(value)


def test_every_page_is_in_the_nav_once() -> None:
    config = load_config(str(ROOT / "mkdocs.yml"))
    in_nav = [f for f in _nav_files(config["nav"]) if not re.match(r"https?://", f)]
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(in_nav) == on_disk
    assert len(set(in_nav)) == len(in_nav), "a page is in the nav twice"


# --- the curl examples ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curl:
    where: str
    method: str
    path: str
    body: str | None


def _commands(block: str) -> Iterator[list[str]]:
    """The shell commands of a code block, as shlex splits them (a quoted argument may span lines)."""
    pending = ""
    for line in block.splitlines():
        pending += line[:-1] + " " if line.endswith("\\") else line + "\n"
        if line.endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        pending = ""
        if words:
            yield words
    assert not pending.strip(), f"unterminated command: {pending!r}"


def _curls() -> Iterator[Curl]:
    for page in PAGES:
        text = page.read_text()
        for n, block in enumerate(re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S)):
            where = f"{page.relative_to(ROOT)} (block {n + 1})"
            for words in _commands(block):
                for word in words:  # E='{"type": ...}': a JSON document kept in a variable
                    if m := re.match(r"^[A-Z_]+=([{\[].*)$", word, re.S):
                        json.loads(m.group(1))
                if words[0] != "curl":
                    continue
                method, body, path = None, None, None
                for flag, value in zip(words, [*words[1:], ""], strict=True):
                    if flag == "-X":
                        method = value
                    elif flag in ("-d", "--data", "--data-raw"):
                        body = value
                    elif path is None and (m := re.match(r"^\$\{?[A-Za-z_]+\}?(/[^?\s]*)", flag)):
                        path = m.group(1)
                if path is not None:  # curls to other servers (localstripe) are not ours to check
                    yield Curl(where, method or ("POST" if body is not None else "GET"), path, body)


CURLS = list(_curls())


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[re.Pattern[str], frozenset[str], str]]:
    """Every route of the app with both plugins, as a pattern of one segment per path parameter."""
    db = tmp_path_factory.mktemp("docs") / "unused.db"
    app = create_app(
        settings_for_tests(f"sqlite+aiosqlite:///{db}"),
        plugins=registering(hotel.PLUGIN, fuel_station.PLUGIN, utility.PLUGIN, microfinance.PLUGIN)(),
    )
    out = []
    for route in app.routes:
        methods = frozenset(m for h in getattr(route, "route_handlers", ()) for m in getattr(h, "http_methods", ()))
        pattern = re.sub(r"\\\{[^/]*?\\\}", "[^/]+", re.escape(route.path))
        out.append((re.compile(f"^{pattern}/?$"), methods, route.path))
    return out


def test_the_pages_have_curl_examples() -> None:
    """The parser finds the examples (so the test below cannot pass by finding none)."""
    assert len(CURLS) > 80
    assert {Path(c.where.split(" ")[0]).name for c in CURLS} >= {"README.md", "events.md", "rewards.md", "hotel.md"}


@pytest.mark.parametrize("curl", CURLS, ids=lambda c: f"{c.method} {c.path}")
def test_every_curl_calls_a_served_route(curl: Curl, routes: list[tuple[re.Pattern[str], frozenset[str], str]]) -> None:
    concrete = re.sub(r"\$\{?[A-Za-z_]+\}?", "x", curl.path)  # $M, ${M}: an id
    matching = [(methods, path) for pattern, methods, path in routes if pattern.match(concrete)]
    assert matching, f"{curl.where}: no route serves {curl.path}"
    assert any(curl.method in methods for methods, _ in matching), (
        f"{curl.where}: {curl.method} {curl.path} is not served ({[p for _, p in matching]} answer {matching})"
    )
    if curl.body is not None and curl.body[:1] in "{[":
        json.loads(curl.body)
