"""examples/store.py on a real SQLite file and upload directory, in process and on gunicorn."""

from __future__ import annotations

import hashlib
import http.client
import json
import sqlite3
import uuid
from contextlib import closing

import pytest
from _helpers import run_gunicorn

pytestmark = pytest.mark.server


ADMIN = {"Authorization": "Bearer test-admin"}


# NOTE: over 500 KiB werkzeug spools an upload to a temporary file; in process the test
# client would then leave its own encoded request body (a temporary file) unclosed.
BIG_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 600_000


@pytest.fixture
def env(tmp_path, monkeypatch):
    values = {
        "STORE_DB": str(tmp_path / "store.sqlite3"),
        "STORE_UPLOADS": str(tmp_path / "uploads"),
        "STORE_ADMIN_TOKEN": "test-admin",
        "STORE_PARTNER_KEY": "test-partner",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def rows(env, query):
    with closing(sqlite3.connect(env["STORE_DB"])) as conn:
        return conn.execute(query).fetchall()


@pytest.mark.server
@pytest.mark.timeout(60)
def test_an_upload_through_gunicorn_is_saved_and_catalogued(tmp_path, env):
    with run_gunicorn("examples.store:app", tmp_path=tmp_path, env=env) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request(
                "POST",
                "/products",
                body=json.dumps({"name": "Tea", "price": "4.50"}),
                headers={"Content-Type": "application/json", **ADMIN},
            )
            created = connection.getresponse()
            assert created.status == 201, created.read()
            product_id = json.loads(created.read())["id"]
            boundary = uuid.uuid4().hex
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="image";'
                    f' filename="tea.png"\r\nContent-Type: image/png\r\n\r\n'
                ).encode()
                + BIG_PNG
                + f"\r\n--{boundary}--\r\n".encode()
            )
            connection.request(
                "PUT",
                f"/products/{product_id}/image",
                body=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **ADMIN},
            )
            uploaded = connection.getresponse()
            result = json.loads(uploaded.read())
            assert uploaded.status == 201, result
            assert result["sha256"] == hashlib.sha256(BIG_PNG).hexdigest()
        finally:
            connection.close()
        # The catalogue row is written by a background task after the response; a
        # graceful stop drains the pool, so once gunicorn exited the row is there.
        assert server.stop() == 0
    assert rows(env, "SELECT filename, product_id, size, kind FROM images") == [
        (result["filename"], product_id, len(BIG_PNG), "png")
    ]
