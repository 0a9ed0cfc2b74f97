"""The pytest plugin is opt-in: installing Fealty changes nothing in another project's pytest session, and a plugin
author who opts in (``pytest_plugins = ["fealty_testing"]``) gets the prefixed fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _copy_project(target: Path) -> Path:
    """The distribution's sources (what a wheel is built from), away from the working tree's build artefacts."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md", "fealty_testing.py"):
        shutil.copy(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("core", "plugins"):
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    return target


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FEALTY_", "PYTEST_", "VIRTUAL_ENV"))}


def test_installing_fealty_leaves_an_unrelated_suite_alone(tmp_path: Path) -> None:
    # A fresh virtualenv with plain pytest and Fealty installed from its sources (without its runtime dependencies:
    # nothing should import them, and with the old auto-loaded plugin this session would fail to import them).
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    source = _copy_project(tmp_path / "fealty-src")
    for what in (["pytest"], ["--no-deps", str(source)]):
        install = subprocess.run(
            [python, "-m", "pip", "install", "-q", *what], capture_output=True, text=True, env=_clean_env(), timeout=600
        )
        assert install.returncode == 0, install.stderr
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    assert "fealty==" in listed and "pytest-asyncio" not in listed

    project = tmp_path / "someone-else"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_shop.py").write_text(
        textwrap.dedent(
            """
            import sys

            import pytest


            @pytest.fixture
            def client():
                return "my own client"


            @pytest.fixture
            def tenant():
                return "my own tenant"


            def test_my_fixtures_are_mine(client, tenant):
                assert (client, tenant) == ("my own client", "my own tenant")


            def test_fealty_is_not_loaded(request):
                assert "core.testing" not in sys.modules and "fealty_testing" not in sys.modules
                assert not any(name.startswith("fealty_") for name in request.fixturenames)
                with pytest.raises(pytest.FixtureLookupError):
                    request.getfixturevalue("fealty_client")
            """
        )
    )
    run = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    plugins = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print([e.value for e in m.entry_points(group='pytest11')])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "core.testing" not in plugins


def test_a_plugin_author_opts_in_and_gets_prefixed_fixtures(tmp_path: Path) -> None:
    project = tmp_path / "fealty-bakery"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.pytest.ini_options]
            asyncio_mode = "auto"
            asyncio_default_fixture_loop_scope = "session"
            asyncio_default_test_loop_scope = "session"
            """
        )
    )
    (project / "tests" / "conftest.py").write_text('pytest_plugins = ["fealty_testing"]\n')
    (project / "tests" / "test_bakery.py").write_text(
        textwrap.dedent(
            """
            async def test_a_tenant_enrols_a_member(fealty_tenant, fealty_backend):
                member = await fealty_tenant.enrol("baker-1")
                assert member["external_id"] == "baker-1"
                assert fealty_backend == "sqlite"


            def test_the_short_names_are_not_taken(request):
                assert "client" not in request.fixturenames
            """
        )
    )
    env = _clean_env() | {"FEALTY_TEST_BACKENDS": "sqlite"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
