"""werkzeug's own Client under app.testing, run as a user runs it: pytest's default setup.

A test that asserts only the status (``Client(app).post(...).status_code == 201``, body
never read, response never closed) must not pass while its tasks never run (SPEC §9). The
user's test file runs under ``pytest`` in a subprocess, outside this suite's configuration
(no ``filterwarnings = error``), so a report that only a warning or a log line would give
cannot make it fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]

USER_TESTS = """
from pathlib import Path

from werkzeug.test import Client

from funapi_sync import App

app = App()
app.testing = True
OUT = Path(__file__).with_name("sent.txt")


def send_welcome_email(address):
    with OUT.open("a") as out:
        out.write(address + "\\n")


def charge_card(order):
    raise RuntimeError(f"card declined for order {order}")


@app.post("/signup")
def signup(*, background):
    background.add_task(send_welcome_email, "ada@example.com")
    return {}, 201


@app.post("/orders")
def order(*, background):
    background.add_task(charge_card, 7)
    return {}, 201


def test_signup():
    assert Client(app).post("/signup").status_code == 201
    assert OUT.read_text() == "ada@example.com\\n"  # the task ran inside the call


def test_order():
    assert Client(app).post("/orders").status_code == 201
"""


def test_a_status_only_test_runs_the_tasks_and_a_failing_task_fails_it(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "FAILED test_user.py::test_order - RuntimeError: card declined for order 7" in out
    assert (tmp_path / "sent.txt").read_text() == "ada@example.com\n"
