"""Endpoint: the handler calling convention and every check made at registration time."""

from __future__ import annotations

import pytest
from marshmallow import fields
from werkzeug.wrappers import Request

from funapi_sync import BackgroundTasks, Schema

# -- the calling convention -----------------------------------------------------------


def test_handler_without_parameters(app, client):
    @app.get("/")
    def hello():
        return "hello"

    assert client.get("/").json == "hello"


def test_handler_taking_input_only(app, client):
    @app.get("/items/<int:item_id>")
    def item(input):
        return {"path": input.path, "query": input.query.to_dict()}

    assert client.get("/items/3?q=x").json == {"path": {"item_id": 3}, "query": {"q": "x"}}


def test_handler_taking_input_and_a_werkzeug_request(app, client):
    @app.post("/echo")
    def echo(input, req):
        assert isinstance(req, Request)
        return {"method": req.method, "agent": req.headers["User-Agent"], "body": input.body}

    response = client.post("/echo", json={"a": 1}, headers={"User-Agent": "pytest"})
    assert response.json == {"method": "POST", "agent": "pytest", "body": {"a": 1}}


def test_handler_taking_input_req_and_task_fans_out(app, client):
    @app.get("/fan-out")
    def fan_out(input, req, task):
        first = task.spawn(pow, 2, 10)
        second = task.spawn(lambda word: word.upper(), word="done")
        return task.gather(first, second)

    assert client.get("/fan-out").json == [1024, "DONE"]


def test_spawned_call_reraises_on_wait(app, client):
    @app.get("/fail")
    def fail(input, req, task):
        handle = task.spawn(int, "not a number")
        try:
            handle.wait()
        except ValueError:
            return "re-raised"
        return "swallowed"

    assert client.get("/fail").json == "re-raised"


def test_positional_parameters_are_matched_by_position_not_name(app, client):
    @app.get("/named-differently")
    def handler(data, request, fanout):
        return [type(data).__name__, type(request).__name__, type(fanout).__name__]

    assert client.get("/named-differently").json == ["Input", "Request", "Task"]


def test_background_is_injected_by_keyword(app, client):
    seen = []

    @app.get("/bg")
    def handler(*, background):
        assert isinstance(background, BackgroundTasks)
        background.add_task(seen.append, "ran")
        return "ok"

    assert client.get("/bg").json == "ok"
    assert seen == ["ran"]


def test_background_with_all_positional_parameters(app, client):
    seen = []

    @app.post("/signup")
    def signup(input, req, task, *, background):
        background.add_task(seen.append, input.body["email"])
        return {"ok": True}, 201

    response = client.post("/signup", json={"email": "a@example.com"})
    assert response.status_code == 201
    assert seen == ["a@example.com"]


def test_keyword_only_parameter_with_a_default_keeps_it(app, client):
    @app.get("/default")
    def handler(*, limit=10):
        return limit

    assert client.get("/default").json == 10


def test_registered_dependency_is_injected_by_keyword(app, client):
    app.register("greeting", lambda: "hi")

    @app.get("/greet", depends=["greeting"])
    def greet(*, greeting):
        return greeting

    assert client.get("/greet").json == "hi"


def test_decorator_returns_the_handler_unchanged(app):
    def handler():
        return 1

    assert app.get("/x")(handler) is handler
    assert handler() == 1


def test_callable_object_can_be_a_handler(app, client):
    class Hello:
        def __call__(self, input):
            return input.query.get("name", "world")

    app.get("/hello")(Hello())

    assert client.get("/hello?name=ada").json == "ada"


def test_summary_defaults_to_the_docstring_first_line(app):
    @app.get("/documented")
    def documented():
        """List the things.

        In detail.
        """

    @app.get("/explicit", summary="Explicit")
    def explicit():
        """Ignored for the summary."""

    first, second = app.routes.endpoints
    assert first.summary == "List the things."
    assert second.summary == "Explicit"


# -- registration-time errors ---------------------------------------------------------


