"""Routing: path syntax, matching precedence, duplicates, 404/405, HEAD, OPTIONS, slashes."""

from __future__ import annotations

import re

import pytest

from funapi_sync import App

# NOTE: HEAD and 204 responses are checked through a plain ``app.test_client()``, not the
# ``client`` fixture: werkzeug's LintMiddleware does not know HEAD (it compares the GET's
# Content-Length with the empty body) and wants ``Content-Length: 0`` on a 204, which
# RFC 9110 §8.6 forbids a server to send.


def test_int_converter_passes_an_int(app, client):
    @app.get("/items/<int:item_id>")
    def item(input):
        return {"id": input.path["item_id"], "type": type(input.path["item_id"]).__name__}

    response = client.get("/items/42")
    assert response.status_code == 200
    assert response.json == {"id": 42, "type": "int"}


@pytest.mark.parametrize("path", ["/users/{user_id}", "/users/:user_id", "/users/<user_id>"])
def test_brace_and_colon_syntax_mean_a_werkzeug_parameter(app, client, path):
    @app.get(path)
    def user(input):
        return input.path

    assert client.get("/users/ada").json == {"user_id": "ada"}


def test_colon_and_brace_parameters_mix_in_one_path(app, client):
    @app.get("/orgs/:org/repos/{repo}")
    def repo(input):
        return input.path

    assert client.get("/orgs/pallets/repos/werkzeug").json == {
        "org": "pallets",
        "repo": "werkzeug",
    }


def test_int_converter_rejects_a_non_int_with_404(app, client):
    @app.get("/items/<int:item_id>")
    def item(input):
        return input.path

    response = client.get("/items/abc")
    assert response.status_code == 404
    assert response.json == {"detail": "Not Found"}


def test_float_converter_refuses_a_value_that_overflows_to_inf_with_404(app, client):
    @app.get("/scale/<float:x>")
    def scale(input):
        return {"x": input.path["x"]}

    assert client.get("/scale/2.5").json == {"x": 2.5}
    huge = "9" * 400 + ".0"  # matches werkzeug's regex, converts to inf
    response = client.get(f"/scale/{huge}")
    assert response.status_code == 404
    assert response.json == {"detail": "Not Found"}


@pytest.mark.parametrize("static_first", [True, False])
def test_static_segment_wins_over_parameter_whatever_the_order(app, client, static_first):
    def me():
        return "me"

    def user(input):
        return input.path["user_id"]

    routes = [("/users/me", me), ("/users/{user_id}", user)]
    if not static_first:
        routes.reverse()
    for path, handler in routes:
        app.get(path)(handler)

    assert client.get("/users/me").json == "me"
    assert client.get("/users/42").json == "42"


def test_static_segment_wins_inside_a_longer_path(app, client):
    @app.get("/users/<user_id>/posts/<post_id>")
    def post(input):
        return "parameter"

    @app.get("/users/<user_id>/posts/latest")
    def latest(input):
        return "static"

    assert client.get("/users/1/posts/latest").json == "static"
    assert client.get("/users/1/posts/7").json == "parameter"


def test_duplicate_method_and_path_is_rejected_at_decoration(app):
    @app.get("/users/{user_id}")
    def first(input):
        return 1

    with pytest.raises(ValueError, match="duplicate") as info:

        @app.get("/users/<user_id>")
        def second(input):
            return 2

    assert str(info.value) == (
        "second() at GET /users/<user_id> duplicates first() already registered for"
        " GET /users/{user_id}; each method+path may have one handler"
    )


def test_duplicate_differing_only_by_trailing_slash_is_rejected(app):
    @app.get("/items")
    def first():
        return 1

    with pytest.raises(ValueError, match=r"second\(\) at GET /items/ duplicates first\(\)"):

        @app.get("/items/")
        def second():
            return 2


def test_same_path_with_another_method_is_not_a_duplicate(app, client):
    @app.get("/items")
    def read():
        return "read"

    @app.post("/items")
    def create():
        return "created", 201

    assert client.get("/items").json == "read"
    assert client.post("/items").status_code == 201


