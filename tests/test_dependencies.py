"""Dependencies: registered names, Depends, scopes, cleanup order, overrides and errors."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time

import pytest
from marshmallow import fields, validate
from werkzeug.test import EnvironBuilder

from funapi_sync import BackgroundTasks, Depends, HTTPException, Router, Schema

# -- injection ------------------------------------------------------------------------


def test_registered_name_is_injected_by_keyword(app, client):
    app.register("greeting", lambda: "hello")

    @app.get("/", depends=["greeting"])
    def index(*, greeting):
        return {"greeting": greeting}

    assert client.get("/").json == {"greeting": "hello"}


def test_depends_dict_maps_keywords_to_names_depends_and_bare_callables(app, client):
    app.register("database", lambda: "db-value")

    def current_user():
        return "alice"

    def flags():
        return ["beta"]

    @app.get("/", depends={"db": "database", "user": Depends(current_user), "flags": flags})
    def index(*, db, user, flags):
        return {"db": db, "user": user, "flags": flags}

    assert client.get("/").json == {"db": "db-value", "user": "alice", "flags": ["beta"]}


def test_depends_default_on_a_handler_keyword(app, client):
    def current_user(req):
        return req.headers.get("X-User", "anonymous")

    @app.get("/")
    def index(*, user=Depends(current_user)):
        return {"user": user}

    assert client.get("/", headers={"X-User": "bob"}).json == {"user": "bob"}


def test_sub_dependencies_come_from_input_req_background_names_and_depends(app, client):
    app.register("secret", lambda: "s3cr3t")

    def token(input):
        return input.headers.get("Authorization", "")

    def current_user(req, secret, background, tok=Depends(token)):
        assert isinstance(background, BackgroundTasks)
        return {"path": req.path, "secret": secret, "token": tok}

    @app.get("/me", depends={"user": Depends(current_user)})
    def me(*, user):
        return user

    response = client.get("/me", headers={"Authorization": "Bearer x"})
    assert response.json == {"path": "/me", "secret": "s3cr3t", "token": "Bearer x"}


def test_a_parameter_with_a_plain_default_keeps_its_default(app, client):
    app.register("limit", lambda: 99)

    def page(limit=10):
        return limit

    @app.get("/", depends={"page": Depends(page)})
    def index(*, page):
        return {"page": page}

    assert client.get("/").json == {"page": 10}


def test_each_dependency_is_made_at_most_once_per_request(app, client):
    calls: list[str] = []

    def connect():
        calls.append("connect")
        return object()

    app.register("db", connect)

    def users(db):
        calls.append("users")
        return db

    def orders(db):
        calls.append("orders")
        return db

    @app.get(
        "/",
        depends={"db": "db", "users": Depends(users), "orders": Depends(orders), "again": users},
    )
    def index(*, db, users, orders, again):
        return {"same": db is users is orders is again}

    assert client.get("/").json == {"same": True}
    assert calls == ["connect", "users", "orders"]
    assert client.get("/").json == {"same": True}
    assert calls.count("connect") == 2  # once per request, not once per app


def test_guard_dependency_runs_even_when_the_handler_does_not_take_it(app, client):
    def require_key(req):
        if req.headers.get("X-Key") != "k":
            raise HTTPException(401, "missing key", headers={"WWW-Authenticate": "Key"})

    @app.get("/", depends={"guard": Depends(require_key)})
    def index():
        return {"ok": True}

    denied = client.get("/")
    assert denied.status_code == 401
    assert denied.json == {"detail": "missing key"}
    assert denied.headers["WWW-Authenticate"] == "Key"
    assert client.get("/", headers={"X-Key": "k"}).json == {"ok": True}


# -- factory kinds and cleanup --------------------------------------------------------


def test_generator_cleanup_runs_after_the_tasks_in_order(app, client):
    events: list[str] = []

    def connect():
        events.append("connect")
        yield "conn"
        events.append("cleanup")

    app.register("db", connect, cleanup="after_tasks")

    @app.post("/", depends=["db"])
    def create(*, db, background):
        events.append("handler")

        def task():
            events.append(f"task start with {db}")
            events.append("task end")

        background.add_task(task)
        return {"ok": True}

    assert client.post("/").json == {"ok": True}
    # NOTE: the test client returns once the request's tasks and cleanup have run.
    assert events == ["connect", "handler", "task start with conn", "task end", "cleanup"]


def test_after_response_cleanup_runs_when_the_response_is_closed(app):
    events: list[str] = []

    def connect():
        yield "conn"
        events.append("cleanup")

    app.register("db", connect, cleanup="after_response")

    @app.get("/", depends=["db"])
    def index(*, db):
        events.append("handler")
        return {"db": db}

    environ = EnvironBuilder(path="/").get_environ()
    iterable = app(environ, lambda status, headers, exc_info=None: None)
    body = b"".join(iterable)
    assert b'"conn"' in body
    assert events == ["handler"], "cleanup must wait for the server to close the response"
    iterable.close()
    assert events == ["handler", "cleanup"]


@pytest.mark.parametrize("handler_adds", [True, False], ids=["with-a-task", "without"])
def test_a_task_added_by_an_after_response_cleanup_runs_after_the_handlers(app, handler_adds):
    # The tasks are taken from `background` once the after_response cleanups have run, so
    # one a cleanup adds (an audit row once the connection is released) is not dropped.
    ran: list[str] = []

    def connect(background):
        yield "conn"
        background.add_task(ran.append, "added by the cleanup")

    app.register("db", connect, cleanup="after_response")

    @app.get("/", depends=["db"])
    def index(*, db, background):
        if handler_adds:
            background.add_task(ran.append, "added by the handler")
        return {"db": db}

    environ = EnvironBuilder(path="/").get_environ()
    iterable = app(environ, lambda status, headers, exc_info=None: None)
    b"".join(iterable)
    iterable.close()
    assert app.background.drain(5)
    expected = ["added by the handler"] if handler_adds else []
    assert ran == [*expected, "added by the cleanup"]


def test_context_manager_value_is_entered_and_exited(app, client):
    events: list[object] = []

    class Resource:
        def __enter__(self):
            events.append("enter")
            return "entered"

        def __exit__(self, *exc_info):
            events.append(("exit", exc_info[0]))
            return False

    app.register("resource", Resource)

    @app.get("/", depends=["resource"])
    def index(*, resource):
        return {"resource": resource}

    assert client.get("/").json == {"resource": "entered"}
    assert events == ["enter", ("exit", None)]


def test_value_and_cleanup_tuple_is_split(app, client):
    closed: list[str] = []
    app.register("mailer", lambda: ("mailer-value", lambda: closed.append("closed")))

    @app.get("/", depends=["mailer"])
    def index(*, mailer):
        return {"mailer": mailer}

    assert client.get("/").json == {"mailer": "mailer-value"}
    assert closed == ["closed"]


def test_cleanups_run_in_reverse_order_of_creation_and_a_failure_does_not_stop_them(
    app, client, caplog_funapi
):
    events: list[str] = []

    def make(name, fail=False):
        def factory():
            events.append(f"open {name}")
            yield name
            events.append(f"close {name}")
            if fail:
                raise RuntimeError(f"closing {name} broke")

        return factory

    app.register("first", make("first"), cleanup="after_response")
    app.register("second", make("second", fail=True), cleanup="after_response")
    app.register("third", make("third"), cleanup="after_response")

    @app.get("/", depends=["first", "second", "third"])
    def index(*, first, second, third):
        return {"ok": True}

    assert client.get("/").status_code == 200
    assert events == [
        "open first",
        "open second",
        "open third",
        "close third",
        "close second",
        "close first",
    ]
    failures = [r for r in caplog_funapi.records if "cleanup of dependency" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].getMessage() == "cleanup of dependency 'second' failed"
    assert failures[0].levelno == logging.ERROR
    assert "closing second broke" in caplog_funapi.text


def test_handler_exception_reaches_the_generator_and_drops_plain_tasks(app, client, caplog_funapi):
    events: list[object] = []

    def connect():
        try:
            yield "conn"
        except ZeroDivisionError as exc:
            events.append(("rollback", type(exc).__name__))
            raise
        else:
            events.append("commit")

    app.register("db", connect)

    @app.post("/", depends=["db"])
    def create(*, db, background):
        background.add_task(events.append, "plain task")
        background.add_task_always(events.append, "always task")
        return 1 / 0

    response = client.post("/")
    assert response.status_code == 500
    assert response.json == {"detail": "Internal Server Error"}
    # The default cleanup runs before the response, so the rollback comes first.
    assert events == [("rollback", "ZeroDivisionError"), "always task"]
    # The generator re-raising the request's own exception is not a cleanup failure.
    assert "cleanup of dependency" not in caplog_funapi.text


def test_exception_answered_by_an_exception_handler_still_reaches_the_generator(app, client):
    seen: list[type[BaseException] | None] = []

    class Conflict(Exception):
        pass

    @app.exception_handler(Conflict)
    def on_conflict(req, exc):
        return {"detail": "conflict"}, 409

    def connect():
        try:
            yield "conn"
        except Exception as exc:
            seen.append(type(exc))
            raise
        else:
            seen.append(None)

    app.register("db", connect)

    @app.post("/", depends=["db"])
    def create(*, db, background):
        background.add_task(seen.append, "task")
        raise Conflict

    response = client.post("/")
    assert response.status_code == 409
    assert seen == [Conflict]


def test_a_dependency_taking_background_adds_to_the_same_request(app, client):
    events: list[str] = []

    def audit(background):
        background.add_task(events.append, "from dependency")
        return "audit"

    @app.post("/", depends={"audit": Depends(audit)})
    def create(*, audit, background):
        background.add_task(events.append, "from handler")
        return {"ok": True}

    assert client.post("/").json == {"ok": True}
    assert events == ["from dependency", "from handler"]


def test_a_guard_taking_background_gets_tasks_run_even_if_the_handler_does_not_take_it(app, client):
    events: list[str] = []

    def audit(background):
        background.add_task(events.append, "audited")

    @app.get("/", depends={"audit": Depends(audit)})
    def index():
        return {"ok": True}

    assert client.get("/").status_code == 200
    assert events == ["audited"]


# -- HTTPException from a dependency ----------------------------------------------------


def test_http_exception_from_a_dependency_sets_status_and_cleans_up_what_was_made(app, client):
    events: list[object] = []

    def connect():
        events.append("connect")
        try:
            yield "conn"
        except HTTPException as exc:
            events.append(("connect saw", exc.status_code))
            raise
        events.append("connect cleanup")

    def current_user(db, req):
        if "X-User" not in req.headers:
            raise HTTPException(401, "who are you?")
        return req.headers["X-User"]

    def never():
        events.append("never")

    app.register("db", connect)

    @app.get("/", depends={"db": "db", "user": Depends(current_user), "later": Depends(never)})
    def index(*, db, user, later):
        events.append("handler")
        return {"user": user}

    response = client.get("/")
    assert response.status_code == 401
    assert response.json == {"detail": "who are you?"}
    assert events == ["connect", ("connect saw", 401)]

    events.clear()
    assert client.get("/", headers={"X-User": "ann"}).json == {"user": "ann"}
    assert events == ["connect", "never", "handler", "connect cleanup"]


def test_http_exception_raised_before_a_generator_yields_gives_that_status(app, client):
    def locked():
        raise HTTPException(423)
        yield  # a generator dependency that refuses before yielding

    app.register("lock", locked)

    @app.get("/", depends=["lock"])
    def index(*, lock):
        return {}

    response = client.get("/")
    assert response.status_code == 423
    assert response.json == {"detail": "Locked"}


def test_dependency_failure_drops_plain_tasks_of_a_dependency_but_keeps_always_tasks(app, client):
    events: list[str] = []

    def audit(background):
        background.add_task(events.append, "plain")
        background.add_task_always(events.append, "always")

    def deny():
        raise HTTPException(403)

    @app.get("/", depends={"audit": Depends(audit), "deny": Depends(deny)})
    def index():
        events.append("handler")

    assert client.get("/").status_code == 403
    assert events == ["always"]


# -- app scope ------------------------------------------------------------------------


def test_app_scoped_value_is_made_once_and_cleaned_up_at_shutdown(app, client):
    events: list[str] = []

    def make_pool():
        events.append("create")
        yield "pool"
        events.append("close pool")

    app.register("pool", make_pool, scope="app")
    app.register("conn", lambda pool: f"conn on {pool}")
    app.on_shutdown(lambda: events.append("shutdown hook"))

    @app.get("/", depends=["conn", "pool"])
    def index(*, conn, pool):
        return {"conn": conn}

    for _ in range(3):
        assert client.get("/").json == {"conn": "conn on pool"}
    assert events == ["create"]
    # NOTE: Lifecycle.shutdown is what shutdown_process runs per app once the pool
    # drained; shutdown_process itself is once per process (see test_lifecycle).
    app.lifecycle.shutdown()
    assert events == ["create", "close pool", "shutdown hook"]


def test_app_scoped_value_is_made_once_under_concurrent_requests(app):
    calls: list[int] = []

    def make_client():
        calls.append(threading.get_ident())
        # NOTE: widens the window in which other threads could race past the check;
        # the assertion below holds only if creation is guarded.
        time.sleep(0.05)
        return object()

    app.register("http", make_client, scope="app")

    @app.get("/", depends=["http"])
    def index(*, http):
        return {"id": id(http)}

    barrier = threading.Barrier(16)
    ids: list[int] = []

    def hit():
        client = app.test_client()
        barrier.wait(timeout=10)
        ids.append(client.get("/").json["id"])

    threads = [threading.Thread(target=hit) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(calls) == 1
    assert len(ids) == 16
    assert len(set(ids)) == 1


def test_app_scoped_factory_that_fails_is_retried_on_the_next_request(app, client):
    attempts: list[int] = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("not yet")
        return "ready"

    app.register("service", flaky, scope="app")

    @app.get("/", depends=["service"])
    def index(*, service):
        return {"service": service}

    assert client.get("/").status_code == 500
    assert client.get("/").json == {"service": "ready"}
    assert client.get("/").json == {"service": "ready"}
    assert len(attempts) == 2


# -- registration errors ----------------------------------------------------------------


def test_unknown_name_in_depends_fails_at_decoration(app):
    with pytest.raises(ValueError, match="is not registered") as info:

        @app.get("/", depends=["mailer"])
        def index(*, mailer):
            return {}

    assert str(info.value) == (
        "index() at GET /: dependency 'mailer' is not registered; call"
        " app.register('mailer', factory) before adding the route, or pass"
        " depends={'mailer': Depends(factory)}"
    )


def test_unknown_sub_dependency_parameter_fails_at_decoration(app):
    def current_user(session):
        return session

    with pytest.raises(ValueError, match="takes parameter") as info:

        @app.get("/me", depends={"user": Depends(current_user)})
        def me(*, user):
            return {}

    message = str(info.value)
    assert message.startswith("me() at GET /me: dependency ")
    assert "current_user() takes parameter 'session'" in message
    assert "neither input, req, background nor a registered name" in message
    assert "app.register('session', factory)" in message
    assert "session=Depends(fn)" in message


def test_unknown_parameter_of_a_registered_factory_names_both(app):
    app.register("db", lambda settings: settings)

    with pytest.raises(ValueError, match=r"dependency 'db' takes parameter 'settings'"):

        @app.get("/", depends=["db"])
        def index(*, db):
            return {}


def test_cycle_between_registered_names_fails_at_register(app):
    app.register("a", lambda b: b)
    with pytest.raises(ValueError, match="cycle") as info:
        app.register("b", lambda a: a)
    assert str(info.value) == (
        "app.register('b', ...): dependency cycle 'b' -> 'a' -> 'b'; a dependency cannot"
        " need itself, directly or through others"
    )
    assert "b" not in app.registry.providers  # the failed registration left nothing behind


def test_cycle_through_depends_callables_fails_at_decoration(app):
    def first(x=None):
        return x

    def second(x=Depends(first)):
        return x

    # Close the loop after both exist: first now needs second.
    first.__defaults__ = (Depends(second),)

    with pytest.raises(ValueError, match="cycle") as info:

        @app.get("/", depends={"value": Depends(first)})
        def index(*, value):
            return {}

    message = str(info.value)
    assert message.startswith("index() at GET /: dependency cycle ")
    assert "first() -> " in message
    assert "second() -> " in message


def test_self_dependency_is_a_cycle(app):
    with pytest.raises(ValueError, match=r"dependency cycle 'me' -> 'me'"):
        app.register("me", lambda me: me)


@pytest.mark.parametrize("param", ["req", "input", "background"])
def test_app_scoped_factory_taking_a_request_thing_fails_at_register(app, param):
    factory = eval(f"lambda {param}: None")
    with pytest.raises(ValueError, match="app-scoped") as info:
        app.register("cache", factory, scope="app")
    assert str(info.value) == (
        f"app-scoped dependency 'cache' cannot take {param!r}: {param!r} lives for one"
        " request and 'cache' for the whole process; take only other app-scoped names,"
        " or register 'cache' with scope='request'"
    )


def test_app_scoped_factory_taking_a_request_scoped_name_fails(app):
    app.register("conn", lambda: "conn")
    with pytest.raises(ValueError, match="app-scoped dependency 'pool' cannot take 'conn'"):
        app.register("pool", lambda conn: conn, scope="app")


def test_app_scoped_factory_taking_a_later_registered_request_name_fails_at_decoration(app):
    app.register("pool", lambda conn: conn, scope="app")
    app.register("conn", lambda: "conn")
    with pytest.raises(ValueError, match="app-scoped") as info:

        @app.get("/", depends=["pool"])
        def index(*, pool):
            return {}

    assert str(info.value).startswith(
        "index() at GET /: app-scoped dependency 'pool' cannot take 'conn'"
    )


def test_app_scoped_factory_may_take_other_app_scoped_names(app, client):
    app.register("settings", lambda: {"dsn": "sqlite://"}, scope="app")
    app.register("engine", lambda settings: f"engine({settings['dsn']})", scope="app")

    @app.get("/", depends=["engine"])
    def index(*, engine):
        return {"engine": engine}

    assert client.get("/").json == {"engine": "engine(sqlite://)"}


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("db", lambda: 1), {"scope": "session"}, ValueError, "scope must be 'request' or 'app'"),
        (("db", "not callable"), {}, TypeError, "the factory must be callable"),
        (("req", lambda: 1), {}, ValueError, "'req' is reserved for the request's own req"),
        (("not-a-name", lambda: 1), {}, ValueError, "must be a Python identifier"),
    ],
)
def test_bad_registrations_are_rejected(app, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        app.register(*args, **kwargs)


def test_registering_a_name_twice_points_at_overrides(app):
    app.register("db", lambda: 1)
    with pytest.raises(ValueError, match="already registered") as info:
        app.register("db", lambda: 2)
    assert "already registered" in str(info.value)
    assert "app.dependency_overrides['db']" in str(info.value)


def test_positional_only_dependency_parameter_is_rejected(app):
    def needs(db, /):
        return db

    with pytest.raises(TypeError, match="positional-only parameter 'db'"):

        @app.get("/", depends={"x": Depends(needs)})
        def index(*, x):
            return {}


def test_dependency_with_an_unreadable_signature_fails_at_decoration(app):
    # dict's parameters cannot be read (a C type with no __text_signature__): planning
    # it as "no parameters" would hide whatever it really needs until a request.
    with pytest.raises(TypeError) as info:

        @app.get("/", depends={"x": Depends(dict)})
        def index(*, x):
            return {}

    message = str(info.value)
    assert message.startswith("index() at GET /: cannot read the signature of dependency dict")
    assert "wrap it in a function" in message


def test_registering_a_factory_with_an_unreadable_signature_fails(app):
    with pytest.raises(TypeError, match=r"app.register\('cache', ...\): cannot read the signature"):
        app.register("cache", dict)


def test_depends_requires_a_callable():
    with pytest.raises(TypeError, match="Depends\\(\\) takes a callable, got 42"):
        Depends(42)


# -- overrides ------------------------------------------------------------------------


def test_override_by_name_and_delete_restores(app, client):
    app.register("db", lambda: "real")

    @app.get("/", depends=["db"])
    def index(*, db):
        return {"db": db}

    assert client.get("/").json == {"db": "real"}
    app.dependency_overrides["db"] = lambda: "fake"
    assert client.get("/").json == {"db": "fake"}
    del app.dependency_overrides["db"]
    assert client.get("/").json == {"db": "real"}


def test_override_by_callable_resolves_the_replacement_parameters(app, client):
    app.register("tenant", lambda: "acme")

    def current_user(req):
        return "real user"

    @app.get("/", depends={"user": Depends(current_user)})
    def index(*, user):
        return {"user": user}

    def fake_user(tenant, input):
        return f"test user of {tenant} at {input.path}"

    app.dependency_overrides[current_user] = fake_user
    assert client.get("/").json == {"user": "test user of acme at {}"}
    app.dependency_overrides.pop(current_user)
    assert client.get("/").json == {"user": "real user"}


def test_override_by_the_registered_factory(app, client):
    def connect():
        return "real"

    app.register("db", connect)

    @app.get("/", depends=["db"])
    def index(*, db):
        return {"db": db}

    app.dependency_overrides[connect] = lambda: "fake"
    assert client.get("/").json == {"db": "fake"}
    app.dependency_overrides.clear()
    assert client.get("/").json == {"db": "real"}


def test_override_generator_gets_its_cleanup(app, client):
    events: list[str] = []
    app.register("db", lambda: "real")

    def fake_db():
        yield "fake"
        events.append("fake cleanup")

    @app.get("/", depends=["db"])
    def index(*, db):
        return {"db": db}

    app.dependency_overrides["db"] = fake_db
    assert client.get("/").json == {"db": "fake"}
    assert events == ["fake cleanup"]


def test_override_of_an_app_scoped_name_takes_effect_at_once(app, client):
    app.register("clock", lambda: "real clock", scope="app")

    @app.get("/", depends=["clock"])
    def index(*, clock):
        return {"clock": clock}

    assert client.get("/").json == {"clock": "real clock"}
    app.dependency_overrides["clock"] = lambda: "frozen clock"
    assert client.get("/").json == {"clock": "frozen clock"}
    del app.dependency_overrides["clock"]
    assert client.get("/").json == {"clock": "real clock"}


def test_override_must_be_callable(app):
    with pytest.raises(TypeError) as info:
        app.dependency_overrides["db"] = "fake"
    assert str(info.value) == (
        "dependency_overrides['db'] must be a callable that makes the replacement value,"
        " got 'fake'; write dependency_overrides['db'] = lambda: value"
    )


def test_setdefault_and_update_on_overrides_take_effect(app, client):
    app.register("db", lambda: "real")

    @app.get("/", depends=["db"])
    def index(*, db):
        return {"db": db}

    assert client.get("/").json == {"db": "real"}
    app.dependency_overrides.setdefault("db", lambda: "via setdefault")
    assert client.get("/").json == {"db": "via setdefault"}
    app.dependency_overrides.update(db=lambda: "via update")
    assert client.get("/").json == {"db": "via update"}
    app.dependency_overrides.popitem()
    assert client.get("/").json == {"db": "real"}


# -- with routers -----------------------------------------------------------------------


def test_router_guard_dependency_shares_the_request_cache(app, client):
    from funapi_sync import Router

    calls: list[str] = []

    def connect():
        calls.append("connect")
        return "conn"

    app.register("db", connect)

    def require_user(db, req):
        if not req.headers.get("X-User"):
            raise HTTPException(401)

    router = Router("/admin", depends={"auth": Depends(require_user)})

    @router.get("/stats", depends=["db"])
    def stats(*, db):
        return {"db": db}

    app.include_router(router)
    assert client.get("/admin/stats").status_code == 401
    assert client.get("/admin/stats", headers={"X-User": "x"}).json == {"db": "conn"}
    assert calls == ["connect", "connect"]


def test_cleanup_does_not_run_twice_when_close_is_called_twice(app):
    closed: list[int] = []

    @contextlib.contextmanager
    def resource():
        yield "r"
        closed.append(1)

    app.register("r", resource, cleanup="after_response")

    @app.get("/", depends=["r"])
    def index(*, r):
        return {}

    iterable = app(EnvironBuilder(path="/").get_environ(), lambda *a: None)
    b"".join(iterable)
    iterable.close()
    iterable.close()
    assert closed == [1]


def test_an_override_whose_parameters_nothing_supplies_fails_when_assigned(app):
    app.register("mailer", lambda: "real mailer")

    @app.get("/", depends=["mailer"])
    def handler(*, mailer):
        return {"mailer": mailer}

    def needs_unknown(smtp_host):
        return "fake"

    with pytest.raises(ValueError, match=r"dependency_overrides\['mailer'\].*'smtp_host'"):
        app.dependency_overrides["mailer"] = needs_unknown
    assert "mailer" not in app.dependency_overrides
    assert app.test_client().get("/").json == {"mailer": "real mailer"}


def test_overriding_a_name_that_is_not_registered_fails_when_assigned(app):
    with pytest.raises(ValueError, match=r"'maler' is not registered"):
        app.dependency_overrides["maler"] = lambda: "fake"


# -- cleanup phases ---------------------------------------------------------------------


def test_default_cleanup_runs_before_the_response_is_sent(app):
    events: list[str] = []

    def connect():
        yield "conn"
        events.append("cleanup")

    app.register("db", connect)

    @app.get("/", depends=["db"])
    def index(*, db):
        events.append("handler")
        return {"db": db}

    def start_response(status, headers, exc_info=None):
        events.append("response started")

    iterable = app(EnvironBuilder(path="/").get_environ(), start_response)
    assert events == ["handler", "cleanup", "response started"]
    assert b"".join(iterable) == b'{"db":"conn"}'
    assert events == ["handler", "cleanup", "response started"]
    assert not hasattr(iterable, "close")  # nothing left for close() to do


def test_the_three_phases_run_in_order_around_the_tasks(app):
    events: list[str] = []
    seen_threads: dict[str, int] = {}

    def make(name, cleanup):
        def factory():
            yield name
            events.append(f"close {name}")
            seen_threads[name] = threading.get_ident()

        app.register(name, factory, cleanup=cleanup)

    make("before", "before_response")
    make("after", "after_response")
    make("tasks", "after_tasks")

    @app.post("/", depends=["before", "after", "tasks"])
    def create(*, before, after, tasks, background):
        background.add_task(events.append, "task")
        return {}

    def start_response(status, headers, exc_info=None):
        events.append("response started")

    iterable = app(EnvironBuilder(path="/", method="POST").get_environ(), start_response)
    b"".join(iterable)
    assert events == ["close before", "response started"]
    iterable.close()
    assert events[:3] == ["close before", "response started", "close after"]
    assert app.background.drain(timeout=10)
    assert events == ["close before", "response started", "close after", "task", "close tasks"]
    server_thread = threading.get_ident()
    assert seen_threads["before"] == seen_threads["after"] == server_thread
    assert seen_threads["tasks"] != server_thread  # the pool thread, after the task


def test_with_no_tasks_every_phase_runs_in_close_without_waiting(app):
    events: list[str] = []

    def tasks_value():
        yield "v"
        events.append(("after_tasks", threading.get_ident()))

    app.register("value", tasks_value, cleanup="after_tasks")

    @app.get("/", depends=["value"])
    def index(*, value):
        return {}

    iterable = app(EnvironBuilder(path="/").get_environ(), lambda *a: None)
    b"".join(iterable)
    assert events == []
    iterable.close()
    assert events == [("after_tasks", threading.get_ident())]


def test_a_failing_before_response_cleanup_is_the_response_and_drops_plain_tasks(
    app, client, caplog_funapi
):
    events: list[object] = []

    class CommitFailed(Exception):
        pass

    @app.exception_handler(CommitFailed)
    def on_commit_failed(req, exc):
        return {"detail": "not saved"}, 503

    def outer():
        try:
            yield "outer"
        except CommitFailed:
            events.append("outer saw the failure")
            raise

    def failing_commit(outer):
        yield "db"
        raise CommitFailed("constraint violated at commit")

    app.register("outer", outer)
    app.register("db", failing_commit)

    @app.post("/", depends=["db"])
    def create(*, db, background):
        background.add_task(events.append, "plain task")
        background.add_task_always(events.append, "always task")
        return {"saved": True}, 201

    response = client.post("/")
    assert (response.status_code, response.json) == (503, {"detail": "not saved"})
    assert events == ["outer saw the failure", "always task"]
    assert "cleanup of dependency" not in caplog_funapi.text


def test_a_failing_before_response_cleanup_without_a_handler_is_a_logged_500(
    app, client, caplog_funapi
):
    def failing_commit():
        yield "db"
        raise RuntimeError("disk I/O error")

    app.register("db", failing_commit)

    @app.post("/", depends=["db"])
    def create(*, db):
        return {"saved": True}, 201

    response = client.post("/")
    assert (response.status_code, response.json) == (500, {"detail": "Internal Server Error"})
    assert "disk I/O error" in caplog_funapi.text


def test_after_response_and_after_tasks_failures_are_logged_not_answered(
    app, client, caplog_funapi
):
    def failing(name):
        def factory():
            yield name
            raise RuntimeError(f"{name} broke")

        return factory

    app.register("late", failing("late"), cleanup="after_response")
    app.register("later", failing("later"), cleanup="after_tasks")

    @app.post("/", depends=["late", "later"])
    def create(*, late, later, background):
        background.add_task(lambda: None)
        return {}, 201

    assert client.post("/").status_code == 201
    messages = [r.getMessage() for r in caplog_funapi.records if r.levelno == logging.ERROR]
    assert messages == [
        "cleanup of dependency 'late' failed",
        "cleanup of dependency 'later' failed",
    ]


def test_depends_takes_a_cleanup_phase(app, client):
    events: list[str] = []

    def session():
        yield "s"
        events.append("closed")

    @app.post("/", depends={"s": Depends(session, cleanup="after_tasks")})
    def create(*, s, background):
        background.add_task(events.append, "task")
        return {}

    client.post("/")
    assert events == ["task", "closed"]


@pytest.mark.parametrize("cleanup", ["after_request", "", None, "BEFORE_RESPONSE"])
def test_an_unknown_cleanup_is_refused_at_registration(app, cleanup):
    message = (
        "cleanup must be 'before_response', 'after_response' or 'after_tasks', got "
        + re.escape(repr(cleanup))
    )
    with pytest.raises(ValueError, match=r"app.register\('db', ...\): " + message):
        app.register("db", lambda: 1, cleanup=cleanup)
    with pytest.raises(ValueError, match=message):
        Depends(lambda: 1, cleanup=cleanup)


def test_cleanup_with_app_scope_is_refused(app):
    with pytest.raises(ValueError, match="cleanup='after_tasks' applies to request-scoped values"):
        app.register("pool", lambda: 1, scope="app", cleanup="after_tasks")


def test_a_later_cleanup_taking_an_earlier_one_is_refused_at_registration(app):
    app.register("db", lambda: "db")  # before_response
    with pytest.raises(
        ValueError,
        match=r"dependency 'audit' \(cleanup='after_tasks'\) takes 'db', which is cleaned up"
        r" earlier \(cleanup='before_response'\), so 'audit' would use it after it closed",
    ):
        app.register("audit", lambda db: db, cleanup="after_tasks")


def test_a_later_cleanup_through_depends_is_refused_at_decoration(app):
    def db():
        yield "db"

    def audit(db=Depends(db)):
        return db

    with pytest.raises(
        ValueError, match=r"create\(\) at POST /: dependency \S*audit\(\) \(cleanup='after_tasks'\)"
    ):

        @app.post("/", depends={"audit": Depends(audit, cleanup="after_tasks")})
        def create(*, audit):
            return {}


def test_an_earlier_cleanup_may_take_a_later_one(app, client):
    events: list[str] = []

    def session():
        yield "session"
        events.append("session closed")

    def repo(session):
        yield f"repo({session})"
        events.append("repo closed")

    app.register("session", session, cleanup="after_tasks")
    app.register("repo", repo)

    @app.post("/", depends=["repo"])
    def create(*, repo, background):
        background.add_task(events.append, "task")
        return {"repo": repo}

    assert client.post("/").json == {"repo": "repo(session)"}
    assert events == ["repo closed", "task", "session closed"]


def test_one_callable_with_two_cleanups_in_one_route_is_refused(app):
    def session():
        yield "s"

    with pytest.raises(ValueError, match="is asked for with cleanup='after_tasks' and"):

        @app.get("/", depends={"a": Depends(session), "b": Depends(session, cleanup="after_tasks")})
        def index(*, a, b):
            return {}


# -- sibling keys -----------------------------------------------------------------------


def test_a_depends_parameter_named_like_a_sibling_key_gets_that_value(app, client):
    made: list[str] = []

    def get_db():
        made.append("db")
        return "route db"

    def current_user(db):
        return f"user from {db}"

    @app.get("/", depends={"db": Depends(get_db), "user": Depends(current_user)})
    def index(*, db, user):
        return {"db": db, "user": user}

    assert client.get("/").json == {"db": "route db", "user": "user from route db"}
    assert made == ["db"]  # made once, shared


def test_a_sibling_key_wins_over_a_registered_name_and_maps_to_names(app, client):
    app.register("db", lambda: "registered db")
    app.register("database", lambda: "the database")

    def current_user(db):
        return f"user from {db}"

    @app.get("/", depends={"db": "database", "user": Depends(current_user)})
    def index(*, user):
        return {"user": user}

    assert client.get("/").json == {"user": "user from the database"}


def test_a_sibling_named_like_the_dependency_itself_falls_back_to_the_registered_name(app, client):
    app.register("user", lambda: "registered user")

    def current_user(user):
        return f"checked {user}"

    @app.get("/", depends={"user": Depends(current_user)})
    def index(*, user):
        return {"user": user}

    assert client.get("/").json == {"user": "checked registered user"}


def test_depends_repr_names_a_cleanup_other_than_the_default():
    def session():
        yield "s"

    assert repr(Depends(session)).endswith("session)")
    assert repr(Depends(session, cleanup="after_tasks")).endswith("session, cleanup='after_tasks')")


def test_without_tasks_after_response_then_after_tasks_run_at_close(app):
    events: list[str] = []

    def make(name, cleanup):
        def factory():
            yield name
            events.append(name)

        app.register(name, factory, cleanup=cleanup)

    make("late", "after_response")
    make("latest", "after_tasks")

    @app.get("/", depends=["late", "latest"])
    def index(*, late, latest):
        return {}

    iterable = app(EnvironBuilder(path="/").get_environ(), lambda *a: None)
    b"".join(iterable)
    assert events == []
    iterable.close()
    assert events == ["late", "latest"]


# -- query and header parameters (Depends(fn, query=, headers=)) -------------------------

PageQuery = Schema.define(
    "PageQuery",
    page=fields.Integer(load_default=1, validate=validate.Range(min=1)),
    size=fields.Integer(load_default=20, validate=validate.Range(min=1, max=100)),
)
TokenHeaders = Schema.define("TokenHeaders", x_token=fields.String(required=True))


def paginate(page, size):
    return {"offset": (page - 1) * size, "limit": size}


def verify_token(x_token):
    if x_token != "secret":
        raise HTTPException(403, detail="bad token")


pagination = Depends(paginate, query=PageQuery)


def test_a_pagination_dependency_shared_by_two_routes_gets_validated_values(app, client):
    @app.get("/items", depends={"page": pagination})
    def items(*, page):
        return page

    @app.get("/users", depends={"page": Depends(paginate, query=PageQuery)})
    def users(*, page):
        return page

    assert client.get("/items?page=3&size=10").json == {"offset": 20, "limit": 10}
    assert client.get("/users").json == {"offset": 0, "limit": 20}
    # Other query keys are the route's or other dependencies' business, even repeated.
    assert client.get("/users?page=2&tag=a&tag=b").json == {"offset": 20, "limit": 20}


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("page=x", {"loc": ["query", "page"], "type": "int_parsing"}),
        ("size=0", {"loc": ["query", "size"], "type": "value_error"}),
        ("page=1&page=2", {"loc": ["query", "page"], "type": "value_error"}),
    ],
)
def test_an_invalid_query_parameter_of_a_dependency_is_a_422_at_its_name(
    app, client, query, problem
):
    calls = []

    @app.get("/items", depends={"page": pagination})
    def items(*, page):
        calls.append(page)
        return page

    response = client.get(f"/items?{query}")
    assert response.status_code == 422
    (entry,) = response.json["detail"]
    assert {key: entry[key] for key in problem} == problem
    assert calls == []


def test_a_header_token_guard_on_a_router_reads_and_validates_its_header(app, client):
    router = Router(prefix="/admin", depends=[Depends(verify_token, headers=TokenHeaders)])

    @router.get("/stats")
    def stats():
        return {"ok": True}

    app.include_router(router)

    assert client.get("/admin/stats", headers={"X-Token": "secret"}).json == {"ok": True}
    assert client.get("/admin/stats", headers={"x-token": "secret"}).status_code == 200
    assert client.get("/admin/stats", headers={"X-Token": "nope"}).status_code == 403
    missing = client.get("/admin/stats")
    assert missing.status_code == 422
    assert missing.json == {
        "detail": [
            {
                "loc": ["header", "x-token"],
                "msg": "Missing data for required field.",
                "type": "missing",
            }
        ]
    }


def test_a_header_field_with_a_data_key_reads_that_header_and_is_located_by_it(app, client):
    Headers = Schema.define(
        "Headers", api_key=fields.Integer(required=True, data_key="X-API_Key-Number")
    )

    def key(api_key):
        return api_key

    @app.get("/", depends={"key": Depends(key, headers=Headers)})
    def index(*, key):
        return {"key": key}

    environ = EnvironBuilder("/", environ_base={"HTTP_X_API_KEY_NUMBER": "7"}).get_environ()
    assert app.test_client().open(environ).json == {"key": 7}
    response = client.get("/", headers={"X-API-Key-Number": "seven"})
    assert response.json["detail"][0]["loc"] == ["header", "X-API_Key-Number"]


def test_an_optional_field_sent_without_a_value_leaves_the_default_else_none(app, client):
    Filter = Schema.define("Filter", q=fields.String(), tag=fields.String(), limit=fields.Integer())

    def search(q, tag="any", limit=5):
        return {"q": q, "tag": tag, "limit": limit}

    @app.get("/", depends={"found": Depends(search, query=Filter)})
    def index(*, found):
        return found

    assert client.get("/").json == {"q": None, "tag": "any", "limit": 5}
    assert client.get("/?q=x&limit=2").json == {"q": "x", "tag": "any", "limit": 2}


def test_a_guard_scheme_based_dependency_reads_its_parameters_before_the_body(app, client):
    from funapi_sync.security import HTTPBearer

    bearer = HTTPBearer()
    Tenant = Schema.define("Tenant", tenant=fields.String(required=True))
    seen = []

    def current_user(tenant, token=Depends(bearer)):
        seen.append((tenant, token))
        return token

    Body = Schema.define("Body", name=fields.String(required=True))

    @app.post("/", body=Body, depends={"user": Depends(current_user, query=Tenant)})
    def create(input, *, user):
        return {"user": user, "name": input.body["name"]}

    headers = {"Authorization": "Bearer abc"}
    response = client.post("/?tenant=t1", json={"name": "n"}, headers=headers)
    assert response.json == {"user": "abc", "name": "n"}
    # The tenant is checked with the credentials, before a body that is not even JSON.
    response = client.post("/", data="{", content_type="application/json", headers=headers)
    assert response.json["detail"][0]["loc"] == ["query", "tenant"]
    assert seen == [("t1", "abc")]


def test_a_registered_name_declares_its_parameters_too(app, client):
    app.register("page", paginate, query=PageQuery)

    @app.get("/", depends=["page"])
    def index(*, page):
        return page

    assert client.get("/?size=5&page=2").json == {"offset": 5, "limit": 5}
    assert client.get("/?size=500").status_code == 422


def test_an_app_scoped_name_cannot_read_the_request(app):
    with pytest.raises(ValueError, match=r"register it with scope='request'"):
        app.register("page", paginate, scope="app", query=PageQuery)


def test_an_override_replaces_what_the_dependency_reads(app, client):
    @app.get("/admin", depends=[Depends(verify_token, headers=TokenHeaders)])
    def admin():
        return {"ok": True}

    app.dependency_overrides[verify_token] = lambda: None
    assert client.get("/admin").json == {"ok": True}
    del app.dependency_overrides[verify_token]
    assert client.get("/admin").status_code == 422

    # An override that wants the parameter names its source, like any dependency.
    with pytest.raises(ValueError, match=r"takes parameter 'x_token'"):
        app.dependency_overrides[verify_token] = lambda x_token: None


def test_one_dependency_declared_with_two_schemas_fails_at_decoration(app):
    Other = Schema.define("Other", page=fields.Integer())

    def index(*, a, b): ...

    with pytest.raises(
        ValueError,
        match=r"paginate\(\) is asked for with query=Other and with query=PageQuery;.*"
        r"give every Depends\(\) of it the same query= and headers=",
    ):
        app.get("/", depends={"a": pagination, "b": Depends(paginate, query=Other)})(index)


def test_one_parameter_declared_by_two_schemas_fails_at_decoration(app):
    Other = Schema.define("OtherPage", page=fields.String())

    def listing(page):
        return page

    def index(*, a, b): ...

    with pytest.raises(
        ValueError,
        match=r"GET /: query parameter 'page' is declared by paginate\(\) \(query=PageQuery\)"
        r" and by \S*listing\(\) \(query=OtherPage\); declare it in one schema",
    ):
        app.get("/", depends={"a": pagination, "b": Depends(listing, query=Other)})(index)

    with pytest.raises(ValueError, match=r"declared by the route \(query=OtherPage\)"):
        app.get("/", query=Other, depends={"a": pagination})(lambda *, a: a)


def test_a_parameter_named_in_both_query_and_headers_fails_at_depends():
    Both = Schema.define("Both", x_token=fields.String())
    with pytest.raises(ValueError, match=r"query= and headers= both declare 'x_token'"):
        Depends(verify_token, query=Both, headers=TokenHeaders)


def test_a_field_parameter_with_a_depends_default_fails_at_decoration(app):
    def paged(page=Depends(lambda: 1), size=20):
        return page

    with pytest.raises(ValueError, match=r"takes 'page' from its query=PageQuery and from"):
        app.get("/", depends={"p": Depends(paged, query=PageQuery)})(lambda *, p: p)


def test_depends_query_must_be_a_schema():
    with pytest.raises(TypeError, match=r"Depends\(paginate\): query= must be a marshmallow"):
        Depends(paginate, query=dict)
    with pytest.raises(TypeError, match=r"headers= cannot be a list schema"):
        Depends(paginate, headers=[TokenHeaders])
