"""The README's ``pip install -e .`` leaves funapi_sync visible to a user's mypy (SPEC §2).

setuptools' default editable install is an import hook that mypy cannot follow; setup.cfg's
``package_dir`` makes it a plain path entry. Checked for real: a fresh venv, pip, mypy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]

USER_MODULE = """
from funapi_sync import App, Depends, Input


class User:
    name = "ada"


def current_user(input: Input) -> User:
    return User()


app = App()


@app.get("/me")
def me(input: Input, *, user: User = Depends(current_user)) -> dict[str, str]:
    return {"name": user.name}
"""


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # NOTE: without PYTHONPATH (the suite runs with the worktree on it) and MYPYPATH: mypy
    # searches its interpreter's whole sys.path, so either would find funapi_sync without
    # the install, and the test would pass for the wrong reason.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    return subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.timeout(900)
def test_an_editable_install_is_visible_to_mypy_strict(tmp_path):
    venv = tmp_path / "venv"
    # NOTE: the base interpreter, not this test's venv: a user's fresh environment.
    created = _run(sys._base_executable, "-m", "venv", venv, cwd=tmp_path)  # type: ignore[attr-defined]
    assert created.returncode == 0, created.stderr
    bin_dir = venv / "bin"
    installed = _run(bin_dir / "pip", "install", "-q", "-e", ROOT, "mypy", cwd=tmp_path)
    if installed.returncode != 0 and "NewConnectionError" in installed.stderr + installed.stdout:
        pytest.skip("no package index reachable to install into a fresh venv")
    assert installed.returncode == 0, installed.stderr

    (tmp_path / "user_module.py").write_text(USER_MODULE)
    checked = _run(bin_dir / "mypy", "--strict", "user_module.py", cwd=tmp_path)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("Success: no issues found in 1 source file")
