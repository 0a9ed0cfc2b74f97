"""The container image: its Containerfile read as a builder would (pinned base, hash-checked lock file, a non-root
user, the entry point), the lock file in step with pyproject.toml, and the entry point run for real: the default
command serves a trial on SQLite with a message saying a database URL is wanted for production, and the commands
that need the URL stop with a message that says so. (No image is built by the tests: no container daemon runs on
the CI machine; `docker build -f infra/Containerfile .` builds it where there is one.)"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
CONTAINERFILE = ROOT / "infra" / "Containerfile"
LOCK = ROOT / "infra" / "requirements.lock"
ENTRYPOINT = ROOT / "infra" / "container-entrypoint"
BASE = "python:3.11-slim-bookworm"


@pytest.fixture(scope="module")
def instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(fileobj=CONTAINERFILE.open("rb"))
    return list(parser.structure)


def _final_stage(instructions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last_from = max(n for n, i in enumerate(instructions) if i["instruction"] == "FROM")
    return instructions[last_from:]


def test_every_stage_starts_from_the_pinned_base(instructions: list[dict[str, Any]]) -> None:
    froms = [i["value"].split()[0] for i in instructions if i["instruction"] == "FROM"]
    assert froms and all(image == BASE for image in froms), froms


def test_the_image_runs_as_a_user_that_is_not_root(instructions: list[dict[str, Any]]) -> None:
    final = _final_stage(instructions)
    users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
    assert users, "the final stage never sets USER (it would run as root)"
    assert users[-1] not in ("root", "0")
    created = " ".join(i["value"] for i in final if i["instruction"] == "RUN")
    assert re.search(rf"useradd .*--uid {users[-1]}\b", created), "the user is created in the image"


def test_dependencies_come_from_the_lock_file_with_hashes(instructions: list[dict[str, Any]]) -> None:
    copies = [i["value"].split() for i in instructions if i["instruction"] == "COPY"]
    assert any(c[0] == "infra/requirements.lock" for c in copies), "the lock file is not copied in"
    installs = [i["value"] for i in instructions if i["instruction"] == "RUN" and "pip install" in i["value"]]
    assert any(re.search(r"pip install --require-hashes -r \S*requirements\.lock", run) for run in installs)
    # Anything else pip installs is the project itself, without resolving dependencies again.
    for run in installs:
        for command in re.findall(r"pip install ([^&]*)", run):
            assert "--require-hashes" in command or "--no-deps" in command, command


def test_every_copied_path_exists_and_the_context_leaves_out_the_venv(instructions: list[dict[str, Any]]) -> None:
    for i in instructions:
        if i["instruction"] == "COPY" and not i["value"].startswith("--from"):
            for source in i["value"].split()[:-1]:
                assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_the_entry_point_and_default_command(instructions: list[dict[str, Any]]) -> None:
    final = _final_stage(instructions)
    values = {i["instruction"]: i["value"] for i in final}
    assert values["ENTRYPOINT"] == '["fealty-entrypoint"]'
    assert values["CMD"] == '["serve"]'
    assert any(
        i["instruction"] == "COPY" and i["value"] == "infra/container-entrypoint /usr/local/bin/fealty-entrypoint"
        for i in final
    )
    assert os.access(ENTRYPOINT, os.X_OK)


def _locked() -> dict[str, str]:
    """name -> version of every package in the lock, each of which carries hashes."""
    text = LOCK.read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, re.M))
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9]", text, re.M)), "a line of the lock is not name==version \\"
    assert text.count("--hash=sha256:") >= len(pins)
    return {canonicalize_name(name): version for name, version in pins.items()}


def test_the_lock_file_pins_every_dependency_of_pyproject() -> None:
    """Fails when a dependency was added to (or changed in) pyproject.toml without `make lock`."""
    locked = _locked()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is not in infra/requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{requirement.name}=={locked[name]} in the lock does not satisfy {line}: run `make lock`"
        )


# --- the entry point, run for real ------------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEALTY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `fealty` as installed
    return env | extra


@pytest.mark.parametrize("command", ["worker", "migrate"])
def test_commands_that_need_a_database_url_say_so(command: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ENTRYPOINT), command], env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert f"'{command}' needs FEALTY_DATABASE_URL" in done.stderr
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_the_default_command_serves_a_trial_on_sqlite_and_says_why(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "container.log"
    process = subprocess.Popen(
        [str(ENTRYPOINT)],  # no argument: the image's CMD, `serve`
        env=_env(FEALTY_HOST="127.0.0.1", FEALTY_PORT=str(port), FEALTY_LOG_JSON="true"),
        cwd=tmp_path,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        else:
            pytest.fail("the default command did not become ready:\n" + log.read_text())
        output = log.read_text()
        assert "FEALTY_DATABASE_URL is not set: serving a trial on an embedded SQLite database" in output
        assert (tmp_path / "fealty.db").exists()  # in the working directory, the image's /data volume
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