def test_unknown_keyword_parameter_fails_at_decoration(app):
    with pytest.raises(TypeError, match="keyword-only parameter 'mailer'") as info:

        @app.post("/signup")
        def signup(input, *, mailer):
            return 1

    assert str(info.value) == (
        "signup() at POST /signup declares keyword-only parameter 'mailer', which is neither"
        " 'background' nor listed in depends=; add depends=['mailer'] or"
        " app.register('mailer', ...)"
    )
    assert app.routes.endpoints == []


def test_depends_name_not_registered_fails_at_decoration(app):
    with pytest.raises(ValueError, match="is not registered") as info:

        @app.post("/signup", depends=["mailer"])
        def signup(input, *, mailer):
            return 1

    assert str(info.value) == (
        "signup() at POST /signup: dependency 'mailer' is not registered; call"
        " app.register('mailer', factory) before adding the route, or pass"
        " depends={'mailer': Depends(factory)}"
    )


@pytest.mark.parametrize("body", [dict, {"name": fields.String()}, "UserSchema", [], [1]])
def test_non_schema_body_fails_at_decoration(app, body):
    with pytest.raises(TypeError, match=r"create\(\) at POST /users: body= must be a marshmallow"):

        @app.post("/users", body=body)
        def create(input):
            return 1


def test_non_schema_response_schema_fails_at_decoration(app):
    with pytest.raises(TypeError, match=r"response_schema= must be a marshmallow Schema"):
        app.get("/x", response_schema=fields.String())(lambda: 1)


def test_list_query_schema_fails_at_decoration(app):
    query = Schema.define(q=fields.String())
    with pytest.raises(TypeError, match=r"query= cannot be a list schema"):
        app.get("/x", query=[query])(lambda input: 1)


def test_background_declared_positional_fails_at_decoration(app):
    with pytest.raises(TypeError) as info:

        @app.get("/bg")
        def handler(input, background):
            return 1

    assert str(info.value) == (
        "handler() at GET /bg: positional parameter 'background' would receive req, not the"
        " background tasks; they are the keyword-only parameter named 'background': write"
        " def handler(input, req, task, *, background)"
    )


def fastapi_annotated(input, tasks: BackgroundTasks):
    return 1


def fastapi_named(background_tasks):
    return 1


@pytest.mark.parametrize(
    ("handler", "name", "receives"),
    [(fastapi_annotated, "tasks", "req"), (fastapi_named, "background_tasks", "input")],
    ids=["annotated-BackgroundTasks", "named-background_tasks"],
)
def test_fastapis_positional_background_tasks_fail_at_decoration(app, handler, name, receives):
    with pytest.raises(TypeError) as info:
        app.post("/signup")(handler)

    label = handler.__name__
    assert str(info.value) == (
        f"{label}() at POST /signup: positional parameter {name!r} would receive {receives},"
        " not the background tasks; they are the keyword-only parameter named 'background':"
        " write def handler(input, req, task, *, background)"
    )


def test_keyword_only_background_tasks_is_told_to_be_named_background(app):
    with pytest.raises(TypeError) as info:

        @app.post("/signup")
        def signup(input, *, background_tasks):
            return 1

    assert str(info.value) == (
        "signup() at POST /signup declares keyword-only parameter 'background_tasks'; the"
        " request's BackgroundTasks are injected under the name 'background' (FastAPI's"
        " background_tasks): name it `background`"
    )


def test_a_registered_background_tasks_name_is_still_allowed(app):
    app.register("background_tasks", lambda: "mine")

    @app.get("/mine", depends=["background_tasks"])
    def mine(*, background_tasks):
        return {"value": background_tasks}

    assert app.test_client().get("/mine").json == {"value": "mine"}


@pytest.mark.parametrize(
    "handler",
    [lambda *args: 1, lambda **kwargs: 1, lambda input, *rest: 1],
    ids=["args", "kwargs", "input-and-args"],
)
def test_var_args_fail_at_decoration(app, handler):
    with pytest.raises(TypeError, match=r"handlers cannot take \*args or \*\*kwargs"):
        app.get("/x")(handler)


def test_more_than_three_positional_parameters_fail_at_decoration(app):
    with pytest.raises(TypeError) as info:

        @app.get("/x")
        def handler(input, req, task, extra):
            return 1

    assert str(info.value) == (
        "handler() at GET /x takes 4 positional parameters; a handler takes at most"
        " input, req, task (each optional from the right)"
    )


