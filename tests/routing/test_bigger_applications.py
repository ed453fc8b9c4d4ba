"""FastAPI's "Bigger Applications" tutorial, ported: routers, nested guards, an app-wide token."""

from __future__ import annotations

import pytest

from funapi_sync import App, Depends, HTTPException, Router

# -- dependencies.py ---------------------------------------------------------------------


def get_token_header(input):
    if input.headers.get("X-Token") != "fake-super-secret-token":
        raise HTTPException(400, "X-Token header invalid")


def get_query_token(input):
    if input.query.get("token") != "jessica":
        raise HTTPException(400, "No Jessica token provided")


def require_admin(input):
    if input.headers.get("X-Admin") != "yes":
        raise HTTPException(403, "Admins only")


# -- routers/users.py --------------------------------------------------------------------

users = Router(tags=["users"])


@users.get("/users/")
def read_users():
    return [{"username": "Rick"}, {"username": "Morty"}]


@users.get("/users/me")
def read_user_me():
    return {"username": "fakecurrentuser"}


@users.get("/users/<username>")
def read_user(input):
    return {"username": input.path["username"]}


# -- routers/items.py --------------------------------------------------------------------

fake_items_db = {"plumbus": {"name": "Plumbus"}, "gun": {"name": "Portal Gun"}}

items = Router(
    "/items",
    tags=["items"],
    depends=[Depends(get_token_header)],
    responses={404: "Not found"},
)


@items.get("/")
def read_items():
    return fake_items_db


@items.get("/<item_id>")
def read_item(input):
    item_id = input.path["item_id"]
    if item_id not in fake_items_db:
        raise HTTPException(404, "Item not found")
    return {"name": fake_items_db[item_id]["name"], "item_id": item_id}


@items.put("/<item_id>", tags=["custom"], responses={403: "Operation forbidden"})
def update_item(input):
    if input.path["item_id"] != "plumbus":
        raise HTTPException(403, "You can only update the item: plumbus")
    return {"item_id": input.path["item_id"], "name": "The great Plumbus"}


# -- internal/admin.py, nested inside items with its own guard ----------------------------

admin = Router()


@admin.post("/")
def update_admin():
    return {"message": "Admin getting schwifty"}


items.include_router(
    admin, prefix="/admin", tags=["admin"], depends=[require_admin], responses={418: "Teapot"}
)


# -- main.py -----------------------------------------------------------------------------

app = App(depends=[Depends(get_query_token)])
app.include_router(users)
app.include_router(items)


@app.get("/")
def root():
    return {"message": "Hello Bigger Applications!"}


TOKEN = "?token=jessica"
X_TOKEN = {"X-Token": "fake-super-secret-token"}


@pytest.fixture
def client():
    return app.test_client()


def test_every_route_needs_the_app_wide_query_token(client):
    for path in ("/", "/users/", "/users/me", "/items/"):
        response = client.get(path, headers=X_TOKEN)
        assert response.status_code == 400, path
        assert response.json == {"detail": "No Jessica token provided"}
    assert client.get("/" + TOKEN).json == {"message": "Hello Bigger Applications!"}


def test_users_router(client):
    assert client.get("/users/" + TOKEN).json == [{"username": "Rick"}, {"username": "Morty"}]
    assert client.get("/users/me" + TOKEN).json == {"username": "fakecurrentuser"}
    assert client.get("/users/rick" + TOKEN).json == {"username": "rick"}


def test_items_router_needs_its_header_guard(client):
    assert client.get("/items/" + TOKEN).json == {"detail": "X-Token header invalid"}
    assert client.get("/items/" + TOKEN, headers=X_TOKEN).json == fake_items_db
    assert client.get("/items/plumbus" + TOKEN, headers=X_TOKEN).json == {
        "name": "Plumbus",
        "item_id": "plumbus",
    }
    assert client.get("/items/nope" + TOKEN, headers=X_TOKEN).status_code == 404
    assert client.put("/items/gun" + TOKEN, headers=X_TOKEN).status_code == 403
    assert client.put("/items/plumbus" + TOKEN, headers=X_TOKEN).status_code == 200


def test_the_nested_admin_router_adds_its_own_guard_inside_the_outer_ones(client):
    url = "/items/admin" + TOKEN
    assert client.post("/items/admin").json == {"detail": "No Jessica token provided"}
    assert client.post(url).json == {"detail": "X-Token header invalid"}
    assert client.post(url, headers=X_TOKEN).json == {"detail": "Admins only"}
    allowed = client.post(url, headers={**X_TOKEN, "X-Admin": "yes"})
    assert allowed.json == {"message": "Admin getting schwifty"}
    # The admin guard covers the admin router only.
    assert client.get("/items/" + TOKEN, headers=X_TOKEN).status_code == 200


def test_the_openapi_document_shows_the_accumulated_tags_and_responses(client):
    paths = client.get("/openapi.json").json["paths"]
    assert paths["/users/me"]["get"]["tags"] == ["users"]
    assert paths["/items/{item_id}"]["put"]["tags"] == ["items", "custom"]
    put_responses = paths["/items/{item_id}"]["put"]["responses"]
    assert put_responses["404"]["description"] == "Not found"
    assert put_responses["403"]["description"] == "Operation forbidden"
    admin_post = paths["/items/admin"]["post"]
    assert admin_post["tags"] == ["items", "admin"]
    assert set(admin_post["responses"]) >= {"404", "418"}
