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


# -- nesting, include-level options, App(depends=) -----------------------------------------


def test_nested_routers_join_prefixes_and_accumulate_tags_outside_in(app, client):
    api = Router("/api", tags=["api"])
    users = Router("/users", tags=["users"])
    admin = Router("/admin", tags=["admin"])

    @admin.get("/stats", tags=["stats"])
    def stats():
        return "stats"

    users.include_router(admin, prefix="/internal", tags=["internal"])
    api.include_router(users)
    app.include_router(api, prefix="/v1", tags=["v1"])

    assert client.get("/v1/api/users/internal/admin/stats").json == "stats"
    (endpoint,) = app.routes.endpoints
    assert endpoint.tags == ["v1", "api", "users", "internal", "admin", "stats"]


def test_a_tag_given_at_two_levels_is_listed_once(app):
    router = Router(tags=["users"])
    router.get("/x", tags=["users", "read"])(lambda: 1)
    app.include_router(router, tags=["users"])

    (endpoint,) = app.routes.endpoints
    assert endpoint.tags == ["users", "read"]


def test_guards_run_outside_in_for_every_route_they_cover():
    order = []

    def guard(name):
        def check(req):
            order.append(name)

        return Depends(check)

    app = App(depends=[guard("app")])
    inner = Router("/inner", depends=[guard("inner")])
    inner.get("/x", depends=[guard("route")])(lambda: "x")
    outer = Router("/outer", depends=[guard("outer")])
    outer.include_router(inner, depends=[guard("nested_include")])
    app.include_router(outer, depends=[guard("include")])
    app.get("/plain")(lambda: "plain")
    client = app.test_client()

    assert client.get("/outer/inner/x").json == "x"
    assert order == ["app", "include", "outer", "nested_include", "inner", "route"]
    order.clear()
    assert client.get("/plain").json == "plain"
    assert order == ["app"]


def test_app_depends_guards_every_route_but_not_the_docs():
    def require_token(req):
        if req.headers.get("X-Token") != "secret":
            raise HTTPException(401, "Bad token", headers={"WWW-Authenticate": "Token"})

    app = App(depends=[Depends(require_token)])
    app.get("/own")(lambda: "own")
    router = Router("/r")
    router.get("/x")(lambda: "x")
    app.include_router(router)
    client = app.test_client()

    for path in ("/own", "/r/x"):
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"] == "Token"
        assert client.get(path, headers={"X-Token": "secret"}).status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_a_guard_value_reaches_a_handler_that_takes_it_by_keyword():
    app = App(depends={"user": Depends(lambda req: req.headers.get("X-User", "anon"))})

    @app.get("/me")
    def me(*, user):
        return user

    assert app.test_client().get("/me", headers={"X-User": "ada"}).json == "ada"


def test_a_guard_declared_at_two_levels_runs_once(app, client):
    calls = []

    def audit(req):
        calls.append(req.path)

    router = Router("/r", depends=[Depends(audit)])
    router.get("/x", depends=[audit])(lambda: "x")
    app.include_router(router, depends=[Depends(audit)])

    assert client.get("/r/x").json == "x"
    assert calls == ["/r/x"]


def test_responses_merge_outside_in_and_the_inner_entry_wins(app, client):
    inner = Router("/in", responses={404: "Item not found", 409: "Inner conflict"})
    inner.get("/x", responses={409: "Route conflict"})(lambda: 1)
    outer = Router("/out", responses={403: "Forbidden here", 404: "Outer missing"})
    outer.include_router(inner)
    app.include_router(outer, responses={500: "Oops", 403: "Include forbidden"})

    (endpoint,) = app.routes.endpoints
    assert endpoint.responses == {
        500: "Oops",
        403: "Forbidden here",
        404: "Item not found",
        409: "Route conflict",
    }
    documented = client.get("/openapi.json").json["paths"]["/out/in/x"]["get"]["responses"]
    assert documented["404"]["description"] == "Item not found"
    assert documented["409"]["description"] == "Route conflict"
    assert documented["403"]["description"] == "Forbidden here"


