"""Router: prefixes, tags, guard dependencies, and when its registration errors surface."""

from __future__ import annotations

import pytest

from funapi_sync import App, Depends, HTTPException, Router


def test_router_routes_are_mounted_under_its_prefix(app, client):
    users = Router("/users")

    @users.get("/")
    def list_users():
        return ["ada"]

    @users.get("/{user_id}")
    def get_user(input):
        return input.path

    app.include_router(users)

    assert client.get("/users").json == ["ada"]
    assert client.get("/users/").json == ["ada"]
    assert client.get("/users/7").json == {"user_id": "7"}
    assert client.get("/7").status_code == 404


def test_include_prefix_is_joined_before_the_router_prefix(app, client):
    users = Router("/users")

    @users.get("/me")
    def me():
        return "me"

    app.include_router(users, prefix="/api/v1")

    assert client.get("/api/v1/users/me").json == "me"
    assert client.get("/users/me").status_code == 404


def test_router_without_prefix_mounts_paths_as_declared(app, client):
    router = Router()

    @router.post("/things", status_code=201)
    def create(input):
        return input.body

    app.include_router(router)

    response = client.post("/things", json={"a": 1})
    assert response.status_code == 201
    assert response.json == {"a": 1}


def test_one_router_can_be_included_under_two_prefixes(app, client):
    health = Router()

    @health.get("/health")
    def ok():
        return "ok"

    app.include_router(health, prefix="/v1")
    app.include_router(health, prefix="/v2")

    assert client.get("/v1/health").json == "ok"
    assert client.get("/v2/health").json == "ok"


def test_router_has_every_method_decorator(app, client):
    router = Router("/r")
    router.put("/x")(lambda: "put")
    router.patch("/x")(lambda: "patch")
    router.delete("/x")(lambda: "delete")
    router.route("/y", methods=["GET", "POST"])(lambda input, req: req.method)
    app.include_router(router)

    assert client.put("/r/x").json == "put"
    assert client.patch("/r/x").json == "patch"
    assert client.delete("/r/x").json == "delete"
    assert client.post("/r/y").json == "POST"


def test_router_tags_come_before_route_tags(app):
    router = Router("/users", tags=["users"])

    @router.get("/", tags=["listing"])
    def list_users():
        return []

    app.include_router(router)

    (endpoint,) = app.routes.endpoints
    assert endpoint.tags == ["users", "listing"]
    assert endpoint.path == "/users"


def test_router_depends_guard_runs_even_when_the_handler_does_not_take_it(app, client):
    def require_token(req):
        if req.headers.get("Authorization") != "Bearer secret":
            raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})

    app.register("auth", require_token)
    admin = Router("/admin", depends=["auth"])

    @admin.get("/stats")
    def stats():
        return {"users": 3}

    app.include_router(admin)

    denied = client.get("/admin/stats")
    assert denied.status_code == 401
    assert denied.json == {"detail": "Unauthorized"}
    assert denied.headers["WWW-Authenticate"] == "Bearer"

    allowed = client.get("/admin/stats", headers={"Authorization": "Bearer secret"})
    assert allowed.status_code == 200
    assert allowed.json == {"users": 3}


def test_router_depends_value_reaches_a_handler_that_takes_it(app, client):
    app.register("user", lambda req: req.headers.get("X-User", "anonymous"))
    router = Router("/me", depends=["user"])

    @router.get("/")
    def whoami(*, user):
        return user

    app.include_router(router)

    assert client.get("/me", headers={"X-User": "ada"}).json == "ada"


def test_router_depends_accepts_a_mapping_with_depends_callables(app, client):
    calls = []

    def audit(req):
        calls.append(req.path)

    router = Router("/audited", depends={"audit": Depends(audit)})

    @router.get("/x")
    def x():
        return "x"

    app.include_router(router)

    assert client.get("/audited/x").json == "x"
    assert calls == ["/audited/x"]


def test_route_depends_are_added_to_router_depends(app, client):
    order = []
    app.register("guard", lambda: order.append("guard"))
    app.register("db", lambda: order.append("db") or "database")
    router = Router("/r", depends=["guard"])

    @router.get("/x", depends=["db"])
    def x(*, db):
        return db

    app.include_router(router)

    assert client.get("/r/x").json == "database"
    assert order == ["guard", "db"]


def test_unregistered_router_dependency_fails_at_include_router(app):
    router = Router("/admin", depends=["auth"])

    @router.get("/stats")
    def stats():
        return {}

    with pytest.raises(ValueError, match="dependency 'auth' is not registered") as info:
        app.include_router(router)
    assert "stats() at GET /admin/stats" in str(info.value)
    assert "app.register('auth', factory)" in str(info.value)


def test_router_dependency_registered_before_include_is_accepted(app, client):
    router = Router("/admin", depends=["auth"])

    @router.get("/stats")
    def stats():
        return "ok"

    app.register("auth", lambda: None)
    app.include_router(router)

    assert client.get("/admin/stats").json == "ok"


def test_unknown_keyword_parameter_in_a_router_route_fails_at_include_router(app):
    router = Router("/r")

    @router.get("/x")
    def x(*, mailer):
        return 1

    with pytest.raises(TypeError, match="keyword-only parameter 'mailer'"):
        app.include_router(router)


def test_bad_signature_in_a_router_route_fails_at_decoration():
    router = Router("/r")

    with pytest.raises(TypeError, match=r"handlers cannot take \*args or \*\*kwargs"):

        @router.get("/x")
        def x(*args):
            return 1


def test_router_route_duplicating_an_app_route_fails_at_include_router(app):
    @app.get("/users/me")
    def app_me():
        return 1

    router = Router("/users")

    @router.get("/me")
    def router_me():
        return 2

    with pytest.raises(ValueError, match=r"router_me\(\) at GET /users/me duplicates app_me\(\)"):
        app.include_router(router)


@pytest.mark.parametrize("prefix", ["users", "/users/"])
def test_bad_router_prefix_is_rejected(prefix):
    with pytest.raises(ValueError, match="a router prefix must start with '/' and not end"):
        Router(prefix)


def test_bad_include_prefix_is_rejected(app):
    router = Router()
    router.get("/x")(lambda: 1)

    with pytest.raises(ValueError, match="a router prefix must start with '/'"):
        app.include_router(router, prefix="api")


def test_include_router_takes_a_router(app):
    with pytest.raises(TypeError, match="include_router\\(\\) takes a Router"):
        app.include_router(App())


def test_a_router_with_one_bad_route_mounts_none_of_its_routes(app):
    router = Router("/items")
    router.get("/")(lambda: {"ok": True})
    router.get("/<int:id>")(lambda: {"ok": True})
    app.get("/items/<int:id>")(lambda: {"taken": True})
    with pytest.raises(ValueError, match="duplicates"):
        app.include_router(router)
    assert [endpoint.path for endpoint in app.routes.endpoints] == ["/items/<int:id>"]
    assert app.test_client().get("/items").status_code == 404