@pytest.mark.parametrize(
    ("status_code", "error"),
    [(99, ValueError), (600, ValueError), ("200", TypeError), (200.0, TypeError)],
)
def test_bad_status_code_fails_at_decoration(app, status_code, error):
    with pytest.raises(error, match=r"status_code must be an int from 100 to 599, got"):
        app.get("/x", status_code=status_code)(lambda: 1)


def test_methods_as_a_string_fails_at_decoration(app):
    with pytest.raises(TypeError, match=r"methods= must be a list such as \['GET'\], not a str"):
        app.route("/x", methods="GET")


def test_empty_methods_fail_at_decoration(app):
    with pytest.raises(ValueError, match="methods= must name at least one method"):
        app.route("/x", methods=[])(lambda: 1)


def test_non_callable_handler_fails_at_decoration(app):
    with pytest.raises(TypeError, match="a route handler must be callable, got 42"):
        app.get("/x")(42)


def test_background_in_depends_is_rejected(app):
    with pytest.raises(ValueError, match="'background' is always injected; remove it"):
        app.get("/x", depends=["background"])(lambda *, background: 1)


def test_depends_list_item_that_is_no_name_or_callable_is_rejected_with_the_fix(app):
    with pytest.raises(
        TypeError, match=r"a depends= list holds registered names, Depends\(fn\) or callables"
    ):
        app.get("/x", depends=[42])(lambda: 1)


def test_depends_list_of_callables_runs_them_as_guards(app, client):
    calls = []
    app.get("/x", depends=[lambda req: calls.append(req.path)])(lambda: 1)

    assert client.get("/x").json == 1
    assert calls == ["/x"]


def test_failed_registration_leaves_no_route(app, client):
    with pytest.raises(TypeError):
        app.get("/x")(lambda *, nope: 1)

    assert client.get("/x").status_code == 404


@pytest.mark.parametrize(
    ("responses", "error", "message"),
    [
        ([409], TypeError, r"responses= must be a dict such as \{409: 'Name taken'\}"),
        ({"409": "x"}, ValueError, r"responses= keys must be HTTP status ints, got '409'"),
        ({700: "x"}, ValueError, r"responses= keys must be HTTP status ints, got 700"),
        ({409: 42}, TypeError, r"responses\[409\] \(a description, a schema or an OpenAPI dict\)"),
    ],
)
def test_bad_responses_option_fails_at_decoration(app, responses, error, message):
    with pytest.raises(error, match=message):
        app.post("/x", responses=responses)(lambda: 1)


# -- the compiled plan: one snapshot per request ---------------------------------------


def test_a_request_reads_the_plan_and_its_flags_as_one_snapshot(app, client):
    # A recompile (dependency_overrides changed) in one thread while a request runs in
    # another must never pair the new plan with the old flags. Racing threads is not
    # deterministic, so this checks the structure that rules the race out: the plan and
    # its flags are one immutable record, swapped in one assignment, that run() reads once.
    import inspect

    from funapi_sync.endpoint import Compiled, Endpoint

    app.register("who", lambda input: input.query.get("who", "anon"))

    @app.get("/", depends=["who"])
    def hello(*, who):
        return {"who": who}

    (endpoint,) = app.routes.endpoints
    before = endpoint._compiled
    assert isinstance(before, Compiled)
    assert before.wants_input is True
    assert not any(
        name.startswith("_wants") or name == "_plan_version" for name in Endpoint.__slots__
    )

    app.dependency_overrides["who"] = lambda: "fake"
    assert client.get("/?who=ada").json == {"who": "fake"}
    after = endpoint._compiled
    assert after is not before
    assert after.version == app.dependency_overrides.version
    assert after.wants_input is False  # the override does not read input
    assert before.wants_input is True  # the old record is untouched

    source = inspect.getsource(Endpoint.run)
    assert source.count("self.compiled()") == 1
    for stale in ("self._compiled", "self.plan", "self.current_plan()", "self._wants"):
        assert stale not in source
