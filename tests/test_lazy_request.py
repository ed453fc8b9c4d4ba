"""LazyRequest reads as a plain werkzeug Request does, over a table of environs."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import EnvironBuilder, encode_multipart
from werkzeug.wrappers import Request

from funapi_sync import App
from funapi_sync._body import FORM_TYPES
from funapi_sync.lazy_request import DEFERRED, LazyRequest

MAX_BODY = 4096


def _environ(**options: Any) -> Callable[[], dict[str, Any]]:
    """A factory of fresh environs (each request reads its own body)."""
    overrides = options.pop("environ_overrides", {})
    drop = options.pop("drop", ())

    def make() -> dict[str, Any]:
        fresh = {k: v() if callable(v) else v for k, v in options.items()}
        builder = EnvironBuilder(**fresh)
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        environ.update(overrides)
        for key in drop:
            environ.pop(key, None)
        return environ

    return make


def _behind_proxy(make: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The environ as an app behind werkzeug's ProxyFix sees it."""

    def proxied() -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def capture(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            seen.append(environ)
            return []

        ProxyFix(capture, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)(make(), None)
        return seen[0]

    return proxied


def _multipart() -> tuple[str, bytes]:
    # NOTE: a fixed boundary, so both requests of a comparison see the same bytes.
    boundary, body = encode_multipart(
        {
            "title": "Report",
            "tags": ["a", "b"],
            "upload": FileStorage(
                io.BytesIO(b"hello\x00world"), "r\u00e9sum\u00e9.txt", "text/plain"
            ),
            "second": FileStorage(io.BytesIO(b"{}"), "data.json", "application/json"),
        },
        boundary="fixed-boundary-7e3a",
    )
    return f'multipart/form-data; boundary="{boundary}"', body


MULTIPART_TYPE, MULTIPART_BODY = _multipart()


ENVIRONS = {
    "get-with-query-and-headers": _environ(
        path="/users/42",
        query_string="a=1&a=2&b=%E2%82%AC&c=a+b&empty=&flag",
        headers={
            "Accept": "application/json;q=0.9, text/html",
            "Accept-Language": "fr-CH, fr;q=0.9, en;q=0.8",
            "User-Agent": "curl/8.5",
            "Authorization": "Basic dXNlcjpwYXNz",
            "If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT",
            "Range": "bytes=0-99",
            "Origin": "https://example.org",
            "Referer": "https://example.org/page",
            "Cache-Control": "no-cache, max-age=0",
            "X-Custom": "one",
        },
    ),
    "cookies": _environ(
        path="/", headers={"Cookie": 'session=abc123; theme=dark; quoted="x y"; session=dup'}
    ),
    "bearer-token": _environ(path="/", headers={"Authorization": "Bearer tok.en-1"}),
    "urlencoded-form": _environ(
        path="/signup", method="POST", data={"name": "Ada", "email": "ada@example.com"}
    ),
    "multipart-files": _environ(
        path="/upload", method="POST", data=MULTIPART_BODY, content_type=MULTIPART_TYPE
    ),
    "json-body": _environ(
        path="/signup",
        method="POST",
        data=json.dumps({"name": "Ada", "n": [1, 2]}),
        content_type="application/json; charset=utf-8",
    ),
    "invalid-json": _environ(
        path="/signup", method="POST", data="{nope", content_type="application/json"
    ),
    "form-over-max_content_length": _environ(
        path="/big", method="POST", data={"blob": "x" * (MAX_BODY * 2)}
    ),
    "chunked-body": _environ(
        path="/stream",
        method="POST",
        input_stream=lambda: io.BytesIO(b'{"chunked": true}'),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
        drop=("CONTENT_LENGTH",),
    ),
    "mounted-under-script-name": _environ(
        path="/items/caf\u00e9", base_url="http://example.com:8080/api/v1/", query_string="x=1"
    ),
    "https-no-host-header": _environ(
        path="/secure",
        base_url="https://example.com:8443",
        environ_overrides={"SERVER_NAME": "example.com", "SERVER_PORT": "8443"},
        drop=("HTTP_HOST",),
    ),
    "bare-environ": _environ(
        path="/",
        drop=("HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "QUERY_STRING", "REMOTE_ADDR"),
        environ_overrides={"REQUEST_METHOD": "patch", "PATH_INFO": ""},
    ),
    "remote-addr-and-forwarded-for": _environ(
        path="/",
        headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"},
        environ_overrides={"REMOTE_ADDR": "10.0.0.2", "REMOTE_USER": "ada"},
    ),
    "behind-proxyfix": _behind_proxy(
        _environ(
            path="/orders",
            query_string="page=2",
            headers={
                "X-Forwarded-For": "203.0.113.7",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "api.example.com",
                "X-Forwarded-Port": "443",
                "X-Forwarded-Prefix": "/shop",
            },
        )
    ),
    "untrusted-host": _environ(path="/", headers={"Host": "evil.example.net"}),
}


def _items(multi: MultiDict[str, Any]) -> list[tuple[str, Any]]:
    return list(multi.items(multi=True))


def _files(req: Request) -> list[tuple[str, Any, Any, bytes]]:
    return [(k, f.filename, f.content_type, f.read()) for k, f in req.files.items(multi=True)]


#: What a handler may read, each normalised to a comparable value.
PROBES: dict[str, Callable[[Request], Any]] = {
    "method": lambda r: r.method,
    "scheme": lambda r: r.scheme,
    "server": lambda r: r.server,
    "root_path": lambda r: r.root_path,
    "path": lambda r: r.path,
    "full_path": lambda r: r.full_path,
    "script_root": lambda r: r.script_root,
    "url": lambda r: r.url,
    "base_url": lambda r: r.base_url,
    "root_url": lambda r: r.root_url,
    "host_url": lambda r: r.host_url,
    "host": lambda r: r.host,
    "query_string": lambda r: r.query_string,
    "args": lambda r: _items(r.args),
    "form": lambda r: _items(r.form),
    "files": _files,
    "values": lambda r: _items(r.values),
    "cookies": lambda r: _items(r.cookies),
    "headers": lambda r: list(r.headers),
    "header lookup": lambda r: (r.headers.get("x-custom"), r.headers.get("Content-Type")),
    "remote_addr": lambda r: r.remote_addr,
    "remote_user": lambda r: r.remote_user,
    "access_route": lambda r: list(r.access_route),
    "content_type": lambda r: r.content_type,
    "mimetype": lambda r: (r.mimetype, dict(r.mimetype_params)),
    "content_length": lambda r: r.content_length,
    "get_data": lambda r: r.get_data(),
    "stream": lambda r: r.stream.read(),
    "get_json": lambda r: r.get_json(silent=True),
    "json": lambda r: r.json,
    "is_json": lambda r: r.is_json,
    "is_secure": lambda r: r.is_secure,
    "user_agent": lambda r: r.user_agent.string,
    "authorization": lambda r: (
        None if r.authorization is None else (r.authorization.type, dict(r.authorization))
    ),
    "accept_mimetypes": lambda r: r.accept_mimetypes.to_header(),
    "accept_languages": lambda r: r.accept_languages.best,
    "if_modified_since": lambda r: r.if_modified_since,
    "range": lambda r: None if r.range is None else r.range.to_header(),
    "origin": lambda r: r.origin,
    "referrer": lambda r: r.referrer,
    "cache_control": lambda r: r.cache_control.to_header(),
    "max_content_length": lambda r: r.max_content_length,
    "repr": repr,
}


def _read(probe: Callable[[Request], Any], req: Request) -> Any:
    try:
        return ("value", probe(req))
    except Exception as exc:  # werkzeug's own errors must be the same ones
        return ("raises", type(exc).__name__, getattr(exc, "code", None))


def _classes() -> tuple[type[Request], type[Request]]:
    """The app's per-app request class, and the same class on plain werkzeug."""
    lazy = App(max_body_size=MAX_BODY).request_class
    trusted = ["localhost", ".example.com", "127.0.0.1"]
    lazy = type("Request", (lazy,), {"trusted_hosts": trusted})
    eager = type(
        "Request",
        (Request,),
        {
            "max_content_length": MAX_BODY,
            "max_form_memory_size": MAX_BODY,
            "trusted_hosts": trusted,
        },
    )
    return eager, lazy


@pytest.mark.parametrize("probe_name", list(PROBES))
@pytest.mark.parametrize("environ_name", list(ENVIRONS))
def test_each_attribute_read_first_matches_werkzeug(environ_name, probe_name):
    # Each probe is the first read of a fresh lazy request, so each one is the read that
    # builds it.
    eager_class, lazy_class = _classes()
    make, probe = ENVIRONS[environ_name], PROBES[probe_name]
    with eager_class(make()) as eager, lazy_class(make()) as lazy:
        expected = _read(probe, eager)
        assert "headers" not in vars(lazy)
        assert _read(probe, lazy) == expected


@pytest.mark.parametrize("environ_name", list(ENVIRONS))
def test_every_attribute_in_turn_matches_werkzeug(environ_name):
    eager_class, lazy_class = _classes()
    make = ENVIRONS[environ_name]
    with eager_class(make()) as eager, lazy_class(make()) as lazy:
        for name, probe in PROBES.items():
            if name == "get_data" and eager.mimetype in FORM_TYPES and "form" in vars(eager):
                # On purpose: werkzeug's form parser keeps no copy, so after req.form its
                # get_data() is b""; ours is the exact bytes sent (SPEC §4, a signature).
                assert _read(probe, eager) == ("value", b"")
                assert _read(probe, lazy) == ("value", make()["wsgi.input"].read())
                continue
            assert _read(probe, lazy) == _read(probe, eager), name
        assert set(vars(eager)) <= set(vars(lazy))


def test_the_table_covers_what_it_claims():
    # The probes must see the features the table is there for, not empty values.
    eager, _ = _classes()

    def read(environ_name: str, probe: Callable[[Request], Any]) -> Any:
        with eager(ENVIRONS[environ_name]()) as req:
            return _read(probe, req)

    assert read("get-with-query-and-headers", lambda r: _items(r.args)[1]) == ("value", ("a", "2"))
    assert read("cookies", lambda r: r.cookies["theme"]) == ("value", "dark")
    assert read("urlencoded-form", lambda r: r.form["email"]) == ("value", "ada@example.com")
    assert read("multipart-files", lambda r: _files(r)[0][3]) == ("value", b"hello\x00world")
    assert read("behind-proxyfix", lambda r: (r.url, r.remote_addr)) == (
        "value",
        ("https://api.example.com/shop/orders?page=2", "203.0.113.7"),
    )
    assert read("mounted-under-script-name", PROBES["path"]) == ("value", "/items/caf\u00e9")
    too_large = ("raises", "RequestEntityTooLarge", 413)
    assert read("form-over-max_content_length", PROBES["form"]) == too_large
    assert read("untrusted-host", PROBES["host"]) == ("raises", "SecurityError", 400)
    assert read("invalid-json", PROBES["json"]) == ("raises", "BadRequest", 400)


def test_defers_exactly_what_werkzeug_init_sets():
    # A werkzeug upgrade that sets another attribute in __init__ fails here (the
    # __getattr__ safety net would still build the request for it).
    environ = ENVIRONS["get-with-query-and-headers"]()
    assert set(vars(Request(environ))) == {"environ", "shallow", *DEFERRED}


def test_constructing_reads_nothing_but_registers_like_werkzeug():
    environ = ENVIRONS["json-body"]()
    req = LazyRequest(environ)
    assert vars(req) == {"environ": environ, "shallow": False}
    assert environ["werkzeug.request"] is req
    assert (
        "werkzeug.request"
        not in LazyRequest(ENVIRONS["json-body"](), populate_request=False).environ
    )
    shallow = LazyRequest(ENVIRONS["json-body"](), shallow=True)
    with pytest.raises(RuntimeError):
        shallow.get_data()


def test_a_value_assigned_before_the_first_read_is_kept():
    req = LazyRequest(ENVIRONS["get-with-query-and-headers"]())
    req.path = "/rewritten"
    assert req.method == "GET"
    assert req.path == "/rewritten"
    assert req.full_path == "/rewritten?a=1&a=2&b=%E2%82%AC&c=a+b&empty=&flag"


def test_deleting_an_attribute_behaves_as_in_werkzeug():
    for req in (Request(ENVIRONS["cookies"]()), LazyRequest(ENVIRONS["cookies"]())):
        assert req.method == "GET"
        del req.method
        with pytest.raises(AttributeError, match="object has no attribute 'method'"):
            req.method  # noqa: B018


def test_an_unknown_attribute_raises_the_usual_attribute_error():
    req = LazyRequest(ENVIRONS["cookies"]())
    with pytest.raises(AttributeError, match="'LazyRequest' object has no attribute 'nope'") as e:
        req.nope  # noqa: B018
    assert e.value.name == "nope"
    assert req.path == "/"


def test_dunder_probes_and_copies_do_not_build_it():
    req = LazyRequest(ENVIRONS["cookies"]())
    assert not hasattr(req, "__html__")
    clone = copy.copy(req)
    assert "headers" not in vars(req)
    assert clone.cookies["theme"] == "dark"


def test_a_handler_that_takes_req_but_never_reads_it_gets_an_unbuilt_werkzeug_request():
    app = App()
    seen: list[Request] = []

    @app.get("/idle")
    def idle(input, req, task):
        seen.append(req)
        return {"ok": True}

    @app.get("/used")
    def used(input, req, task):
        return {"path": req.path, "ua": req.headers.get("User-Agent"), "q": req.args.get("q")}

    client = app.test_client()
    assert client.get("/idle").json == {"ok": True}
    (req,) = seen
    assert isinstance(req, Request)
    assert isinstance(req, app.request_class)
    assert "headers" not in vars(req)
    response = client.get("/used?q=1", headers={"User-Agent": "probe"})
    assert response.json == {"path": "/used", "ua": "probe", "q": "1"}


def test_an_exception_handler_reads_the_lazy_request():
    app = App()

    class Teapot(Exception):
        pass

    @app.exception_handler(Teapot)
    def teapot(req, exc):
        return {"method": req.method, "path": req.path}, 418

    @app.post("/brew")
    def brew():
        raise Teapot()

    response = app.test_client().post("/brew")
    assert response.status_code == 418
    assert response.json == {"method": "POST", "path": "/brew"}


def test_the_class_itself_can_be_inspected():
    # help(), inspect and Sphinx read attributes off the class, where there is no request.
    import inspect

    members = dict(inspect.getmembers(LazyRequest))
    assert {"headers", "method", "path"} <= set(members)
    assert "headers" in dir(App().request_class)


@pytest.mark.parametrize("route", ["/plain", "/with-task"])
def test_the_request_leaves_its_environ_so_refcounting_frees_both(route):
    # werkzeug's Request puts itself in environ["werkzeug.request"]; left there, that
    # cycle keeps the server's whole environ alive until the garbage collector runs.
    # (A failed request is left to the collector: its traceback holds the frames.)
    import gc
    import weakref

    from benchmarks.scenarios import call

    app = App(background_backend="inline")  # the task has run when close() returns
    refs: list[weakref.ref[Request]] = []
    ran: list[str] = []

    @app.get("/plain")
    def plain(input, req, task):
        refs.append(weakref.ref(req))
        return {"path": req.path}

    @app.get("/with-task")
    def with_task(input, req, task, *, background):
        refs.append(weakref.ref(req))
        background.add_task(lambda r: ran.append(r.path), req)  # a task may keep req
        return {}

    environ = EnvironBuilder(path=route).get_environ()
    gc.disable()
    try:
        status, _body = call(app, environ)
        assert app.background.drain(5)
        assert environ["werkzeug.request"] is None
        (ref,) = refs
        assert ref() is None, "the request outlived its request without the GC"
    finally:
        gc.enable()
    assert status == 200
    assert ran == (["/with-task"] if route == "/with-task" else [])
