"""examples/store.py on a real SQLite file and upload directory, in process and on gunicorn."""

from __future__ import annotations

import hashlib
import importlib
import io
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from openapi_spec_validator import validate as validate_spec

ROOT = Path(__file__).resolve().parents[1]

ADMIN = {"Authorization": "Bearer test-admin"}
PARTNER = {"X-Partner-Key": "test-partner"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 400


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


@pytest.fixture
def store(env, monkeypatch):
    """examples.store, re-imported: a fresh app whose startup makes the tables."""
    monkeypatch.syspath_prepend(str(ROOT))
    import examples.store

    return importlib.reload(examples.store)


@pytest.fixture
def client(store):
    return store.app.test_client()


def rows(env, query):
    with closing(sqlite3.connect(env["STORE_DB"])) as conn:
        return conn.execute(query).fetchall()


def test_the_admin_adds_products_with_exact_decimal_prices(client):
    response = client.post("/products", json={"name": "Tea", "price": "4.5"}, headers=ADMIN)
    assert response.status_code == 201
    assert response.json == {"id": 1, "name": "Tea", "price": "4.50", "image": None}
    client.post("/products", json={"name": "Gum", "price": 0.1}, headers=ADMIN)
    assert client.get("/products").json == [
        {"id": 2, "name": "Gum", "price": "0.10", "image": None},
        {"id": 1, "name": "Tea", "price": "4.50", "image": None},
    ]
    assert client.get("/partner/prices", headers=PARTNER).json == [
        {"id": 1, "price": "4.50"},
        {"id": 2, "price": "0.10"},
    ]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdC1hZG1pbg=="}],
    ids=["none", "wrong-token", "wrong-scheme"],
)
def test_writes_need_the_admin_token(client, env, headers):
    response = client.post("/products", json={"name": "Tea", "price": "1"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert rows(env, "SELECT count(*) FROM products") == [(0,)]


def test_partner_prices_need_the_partner_key(client):
    assert client.get("/partner/prices").status_code == 401
    assert client.get("/partner/prices", headers={"X-Partner-Key": "guess"}).status_code == 401


def test_a_price_out_of_range_or_not_a_number_is_a_422(client):
    for price in ("0", "-1", "NaN", "1e9", "abc"):
        response = client.post("/products", json={"name": "Tea", "price": price}, headers=ADMIN)
        assert response.status_code == 422, price
        assert response.json["detail"][0]["loc"] == ["body", "price"]


def test_an_image_upload_is_saved_hashed_and_catalogued_after_the_response(client, env):
    client.post("/products", json={"name": "Tea", "price": "4.50"}, headers=ADMIN)
    response = client.put(
        "/products/1/image",
        data={"image": (io.BytesIO(PNG), "../../etc/tea.PNG", "image/png")},
        headers=ADMIN,
    )
    assert response.status_code == 201
    body = response.json
    assert body["size"] == len(PNG)
    assert body["sha256"] == hashlib.sha256(PNG).hexdigest()
    # The client's file name is never a path: the file is stored under a name of our own.
    saved = sorted((ROOT / env["STORE_UPLOADS"]).iterdir())
    assert [path.name for path in saved] == [body["filename"]]
    assert body["filename"].startswith("1-")
    assert body["filename"].endswith(".png")
    assert saved[0].read_bytes() == PNG
    # The test client returns after the request's tasks ran: the task read the file by path.
    assert rows(env, "SELECT filename, product_id, size, kind FROM images") == [
        (body["filename"], 1, len(PNG), "png")
    ]
    assert client.get("/products/1").json["image"] == body["filename"]
    assert client.get("/admin/images", headers=ADMIN).json == [
        {"filename": body["filename"], "product_id": 1, "size": len(PNG), "kind": "png"}
    ]


def test_an_upload_for_a_missing_product_or_without_a_file_writes_nothing(client, env):
    missing = client.put(
        "/products/9/image", data={"image": (io.BytesIO(PNG), "a.png")}, headers=ADMIN
    )
    assert missing.status_code == 404
    client.post("/products", json={"name": "Tea", "price": "4.50"}, headers=ADMIN)
    as_json = client.put("/products/1/image", json={"image": "iVBORw0KGgo="}, headers=ADMIN)
    assert as_json.status_code == 422
    assert as_json.json["detail"][0]["loc"] == ["body", "image"]
    assert list((ROOT / env["STORE_UPLOADS"]).iterdir()) == []
    assert rows(env, "SELECT count(*) FROM images") == [(0,)]


def test_deleting_a_product_is_a_204_and_then_a_404(client):
    client.post("/products", json={"name": "Tea", "price": "4.50"}, headers=ADMIN)
    assert client.delete("/products/1", headers=ADMIN).status_code == 204
    assert client.delete("/products/1", headers=ADMIN).status_code == 404
    assert client.get("/products/1").status_code == 404


def test_the_document_shows_security_the_upload_and_string_prices(client):
    spec = client.get("/openapi.json").json
    validate_spec(spec)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-Partner-Key"
    upload = spec["paths"]["/products/{product_id}/image"]["put"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    assert upload["security"] == [{"HTTPBearer": []}]
    assert spec["components"]["schemas"]["ImageUpload"]["properties"]["image"] == {
        "type": "string",
        "format": "binary",
    }
    assert spec["components"]["schemas"]["Product"]["properties"]["price"]["type"] == "string"
    assert "security" not in spec["paths"]["/products"]["get"]
    assert next(iter(spec["paths"]["/products/{product_id}"]["delete"]["responses"])) == "204"
