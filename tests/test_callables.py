"""Async user code is refused where it is given, with a TypeError naming the fix."""

from __future__ import annotations

import functools
import inspect

import pytest

from funapi_sync import App, Depends, Router
from funapi_sync._callables import is_async_callable

FIX = "funapi_sync is synchronous: it would get a coroutine object that nothing awaits"


async def coroutine_function():
    return {}


async def async_generator():
    yield "value"


class AsyncCallable:
    async def __call__(self):
        return {}


class SyncCallable:
    def __call__(self):
        return {}


class Service:
    async def send(self):
        return {}

    def record(self):
        return {}

    @classmethod
    async def send_all(cls):
        return {}

    @staticmethod
    async def ping():
        return {}


ASYNC_FORMS = [
    pytest.param(coroutine_function, id="async def"),
    pytest.param(async_generator, id="async generator"),
    pytest.param(functools.partial(coroutine_function), id="partial"),
    pytest.param(functools.partial(functools.partial(coroutine_function)), id="nested partial"),
    pytest.param(AsyncCallable(), id="async __call__"),
    pytest.param(Service().send, id="bound async method"),
    pytest.param(functools.partial(Service().send), id="partial of a bound async method"),
    pytest.param(Service.send_all, id="async classmethod"),
    pytest.param(Service.ping, id="async staticmethod"),
]


@pytest.mark.parametrize("fn", ASYNC_FORMS)
def test_every_async_form_is_seen(fn):
    assert is_async_callable(fn)


SYNC_FORMS = [
    lambda: 1,
    SyncCallable(),
    functools.partial(print),
    SyncCallable,
    print,
    Service().record,
    functools.partial(Service().record),
    [].append,
]


@pytest.mark.parametrize("fn", SYNC_FORMS)
def test_sync_callables_are_not(fn):
    assert not is_async_callable(fn)


@pytest.mark.parametrize("fn", [p.values[0] for p in ASYNC_FORMS] + SYNC_FORMS)
def test_the_fast_path_answers_as_inspect_does(fn):
    # The flag test for plain functions and their bound methods must agree with the
    # inspect-based check it shortcuts.
    unwrapped = fn
    while isinstance(unwrapped, functools.partial):
        unwrapped = unwrapped.func
    slow = (
        inspect.iscoroutinefunction(unwrapped)
        or inspect.isasyncgenfunction(unwrapped)
        or (
            not (inspect.isroutine(unwrapped) or isinstance(unwrapped, type))
            and callable(unwrapped)
            and inspect.iscoroutinefunction(type(unwrapped).__call__)
        )
    )
    assert is_async_callable(fn) is slow


@pytest.mark.parametrize("fn", ASYNC_FORMS)
def test_an_async_handler_is_refused_at_decoration(fn):
    app = App()
    with pytest.raises(TypeError, match=r"at GET /: .* is an async handler") as info:
        app.get("/")(fn)
    assert FIX in str(info.value)
    assert "write it with plain def" in str(info.value)


def test_an_async_handler_is_refused_when_a_router_declares_it():
    router = Router("/r")
    with pytest.raises(TypeError, match=r"coroutine_function\(\) at GET /r/: .* async handler"):
        router.get("/")(coroutine_function)


@pytest.mark.parametrize("fn", ASYNC_FORMS)
def test_an_async_registered_dependency_is_refused(fn):
    app = App()
    with pytest.raises(TypeError, match=r"app.register\('db', ...\): .* is an async dependency"):
        app.register("db", fn)


@pytest.mark.parametrize("fn", ASYNC_FORMS)
def test_an_async_depends_is_refused(fn):
    with pytest.raises(TypeError, match=r"Depends\(.*\): .* is an async dependency"):
        Depends(fn)


def test_an_async_bare_callable_in_depends_is_refused_at_decoration():
    app = App()
    with pytest.raises(TypeError, match=r"index\(\) at GET /: .* is an async dependency"):

        @app.get("/", depends={"user": coroutine_function})
        def index(*, user):
            return {}


def test_an_async_override_is_refused_when_assigned():
    app = App()
    app.register("db", lambda: "db")
    with pytest.raises(TypeError, match=r"dependency_overrides\['db'\]: .* async dependency"):
        app.dependency_overrides["db"] = coroutine_function
    assert "db" not in app.dependency_overrides


def test_an_async_exception_handler_is_refused():
    app = App()
    with pytest.raises(TypeError, match=r"exception_handler\(KeyError\): .* async exception"):
        app.exception_handler(KeyError)(coroutine_function)


@pytest.mark.parametrize("hook", ["on_startup", "on_shutdown"])
def test_async_lifecycle_hooks_are_refused(hook):
    app = App()
    with pytest.raises(TypeError, match=rf"{hook}\(\): .* is an async"):
        getattr(app, hook)(coroutine_function)