def test_unknown_path_is_404_json(app, client):
    @app.get("/known")
    def known():
        return 1

    response = client.get("/unknown")
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.json == {"detail": "Not Found"}


def test_wrong_method_is_405_json_with_allow_header(app, client):
    @app.get("/items")
    def read():
        return 1

    @app.put("/items")
    def replace():
        return 1

    response = client.delete("/items")
    assert response.status_code == 405
    assert response.json == {"detail": "Method Not Allowed"}
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "PUT"}


def test_wrong_method_on_a_parameter_route_is_405(app, client):
    @app.get("/items/<int:item_id>")
    def item(input):
        return 1

    response = client.post("/items/1")
    assert response.status_code == 405
    assert response.json == {"detail": "Method Not Allowed"}
    assert "GET" in response.headers["Allow"]


def test_head_answers_every_get_with_the_same_headers_and_no_body(app):
    @app.get("/static")
    def static():
        return {"message": "hello"}

    @app.get("/items/<int:item_id>")
    def item(input):
        return {"id": input.path["item_id"]}, 200, {"X-Item": "yes"}

    client = app.test_client()
    for path in ("/static", "/items/5"):
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code == 200
        assert head.get_data() == b""
        assert head.headers["Content-Length"] == get.headers["Content-Length"]
        assert head.headers["Content-Length"] == str(len(get.get_data()))
        assert dict(head.headers) == dict(get.headers)


def test_head_for_a_werkzeug_response_has_no_body(app):
    from werkzeug.wrappers import Response

    @app.get("/text")
    def text():
        return Response("plain text")

    head = app.test_client().head("/text")
    assert head.status_code == 200
    assert head.get_data() == b""
    assert head.headers["Content-Length"] == str(len("plain text"))


def test_options_is_answered_with_204_and_allow(app):
    @app.get("/items/<int:item_id>")
    def item(input):
        return 1

    @app.delete("/items/<int:item_id>")
    def remove(input):
        return None

    response = app.test_client().options("/items/3")
    assert response.status_code == 204
    assert response.get_data() == b""
    assert set(response.headers["Allow"].split(", ")) == {"DELETE", "GET", "HEAD", "OPTIONS"}


def test_options_on_an_unknown_path_is_404(app, client):
    response = client.options("/nowhere")
    assert response.status_code == 404
    assert response.json == {"detail": "Not Found"}


@pytest.mark.parametrize(("declared", "requested"), [("/items", "/items/"), ("/items/", "/items")])
def test_trailing_slash_is_optional_and_never_redirects(app, client, declared, requested):
    @app.get(declared)
    def items():
        return "items"

    response = client.get(requested)
    assert response.status_code == 200
    assert response.json == "items"


def test_trailing_slash_is_optional_on_parameter_routes(app, client):
    @app.get("/users/<int:user_id>")
    def user(input):
        return input.path

    assert client.get("/users/7/").json == {"user_id": 7}


def test_non_ascii_static_path(app, client):
    @app.get("/café")
    def cafe():
        return "crème"

    response = client.get("/caf%C3%A9")
    assert response.status_code == 200
    assert response.json == "crème"


def test_non_ascii_path_value_arrives_decoded(app, client):
    @app.get("/greet/{name}")
    def greet(input):
        return input.path

    assert client.get("/greet/zo%C3%AB").json == {"name": "zoë"}


def test_route_with_several_methods(app, client):
    @app.route("/things", methods=["GET", "post"])
    def things(input, req):
        return req.method

    assert client.get("/things").json == "GET"
    assert client.post("/things").json == "POST"
    assert client.put("/things").status_code == 405


def test_route_defaults_to_get(app, client):
    @app.route("/default")
    def default():
        return "ok"

    assert client.get("/default").json == "ok"
    assert client.post("/default").status_code == 405


def test_route_added_without_decorator_syntax(app, client):
    def create(input):
        return input.body, 201

    returned = app.post("/things")(create)

    assert returned is create
    response = client.post("/things", json={"a": 1})
    assert response.status_code == 201
    assert response.json == {"a": 1}


