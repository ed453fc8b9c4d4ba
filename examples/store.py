"""A small store: Decimal prices, a bearer-token admin, a partner API key, image uploads.

Run it:  python examples/store.py          (gunicorn on http://127.0.0.1:3000)
    or:  gunicorn examples.store:app       (from the project root)

Products live in a SQLite file, $STORE_DB (default ./store.sqlite3); uploaded images in the
directory $STORE_UPLOADS (default ./uploads). The admin token is $STORE_ADMIN_TOKEN and the
partner key $STORE_PARTNER_KEY (defaults "admin-token" and "partner-key": set your own).

    curl -X POST localhost:3000/products -H 'Authorization: Bearer admin-token' \\
         -H 'Content-Type: application/json' -d '{"name": "Tea", "price": "4.50"}'
    curl -X PUT localhost:3000/products/1/image -H 'Authorization: Bearer admin-token' \\
         -F image=@tea.png
    curl localhost:3000/partner/prices -H 'X-Partner-Key: partner-key'

Open http://127.0.0.1:3000/docs, press Authorize, paste the token, and try the routes:
the upload route shows a file picker.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from marshmallow import fields, validate

from funapi_sync import App, Depends, File, HTTPException, Schema
from funapi_sync.security import APIKeyHeader, HTTPBearer

log = logging.getLogger("store")

#: The largest image accepted (the request as a whole is capped by max_body_size).
MAX_IMAGE = 2 * 1024 * 1024


def db_path() -> str:
    # NOTE: read per use, not at import, so tests can point a fresh file at the app.
    return os.environ.get("STORE_DB", "store.sqlite3")


def uploads_dir() -> Path:
    return Path(os.environ.get("STORE_UPLOADS", "uploads"))


@contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A short-lived autocommit connection: sqlite3 connections must not cross threads."""
    conn = sqlite3.connect(db_path(), timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        yield conn
    finally:
        conn.close()


@contextmanager
def boot_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on a file beside the database while a process sets it up.

    NOTE: switching to WAL needs an exclusive lock that SQLite's busy handler does not
    wait for, so gunicorn workers booting together failed with "database is locked".
    The lock file serialises their setup, and WAL (kept in the database file) is
    switched on once, by the first; the others find it on.
    """
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL (readers and the writer overlap) unless it is on already."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=WAL")


def create_storage() -> None:
    uploads_dir().mkdir(parents=True, exist_ok=True)
    with boot_lock(db_path()), connect() as conn:
        use_wal(conn)
        # NOTE: prices are stored as TEXT: a Decimal keeps every digit, a REAL would not.
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS products (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL,
                price TEXT NOT NULL,
                image TEXT
            );
            CREATE TABLE IF NOT EXISTS images (
                filename TEXT PRIMARY KEY,
                product_id INTEGER NOT NULL,
                size INTEGER NOT NULL,
                kind TEXT NOT NULL
            );
            """
        )


# -- security ------------------------------------------------------------------------

bearer = HTTPBearer(description="The admin token ($STORE_ADMIN_TOKEN)")
partner_key = APIKeyHeader(name="X-Partner-Key", description="A partner's key")


