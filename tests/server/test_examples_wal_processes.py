"""The SQLite examples switch to WAL once, under a file lock: gunicorn -w 4 never fails a boot."""

from __future__ import annotations

import http.client
import sqlite3
import sys
from contextlib import closing

import pytest
from _helpers import ROOT, _version, run_server

pytestmark = pytest.mark.server

NO_CONTROL_SOCKET = ["--no-control-socket"] if _version() >= (25, 1) else []
ROUNDS = 4
WORKERS = 4


@pytest.mark.timeout(180)
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_four_workers_booting_on_a_fresh_database_all_boot(tmp_path, round_):
    db = tmp_path / "signup.sqlite3"
    command = [
        sys.executable,
        "-m",
        "funapi_sync",
        "run",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        str(WORKERS),
        *NO_CONTROL_SOCKET,
        "examples.signup:app",
    ]
    with run_server(
        command,
        log_path=tmp_path / "run.log",
        cwd=ROOT,
        env={"SIGNUP_DB": str(db)},
        workers=WORKERS,
    ) as server:
        assert len(server.worker_pids) == WORKERS, server.log()
        # The startup hooks ran in each worker before it served (post_worker_init); one
        # that failed would have stopped the master (gunicorn's "Worker failed to boot").
        for _ in range(WORKERS * 2):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            try:
                connection.request("GET", "/openapi.json")
                assert connection.getresponse().status == 200
            finally:
                connection.close()
        assert server.stop() == 0, server.log()
    log = server.log()
    assert "database is locked" not in log
    assert "Worker failed to boot" not in log
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