@pytest.mark.parametrize(
    ("method", "decorator"),
    [("PUT", "put"), ("PATCH", "patch"), ("DELETE", "delete")],
)
def test_each_method_shorthand_registers_its_method(app, client, method, decorator):
    getattr(app, decorator)("/thing")(lambda: method)

    assert client.open("/thing", method=method).json == method
    assert client.get("/thing").status_code == 405


def test_path_must_start_with_a_slash(app):
    with pytest.raises(ValueError, match="route path must start with '/', got 'items'"):
        app.get("items")(lambda: 1)


def test_unknown_http_method_is_rejected(app):
    with pytest.raises(ValueError, match="unknown HTTP method 'FETCH'"):
        app.route("/x", methods=["FETCH"])(lambda: 1)


def test_root_path(app, client):
    @app.get("/")
    def root():
        return "root"

    assert client.get("/").json == "root"


def test_apps_do_not_share_routes(client):
    other = App()

    @other.get("/only-other")
    def only():
        return 1

    assert client.get("/only-other").status_code == 404
    assert other.test_client().get("/only-other").status_code == 200


def test_other_werkzeug_converters_work(app, client):
    @app.get("/files/<path:rest>")
    def files(input):
        return input.path

    @app.get("/kinds/<any(book, author):kind>/<uuid:ident>")
    def kinds(input):
        return {"kind": input.path["kind"], "ident": str(input.path["ident"])}

    @app.get("/scale/<float:factor>")
    def scale(input):
        return input.path["factor"] * 2

    ident = "12345678-1234-5678-1234-567812345678"
    assert client.get("/files/a/b/c.txt").json == {"rest": "a/b/c.txt"}
    assert client.get(f"/kinds/book/{ident}").json == {"kind": "book", "ident": ident}
    assert client.get(f"/kinds/film/{ident}").status_code == 404
    assert client.get("/scale/1.5").json == 3.0


def test_a_route_may_answer_options_itself(app, client):
    @app.route("/preflight", methods=["OPTIONS"])
    def preflight():
        return {"custom": True}

    response = client.options("/preflight")
    assert response.status_code == 200
    assert response.json == {"custom": True}


def test_use_after_the_app_served_is_refused():
    from werkzeug.middleware.proxy_fix import ProxyFix

    app = App()
    app.get("/")(lambda: {"ok": True})
    app.test_client().get("/")
    with pytest.raises(RuntimeError, match=r"after the app started serving; add middleware before"):
        app.use(ProxyFix)


