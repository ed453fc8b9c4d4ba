"""examples/dependencies.py on a real SQLite file: commit, rollback, and the audit task."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request

import pytest
from _helpers import ROOT, Server

pytestmark = pytest.mark.server


@pytest.mark.server
def test_runs_as_a_script_under_gunicorn(tmp_path):
    env = {
        **os.environ,
        "BANK_DB": str(tmp_path / "bank.sqlite3"),
        "PORT": "0",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "dependencies.py")],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, log_path)
    try:
        server.port = int(server.wait_for_log(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
        server.wait_for_log(r"Booting worker with pid: \d+")

        def post(path, payload):
            request = urllib.request.Request(
                server.url + path,
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())

        assert post("/accounts", {"name": "alice", "balance": 50})[0] == 201
        assert post("/accounts", {"name": "bob", "balance": 0})[0] == 201
        assert post("/transfers", {"source": "alice", "target": "bob", "amount": 20}) == (
            201,
            {"id": 1, "source": "alice", "target": "bob", "amount": 20, "balance": 30},
        )
        server.wait_for_log("audited transfer alice -> bob")
        assert server.stop() == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    conn = sqlite3.connect(tmp_path / "bank.sqlite3")
    try:
        assert list(conn.execute("SELECT event FROM audit")) == [("alice -> bob: 20",)]
    finally:
        conn.close()