def admin(token: str = Depends(bearer)) -> str:
    """Let the admin through; anyone else gets a 401."""
    expected = os.environ.get("STORE_ADMIN_TOKEN", "admin-token")
    # NOTE: compare_digest takes as long whatever the guess, so timing tells nothing.
    if not secrets.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(
            401, "Invalid token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    return "admin"


def partner(key: str = Depends(partner_key)) -> str:
    expected = os.environ.get("STORE_PARTNER_KEY", "partner-key")
    if not secrets.compare_digest(key.encode(), expected.encode()):
        raise HTTPException(401, "Invalid key", headers={"WWW-Authenticate": "APIKey"})
    return "partner"


# -- schemas -------------------------------------------------------------------------

Price = fields.Decimal(
    required=True, places=2, validate=validate.Range(min=Decimal("0.01"), max=Decimal("100000"))
)
NewProduct = Schema.define(
    "NewProduct",
    name=fields.String(required=True, validate=[Schema.filled, validate.Length(max=100)]),
    price=Price,
)
Product = Schema.define(
    "Product",
    id=fields.Integer(required=True),
    name=fields.String(required=True),
    price=fields.Decimal(required=True, places=2),
    image=fields.String(allow_none=True),
)
PartnerPrice = Schema.define(
    "PartnerPrice", id=fields.Integer(required=True), price=fields.Decimal(required=True)
)
ImageUpload = Schema.define("ImageUpload", image=File(required=True, max_size=MAX_IMAGE))
StoredImage = Schema.define(
    "StoredImage",
    filename=fields.String(required=True),
    size=fields.Integer(required=True),
    sha256=fields.String(required=True),
)

# NOTE: SQLite integers are 64-bit; the converter's bound makes a larger id a 404.
PRODUCT = "/products/<int(max=9223372036854775807):product_id>"

app = App(title="Store API", version="1.0.0", max_body_size=MAX_IMAGE + 64 * 1024)
app.on_startup(create_storage)


def product_row(product_id: int) -> dict[str, object]:
    with connect() as conn:
        row = conn.execute(
            "SELECT id, name, price, image FROM products WHERE id = ?", (product_id,)
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"no product {product_id}")
    return {"id": row[0], "name": row[1], "price": Decimal(row[2]), "image": row[3]}


@app.get("/products", response_schema=[Product])
def list_products():
    """List the products, cheapest first."""
    with connect() as conn:
        rows = conn.execute("SELECT id, name, price, image FROM products").fetchall()
    products = [{"id": r[0], "name": r[1], "price": Decimal(r[2]), "image": r[3]} for r in rows]
    return sorted(products, key=lambda product: product["price"])


@app.get(PRODUCT, response_schema=Product, responses={404: "No such product"})
def get_product(input):
    return product_row(input.path["product_id"])


@app.post(
    "/products",
    body=NewProduct,
    response_schema=Product,
    status_code=201,
    depends={"user": Depends(admin)},
)
def create_product(input):
    """Add a product (admin only)."""
    name, price = input.body["name"], input.body["price"]
    with connect() as conn:
        cursor = conn.execute(
            "INSERT INTO products (name, price) VALUES (?, ?)", (name, str(price))
        )
    return {"id": cursor.lastrowid, "name": name, "price": price, "image": None}


@app.delete(
    PRODUCT,
    depends={"user": Depends(admin)},
    responses={404: "No such product"},
)
def delete_product(input):
    """Remove a product (admin only); its image file stays until an operator prunes it."""
    with connect() as conn:
        deleted = conn.execute("DELETE FROM products WHERE id = ?", (input.path["product_id"],))
    if deleted.rowcount == 0:
        raise HTTPException(404, f"no product {input.path['product_id']}")
    return None, 204


def catalogue_image(product_id: int, path: Path) -> None:
    """A background task: read the saved file (by path: the upload is closed by now)."""
    with path.open("rb") as image:
        head = image.read(8)
    kind = (
        "png"
        if head.startswith(b"\x89PNG")
        else "jpeg"
        if head.startswith(b"\xff\xd8")
        else "gif"
        if head.startswith(b"GIF8")
        else "other"
    )
    with connect() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO images (filename, product_id, size, kind) VALUES (?, ?, ?, ?)",
            (path.name, product_id, path.stat().st_size, kind),
        )
    log.info("catalogued %s (%s) for product %s", path.name, kind, product_id)


@app.put(
    PRODUCT + "/image",
    body=ImageUpload,
    response_schema=StoredImage,
    depends={"user": Depends(admin)},
    responses={404: "No such product"},
)
def upload_image(input, *, background):
    """Upload a product's image (admin only); it is catalogued after the response."""
    product_id = input.path["product_id"]
    product_row(product_id)
    upload = input.body["image"]
    suffix = Path(upload.filename or "").suffix.lower()[:10]
    if not suffix[1:].isalnum():
        suffix = ""
    # NOTE: a name of our own making: the client's file name is never a path on disk.
    path = uploads_dir() / f"{product_id}-{uuid.uuid4().hex}{suffix}"
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as out:
        for chunk in iter(lambda: upload.stream.read(64 * 1024), b""):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    with connect() as conn:
        conn.execute("UPDATE products SET image = ? WHERE id = ?", (path.name, product_id))
    background.add_task(catalogue_image, product_id, path)
    return {"filename": path.name, "size": size, "sha256": digest.hexdigest()}, 201


@app.get("/admin/images", depends={"user": Depends(admin)})
def list_images():
    """The catalogued images (admin only), newest product first."""
    with connect() as conn:
        rows = conn.execute(
            "SELECT filename, product_id, size, kind FROM images ORDER BY product_id DESC"
        ).fetchall()
    return [dict(zip(("filename", "product_id", "size", "kind"), row, strict=True)) for row in rows]


@app.get("/partner/prices", response_schema=[PartnerPrice], depends={"who": Depends(partner)})
def partner_prices():
    """Every product's price, for partners (X-Partner-Key)."""
    with connect() as conn:
        rows = conn.execute("SELECT id, price FROM products ORDER BY id").fetchall()
    return [{"id": row[0], "price": Decimal(row[1])} for row in rows]


if __name__ == "__main__":
    from funapi_sync.server import gunicorn

    logging.basicConfig(level=logging.INFO)
    gunicorn.start(app, port=3000)