# The segment tree must pick exactly the rule werkzeug's matcher picks, and leave every
# miss (404, 405) to werkzeug. Each case: rules (path, methods), then requests.
_TREE_CASES = [
    [("/users/<int:id>", ["GET"]), ("/users/<name>", ["GET"]), ("/users/me", ["GET"])],
    [("/a/<x>/c", ["GET"]), ("/a/b/<y>", ["GET"]), ("/a/<x>/<y>", ["POST"])],
    [("/f/<float:v>", ["GET"]), ("/f/<int:v>", ["PUT"]), ("/f/<uuid:v>", ["GET"])],
    [("/k/<any(red, blue):colour>", ["GET"]), ("/k/<name>", ["DELETE"])],
    [("/n/<int(fixed_digits=3):code>", ["GET"]), ("/n/<string(length=2):abbr>", ["GET"])],
    [("/p/<path:rest>", ["GET"]), ("/p/<name>/x", ["GET"])],
    [("/m/<a>.<b>", ["GET"]), ("/m/<c>", ["GET"])],
    # A dead end after a converter, below a choice point: the other branch must not see
    # the converter's value (the tree walks one-way stretches in a loop).
    [("/q/s/<x>/end", ["GET"]), ("/q/<y>/<z>/other", ["GET"])],
    [("/q/s/<x>/end", ["GET"]), ("/q/<y>/<z>/other", ["GET"]), ("/q/s/<x>/<w>/deep", ["PUT"])],
    # A parameter as the first segment, beside rules under a static first segment.
    [("/<a>/x", ["GET"]), ("/s/<b>", ["GET"]), ("/s/x", ["POST"]), ("/<c>/<d>/y", ["PUT"])],
    # A converter that may match an empty segment: walked segment by segment, not compiled.
    [("/e/<string(minlength=0):x>/end", ["GET"]), ("/e/<y>", ["GET"])],
]
_TREE_PATHS = [
    "/users/7",
    "/users/me",
    "/users/ada",
    "/users/7/",
    "/users/",
    "/a/b/c",
    "/a/z/c",
    "/a/b/q",
    "/f/1.5",
    "/f/3",
    "/f/12345678-1234-5678-1234-567812345678",
    "/f/x",
    "/k/red",
    "/k/green",
    "/n/123",
    "/n/12",
    "/n/ab",
    "/n/abc",
    "/p/a/b/c",
    "/p/a/x",
    "/m/x.y",
    "/m/xy",
    "/nowhere",
    "//users/7",
    "/users//",
    "/users/7//",
    "/a//c",
    "/",
    "/users/007",
    "/users/-1",
    "/q/s/1/end",
    "/q/s/1/other",
    "/q/t/1/other",
    "/q/s/1/2/deep",
    "/q/s/1/2/other",
    "/s/x",
    "/s/x/",
    "/q/x",
    "/s/x/y",
    "/a/b/y",
    "/e//end",
    "/e/a/end",
    "/e/a",
]


@pytest.mark.parametrize("rules", _TREE_CASES, ids=[case[0][0] for case in _TREE_CASES])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE"])
def test_segment_tree_agrees_with_werkzeug(rules, method):
    from werkzeug.exceptions import HTTPException as WerkzeugHTTPException
    from werkzeug.exceptions import MethodNotAllowed
    from werkzeug.routing import Map, Rule

    from funapi_sync.routing.table import RouteTable, _confirmed

    app = App()
    table = app.routes
    assert isinstance(table, RouteTable)
    for index, (path, methods) in enumerate(rules):
        app.route(path, methods=methods)(lambda index=index: {"rule": index})
    reference = Map(
        [Rule(path, endpoint=i, methods=m) for i, (path, m) in enumerate(rules)],
        strict_slashes=False,
        merge_slashes=False,
    ).bind("localhost")
    for path in _TREE_PATHS:
        try:
            expected = reference.match(path, method)
        except MethodNotAllowed as exc:
            # werkzeug's 405, kept only where a rule's converters accept the path.
            expected = type(_confirmed(reference, path, exc)).__name__
        except WerkzeugHTTPException as exc:
            expected = type(exc).__name__
        try:
            endpoint, values = table.match(path, method)
            got = (table.endpoints.index(endpoint), values)
        except WerkzeugHTTPException as exc:
            got = type(exc).__name__
        assert got == expected, path


def test_the_segment_tree_compiles_only_what_one_regex_can_match_alike():
    from funapi_sync.routing.table import RouteTable

    for rules, compiled in [
        (["/users/<int:id>", "/f/<float:v>", "/k/<any(red, blue):c>", "/u/<uuid:u>"], True),
        (["/users/<int:id>", "/e/<string(minlength=0):x>/end"], False),
        # Many static siblings at one node: looked up by the walk, not tried one by one.
        ([f"/api/r{i}/<int:id>" for i in range(65)], False),
        ([f"/api/r{i}/<int:id>" for i in range(64)], True),
    ]:
        app = App()
        for path in rules:
            app.get(path)(lambda: {})
        table = app.routes
        assert isinstance(table, RouteTable)
        _adapter, tree = table.freeze()
        assert tree.usable
        assert tree._compilable is compiled, rules