def test_a_route_added_to_a_nested_router_before_the_app_includes_it_is_mounted(app, client):
    outer = Router("/outer")
    inner = Router("/inner")
    outer.include_router(inner)
    inner.get("/late")(lambda: "late")
    app.include_router(outer)

    assert client.get("/outer/inner/late").json == "late"


def test_an_unknown_name_in_a_nested_router_guard_fails_at_the_apps_include_router(app):
    inner = Router("/inner", depends=["auth"])
    inner.get("/x")(lambda: 1)
    outer = Router("/outer")
    outer.include_router(inner)  # not checked yet: the name may be registered later

    with pytest.raises(ValueError, match="dependency 'auth' is not registered") as info:
        app.include_router(outer)
    assert "<lambda>() at GET /outer/inner/x" in str(info.value)
    assert app.routes.endpoints == []


def test_an_unknown_name_in_app_depends_fails_at_the_first_route():
    app = App(depends=["auth"])
    with pytest.raises(ValueError, match=r"dependency 'auth' is not registered; call"):
        app.get("/x")(lambda: 1)


def test_a_router_cannot_include_itself_directly_or_through_another():
    outer, inner = Router("/a"), Router("/b")
    outer.include_router(inner)
    with pytest.raises(ValueError, match="a router cannot include itself"):
        inner.include_router(outer)
    with pytest.raises(ValueError, match="a router cannot include itself"):
        outer.include_router(outer)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"tags": "users"}, TypeError, r"tags= must be a list such as \['users'\], not a str"),
        ({"responses": [404]}, TypeError, r"responses= must be a dict such as \{404:"),
        ({"depends": [42]}, TypeError, r"a depends= list holds registered names, Depends"),
        ({"depends": "auth"}, TypeError, r"depends= must be a list or a dict"),
        ({"prefix": "api"}, ValueError, r"a router prefix must start with '/'"),
    ],
)
def test_bad_include_router_options_fail_at_the_call(app, kwargs, error, message):
    router = Router()
    router.get("/x")(lambda: 1)
    with pytest.raises(error, match=message):
        app.include_router(router, **kwargs)
    with pytest.raises(error, match=message):
        Router().include_router(router, **kwargs)


def test_a_bad_responses_entry_from_a_router_fails_at_include_router(app):
    router = Router(responses={"404": "x"})
    router.get("/x")(lambda: 1)
    with pytest.raises(ValueError, match=r"<lambda>\(\) at GET /x: responses= keys must be HTTP"):
        app.include_router(router)


# -- guards read the request as sent ---------------------------------------------------------


def test_a_router_guard_reads_a_query_parameter_the_route_schema_does_not_declare(app, client):
    from marshmallow import fields

    from funapi_sync import Schema

    def require_token(input):
        if input.query.get("token") != "secret":
            raise HTTPException(401, "Bad token", headers={"WWW-Authenticate": "Token"})

    router = Router("/items", depends=[Depends(require_token)])
    Page = Schema.define("Page", page=fields.Integer(load_default=1))

    @router.get("/", query=Page)
    def list_items(input):
        return input.query

    app.include_router(router)

    assert client.get("/items?page=2&token=secret").json == {"page": 2}
    assert client.get("/items?page=2").status_code == 401
    assert client.get("/items?page=2&token=wrong").status_code == 401


def test_on_include_hooks_get_the_app_before_the_routes_are_added_nested_too():
    seen = []
    outer, inner = Router(), Router()

    @inner.get("/ping")
    def ping():
        return {}

    outer.include_router(inner, prefix="/inner")
    inner.on_include.append(lambda app: seen.append((app, len(app.routes.endpoints))))
    app = App(openapi_url=None)

    app.include_router(outer)

    assert seen == [(app, 0)]
    assert app.test_client().get("/inner/ping").status_code == 200


def test_an_on_include_hook_that_raises_adds_no_route():
    router = Router()

    @router.get("/ping")
    def ping():
        return {}

    def refuse(app):
        raise ValueError("not this app")

    router.on_include.append(refuse)
    app = App(openapi_url=None)

    with pytest.raises(ValueError, match="not this app"):
        app.include_router(router)
    assert app.test_client().get("/ping").status_code == 404
