"""Hostile input on a raw socket against a real gunicorn (sync and gthread, 2 workers).

Each case of ``hostile_cases.CASES`` must get its status, with no traceback in the body
(nor in the server log) and the workers still up: the same two pids answer afterwards
and no worker was booted again.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest
from _helpers import Server
from harness import boots, serve
from hostile_cases import CASES

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


@pytest.fixture(scope="module", params=["sync", "gthread"])
def server(request, tmp_path_factory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp(f"hostile-{request.param}")
    with serve(tmp_path, "--limit-request-line", "8190", worker_class=request.param) as running:
        yield running


def send_raw(port: int, data: bytes) -> bytes:
    """Send ``data``, close our side (a cut-short body then really ends), read to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    return received


def health_pid(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        assert response.status == 200
        return int(json.loads(response.read())["pid"])
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("data", "status", "forbidden"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hostile_request_gets_its_status_and_the_workers_stay_up(server, data, status, forbidden):
    workers = set(boots(server))

    received = send_raw(server.port, data)

    head, _, body = received.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == str(status).encode(), received[:300]
    assert b"Traceback" not in received
    assert b'File "' not in body
    if forbidden is not None:
        assert forbidden not in received
    assert health_pid(server.port) in workers
    assert set(boots(server)) == workers, "a worker died and was replaced"


def test_no_hostile_request_left_a_traceback_in_the_log(server):
    # The whole matrix once more on one server: gunicorn logs the requests it refuses at
    # WARNING, the app a split header in one ERROR line; neither is a traceback.
    for case in CASES:
        send_raw(server.port, case[1])
    log = server.log()
    assert "Traceback" not in log
    assert len(set(boots(server))) == 2