def test_a_made_up_method_compiles_nothing_and_gets_werkzeugs_answer():
    from werkzeug.exceptions import MethodNotAllowed

    from funapi_sync.routing.table import RouteTable

    app = App()
    app.get("/users/<int:id>")(lambda: {})
    table = app.routes
    assert isinstance(table, RouteTable)
    _adapter, tree = table.freeze()
    assert set(tree._patterns) == {"GET", "HEAD"}
    for method in ("FOO", "PURGE", "BREW"):
        with pytest.raises(MethodNotAllowed):
            table.match("/users/1", method)
    assert set(tree._patterns) == {"GET", "HEAD"}


def test_segment_tree_merges_parameters_by_converter_like_werkzeug():
    # werkzeug merges '/u/<a>' and '/u/<b>' into one transition, so at the next segment
    # the static 'c' of the second rule beats the first rule's parameter.
    app = App()
    app.get("/u/<a>/<x>")(lambda: {"rule": "first"})
    app.get("/u/<b>/c")(lambda: {"rule": "second"})
    assert app.test_client().get("/u/1/c").json == {"rule": "second"}
    assert app.test_client().get("/u/1/d").json == {"rule": "first"}


# -- paths with ``path`` converters: linear time, werkzeug's answers ----------------------


def _match_answer(table, path, method):
    from werkzeug.exceptions import HTTPException as WerkzeugHTTPException

    try:
        endpoint, values = table.match(path, method)
    except WerkzeugHTTPException as exc:
        return type(exc).__name__, sorted(getattr(exc, "valid_methods", None) or ())
    return table.endpoints.index(endpoint), values


def _timed_404(table, path, method="GET"):
    import time

    from werkzeug.exceptions import HTTPException as WerkzeugHTTPException

    start = time.perf_counter()
    with pytest.raises(WerkzeugHTTPException) as info:
        table.match(path, method)
    return info.value, time.perf_counter() - start


@pytest.mark.parametrize("size", [2000, 4000])
def test_three_path_converters_answer_a_long_miss_in_linear_time(size):
    # NOTE: werkzeug's one regex for the rule backtracks cubically on this miss: seconds
    # for 2 KB, tens of seconds for 4 KB (gunicorn's request-line limit).
    app = App()
    app.get("/<path:a>/<path:b>/<path:c>/z")(lambda input: input.path)
    table = app.routes
    path = "/" + "a/" * (size // 2) + "q"
    error, seconds = _timed_404(table, path)
    assert error.code == 404
    assert seconds < 1.0
    hit = "/" + "a/" * (size // 2) + "z"
    assert table.match(hit, "GET")[1] == {
        "a": "a",
        "b": "a",
        "c": "/".join(["a"] * (size // 2 - 2)),
    }


def test_a_long_miss_beside_another_method_is_a_quick_405_or_404():
    app = App()
    app.get("/<path:a>/<path:b>/<path:c>/z")(lambda input: input.path)
    app.delete("/<path:a>/<path:b>/<path:c>/z")(lambda input: input.path)
    table = app.routes
    error, seconds = _timed_404(table, "/" + "a/" * 2000 + "z", "POST")
    assert error.code == 405
    assert sorted(error.valid_methods) == ["DELETE", "GET", "HEAD"]
    assert seconds < 1.0
    error, seconds = _timed_404(table, "/" + "a/" * 2000 + "q", "POST")
    assert error.code == 404
    assert seconds < 1.0


def test_a_converter_refusal_beside_path_converters_is_a_quick_404():
    app = App()
    app.get("/<path:a>/<path:b>/<int(max=10):n>/z")(lambda input: input.path)
    app.put("/<path:a>/<path:b>/<int(max=10):n>/z")(lambda input: input.path)
    table = app.routes
    assert table.match("/x/y/3/z", "GET")[1] == {"a": "x", "b": "y", "n": 3}
    for path in ("/" + "a/" * 2000 + "11/z", "/" + "1/" * 2000 + "q"):
        for method in ("GET", "POST"):
            error, seconds = _timed_404(table, path, method)
            assert error.code == 404, (path[:10], method)
            assert seconds < 1.0


def test_path_values_are_the_shortest_that_let_the_rest_match(app):
    app.get("/<path:a>/<path:b>/")(lambda input: input.path)
    app.get("/f/<path:name>.json")(lambda input: input.path)
    app.get("/m/<x>.<y>/<path:rest>")(lambda input: input.path)
    table = app.routes
    assert _match_answer(table, "/p/q/r/", "GET") == (0, {"a": "p", "b": "q/r"})
    assert _match_answer(table, "/p/q//r", "GET") == (0, {"a": "p", "b": "q//r"})
    assert _match_answer(table, "/f/a.json/b.json", "GET") == (1, {"name": "a.json/b"})
    assert _match_answer(table, "/f/a/.json", "GET") == (1, {"name": "a/"})
    assert _match_answer(table, "/m/1.2/3/", "GET") == (2, {"x": "1", "y": "2", "rest": "3/"})
    # '.' stops at a newline: a path value holds none after its first character.
    assert _match_answer(table, "/f/\nx.json", "GET") == (1, {"name": "\nx"})
    assert _match_answer(table, "/f/x\n.json", "GET") == ("NotFound", [])


_SEGMENTS = [
    "a",
    "b",
    "<X>",
    "<int:X>",
    "<path:X>",
    "<int(max=5):X>",
    "<path:X>.j",
    "<X>.<Y>",
    "<X>-<Y>",
    "<int:X>-<Y>.j",
    "<path:X>.<Y>",
]
_REQUEST_SEGMENTS = ["a", "b", "3", "12", "", "a.j", "b.c", "\n", "x\ny.j", "1-2.j", "a-b-c", "-.-"]
_METHODS = ["GET", "POST", "DELETE"]


def _rule_text(segments, slash):
    parts = [s.replace("X", f"x{i}").replace("Y", f"y{i}") for i, s in enumerate(segments)]
    return "/" + "/".join(parts) + ("/" if slash and parts else "")


def _reference_answer(reference, path, method):
    from werkzeug.exceptions import HTTPException as WerkzeugHTTPException
    from werkzeug.exceptions import MethodNotAllowed

    from funapi_sync.routing.table import _confirmed

    try:
        return reference.match(path, method)
    except MethodNotAllowed as exc:
        error = _confirmed(reference, path, exc)
    except WerkzeugHTTPException as exc:
        error = exc
    return type(error).__name__, sorted(getattr(error, "valid_methods", None) or ())


#: What a request may put where a rule has each segment, so generated paths hit rules too.
_FILLINGS = {
    "a": ["a", "b"],
    "b": ["b"],
    "<X>": ["a", "12", "b.c", ""],
    "<int:X>": ["3", "12", "a"],
    "<path:X>": ["a", "a/b", "a//b", "3/a.j", "\n", "a/", "\na/b"],
    "<int(max=5):X>": ["3", "12"],
    "<path:X>.j": ["a.j", "a/b.j", "a.j/b.j", "a", "/a.j"],
    "<X>.<Y>": ["b.c", "a.b.c", "a"],
    "<X>-<Y>": ["a-b", "a-b-c", "--", "-a-", "a"],
    "<int:X>-<Y>.j": ["1-2.j", "12-a-b.j", "1-.j", "a-b.j", "1-2.j.j"],
    "<path:X>.<Y>": ["a.b", "a/b.c", "a.b/c.d", "a.", ".a", "a/.b", "\n.a"],
}


def _instance_strategy(segments, slash):
    from hypothesis import strategies as st

    fills = [st.sampled_from(_FILLINGS[segment]) for segment in segments]
    tail = st.sampled_from(["", "/", "//"] if slash else ["", "/"])
    return st.builds(lambda parts, end: "/" + "/".join(parts) + end, st.tuples(*fills), tail)


def _rules_strategy():
    from hypothesis import strategies as st

    segments = st.lists(st.sampled_from(_SEGMENTS), min_size=0, max_size=4)
    methods = st.lists(st.sampled_from(_METHODS), min_size=1, max_size=2, unique=True)
    return st.lists(st.tuples(segments, st.booleans(), methods), min_size=1, max_size=5)


def _paths_strategy():
    from hypothesis import strategies as st

    segments = st.lists(st.sampled_from(_REQUEST_SEGMENTS), min_size=0, max_size=6)
    path = st.builds(lambda s, lead: lead + "/".join(s), segments, st.sampled_from(["/", "//"]))
    return st.lists(path, min_size=1, max_size=8)


@pytest.mark.parametrize("budget", [0, None], ids=["pieces", "short-regex"])
def test_the_matcher_agrees_with_werkzeug_on_generated_rules_and_paths(monkeypatch, budget):
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from werkzeug.routing import Map, Rule

    from funapi_sync.routing import _segment_tree
    from funapi_sync.routing.table import CONVERTERS

    if budget is not None:
        # No segment is short enough for werkzeug's regex: every in-segment run of
        # converters goes through ``Pieces``.
        monkeypatch.setattr(_segment_tree, "_REGEX_BUDGET", budget)

    @settings(max_examples=250, deadline=None, database=None)
    @given(rules=_rules_strategy(), paths=_paths_strategy(), data=st.data())
    def check(rules, paths, data):
        app = App()
        accepted = []
        for segments, slash, methods in rules:
            try:
                app.route(_rule_text(segments, slash), methods=methods)(lambda: {})
            except ValueError:
                continue  # a duplicate, or the same URLs under other names: refused
            accepted.append((_rule_text(segments, slash), methods))
        reference = Map(
            [Rule(path, endpoint=i, methods=m) for i, (path, m) in enumerate(accepted)],
            strict_slashes=False,
            merge_slashes=False,
            converters=CONVERTERS,
        ).bind("localhost")
        table = app.routes
        aimed = [data.draw(_instance_strategy(segments, slash)) for segments, slash, _m in rules]
        for path in paths + aimed:
            for method in ["GET", "HEAD", "POST", "DELETE", "PUT"]:
                expected = _reference_answer(reference, path, method)
                assert _match_answer(table, path, method) == expected, (accepted, path, method)

    check()


def test_only_one_trailing_slash_is_optional_on_a_static_route(app):
    # As werkzeug: '/a//' is a path of its own, not '/a' (the static dict once stripped all).
    app.get("/a")(lambda: {})
    app.get("/")(lambda: {})
    table = app.routes
    assert _match_answer(table, "/a/", "GET") == (0, {})
    assert _match_answer(table, "/a//", "GET") == ("NotFound", [])
    assert _match_answer(table, "//", "GET") == (1, {})


def test_a_rule_with_a_trailing_slash_yields_to_one_without_it_as_in_werkzeug(app):
    # Both end at one werkzeug state: '/3' takes the rule without the slash, '/3/' the other.
    app.get("/<int:x>/")(lambda input: "slash")
    app.get("/<int(max=5):x>")(lambda input: "bare")
    table = app.routes
    assert _match_answer(table, "/3", "GET") == (1, {"x": 3})
    assert _match_answer(table, "/3/", "GET") == (0, {"x": 3})


# -- several converters in one segment: werkzeug's first match, in linear time --------------

_PIECE_TOKENS = [
    "<X>",
    "<int:X>",
    "<int(signed=True):X>",
    "<float:X>",
    "<float(signed=True):X>",
    "<string(length=2):X>",
    "<string(minlength=0):X>",
    "<string(minlength=2, maxlength=3):X>",
    "<any(a, ab, '1'):X>",
    "<uuid:X>",
    "<path:X>",
    "-",
    ".",
    "a",
    "1",
    "/",
]
#: '٣' is a \d digit that is not ASCII; '\n' stops a path value after its first character.
_PIECE_TEXT = ["-", ".", "a", "b", "1", "2", "٣", "/", "\n", "12345678-1234-5678-1234-567812345678"]


def test_pieces_find_the_first_match_of_werkzeugs_regex():
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from werkzeug.routing import Map, Rule

    from funapi_sync.routing._segment_tree import _pieces, _rule_segments

    @settings(max_examples=800, deadline=None, database=None)
    @given(
        tokens=st.lists(st.sampled_from(_PIECE_TOKENS), min_size=1, max_size=5),
        texts=st.lists(st.lists(st.sampled_from(_PIECE_TEXT), max_size=10), min_size=1),
    )
    def check(tokens, texts):
        text_rule = "/" + "".join(t.replace("X", f"x{i}") for i, t in enumerate(tokens))
        rule = Rule(text_rule)
        try:
            Map([rule])
        except ValueError:
            return  # e.g. '<a><a>'
        dynamic = [i for i, part in enumerate(rule._parts[1:]) if not part.static]
        if not dynamic:
            return
        part = rule._parts[1 + dynamic[-1]]
        segments = _rule_segments(rule)[dynamic[-1] :]
        if not part.final:
            segments = segments[:1]
        elif part.suffixed:
            segments = segments[:-1]
        pieces = _pieces(rule, segments, part.suffixed)
        assert pieces is not None, text_rule
        regex = re.compile(part.content)
        names = sorted(
            (n for n in regex.groupindex if n.startswith("__werkzeug_")), key=lambda n: int(n[11:])
        )
        for chars in texts:
            text = "".join(chars)
            found = regex.match(text)
            expected = None if found is None else [found.group(name) for name in names]
            if found is not None and part.suffixed:
                expected = (expected, found.groups()[-1] == "/")
            matched = pieces.match(text)
            got = None if matched is None else matched[0]
            if matched is not None and part.suffixed:
                got = (got, matched[1])
            assert got == expected, (text_rule, text)

    check()


def _adversarial_table(rule, other_method=None):
    app = App()
    app.get(rule)(lambda input: input.path)
    if other_method is not None:
        app.route(rule, methods=[other_method])(lambda input: input.path)
    return app.routes


@pytest.mark.parametrize("size", [4000, 8000])
@pytest.mark.parametrize(
    "rule",
    ["/<a>-<b>.json", "/<a>-<b>-<c>.json", "/x/<a>-<b>-<c>.json/y", "/<path:a>-<b>-<c>.json"],
)
def test_several_converters_in_one_segment_answer_a_long_miss_in_linear_time(rule, size):
    # NOTE: werkzeug's regex for '<a>-<b>-<c>.json' backtracks cubically on this miss:
    # about 95 s for 4 KB of '-'; with two converters, or a path converter, quadratically.
    table = _adversarial_table(rule)
    prefix = "/x/" if rule.startswith("/x/") else "/"
    suffix = "/y" if rule.endswith("/y") else ""
    error, seconds = _timed_404(table, prefix + "-" * size + suffix)
    assert error.code == 404
    assert seconds < 1.0
    hit = prefix + "-" * size + ".json" + suffix
    values = table.match(hit, "GET")[1]
    assert "".join(values.values()) == "-" * (size - len(values) + 1)
    assert values[next(reversed(values))] == "-"  # greedy: the last value is the shortest


def test_a_long_in_segment_miss_beside_another_method_is_a_quick_405_or_404():
    table = _adversarial_table("/<a>-<b>-<c>.json", other_method="DELETE")
    error, seconds = _timed_404(table, "/" + "-" * 4000 + ".json", "POST")
    assert error.code == 405
    assert sorted(error.valid_methods) == ["DELETE", "GET", "HEAD"]
    assert seconds < 1.0
    error, seconds = _timed_404(table, "/" + "-" * 4000, "POST")
    assert error.code == 404
    assert seconds < 1.0


def test_a_path_converter_beside_another_in_one_segment_answers_a_long_miss_quickly():
    table = _adversarial_table("/<path:a>.<ext>")
    for path in ("/" + "." * 8000 + "/", "/" + "./" * 4000, "/" + ".\n" * 4000):
        error, seconds = _timed_404(table, path)
        assert error.code == 404
        assert seconds < 1.0
    assert table.match("/d/x.tar.gz", "GET")[1] == {"a": "d/x", "ext": "tar.gz"}
