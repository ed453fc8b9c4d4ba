"""Dependencies: registered names, ``Depends`` callables, their per-request scope and cleanups."""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from collections import UserDict
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .security import guard_steps

logger = logging.getLogger("funapi_sync")

#: Parameter names a dependency (or handler keyword) gets from the request itself.
BUILTIN_SOURCES = frozenset({"input", "req", "background"})

#: How a cleanup is called: ``exit_(exc_type, exc, traceback)``, as ``__exit__`` is.
Exit = Callable[..., Any]


class Depends:
    """Mark a callable as a dependency: ``depends={"user": Depends(current_user)}``.

    Its parameters are resolved by name from ``input``, ``req``, ``background``, registered
    names and other ``Depends`` defaults, each at most once per request. A generator is
    a dependency with cleanup: the code after its ``yield`` runs once the request's
    background tasks finished, with the request's exception (if any) thrown in at the
    ``yield``.

    :param dependency: the callable; also usable as a parameter default,
        ``def handler(*, user=Depends(current_user))``.
    """

    __slots__ = ("dependency",)

    def __init__(self, dependency: Callable[..., Any]) -> None:
        if not callable(dependency):
            raise TypeError(f"Depends() takes a callable, got {dependency!r}")
        self.dependency = dependency

    def __repr__(self) -> str:
        return f"Depends({_name(self.dependency)})"


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)


def _label(key: Any) -> str:
    return repr(key) if isinstance(key, str) else f"{_name(key)}()"


class Provider:
    """A registered factory: its name, scope, and the process-wide value for ``scope="app"``."""

    def __init__(self, name: str, factory: Callable[..., Any], scope: str) -> None:
        self.name = name
        self.factory = factory
        self.scope = scope
        self.lock = threading.Lock()
        self.has_value = False
        self.value: Any = None

    def forget(self) -> None:
        """Drop the app-scoped value (after shutdown, or in a forked child)."""
        self.has_value = False
        self.value = None
        self.lock = threading.Lock()


class DependencyOverrides(UserDict[Any, Callable[..., Any]]):
    """``app.dependency_overrides``: a dict that tells the plans when it changed.

    NOTE: a ``UserDict``, not a ``dict`` subclass: its ``pop``, ``setdefault``,
    ``update`` and ``|=`` all go through ``__setitem__``/``__delitem__``, so no way of
    changing it can skip the version bump that makes endpoints recompile their plans.
    """

    def __init__(self, check: Callable[[Any], object] | None = None) -> None:
        self.version = 0
        self._check = check
        super().__init__()

    def __setitem__(self, key: Any, value: Callable[..., Any]) -> None:
        if not callable(value):
            raise TypeError(
                f"dependency_overrides[{key!r}] must be a callable that makes the replacement"
                f" value, got {value!r}; write dependency_overrides[{key!r}] = lambda: value"
            )
        missing = object()
        previous: Any = self.data.get(key, missing)
        self.data[key] = value
        self.version += 1
        if self._check is None:
            return
        try:
            # NOTE: plan the replacement now, so a parameter nothing can supply fails
            # here, in the test that set it, not as a 500 on the next request.
            self._check(key)
        except Exception:
            if previous is missing:
                del self.data[key]
            else:
                self.data[key] = previous
            self.version += 1
            raise

    def __delitem__(self, key: Any) -> None:
        del self.data[key]
        self.version += 1


# A plan step: (key, callable, {param: source key}, kind) where kind is "call" (once per
# request) or "app" (a process-wide registered value).
Step = tuple[Any, Callable[..., Any], dict[str, Any], str]


class Plan:
    """What one endpoint needs, in creation order; built and checked at registration."""

    __slots__ = ("guards", "kwargs", "needs_background", "needs_input", "needs_request", "steps")

    def __init__(self, steps: list[Step], kwargs: dict[str, Any]) -> None:
        self.steps = steps
        self.kwargs = kwargs
        #: The steps that check credentials, resolved before the body is read.
        self.guards = guard_steps(steps)
        self.needs_background = self._uses("background")
        self.needs_input = self._uses("input")
        self.needs_request = self._uses("req")

    def _uses(self, source: str) -> bool:
        return source in self.kwargs.values() or any(
            source in params.values() for _, _, params, _ in self.steps
        )


class Registry:
    """The app's registered names and the overrides; compiles dependency plans."""

    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        self.overrides = DependencyOverrides(self._check_override)
        self.app_exits: list[tuple[str, Exit]] = []
        self._app_lock = threading.Lock()

    def _check_override(self, key: Any) -> None:
        self.plan({"override": key}, (), f"dependency_overrides[{_label(key)}]")

    def register(self, name: str, factory: Callable[..., Any], scope: str = "request") -> None:
        """Add ``name``; reject what can already be seen to be wrong (see ``App.register``)."""
        where = f"app.register({name!r}, ...)"
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"app.register() name must be a Python identifier, got {name!r}")
        if name in BUILTIN_SOURCES:
            raise ValueError(
                f"{where}: {name!r} is reserved for the request's own {name}; pick another name"
            )
        if not callable(factory):
            raise TypeError(f"{where}: the factory must be callable, got {factory!r}")
        if scope not in ("request", "app"):
            raise ValueError(f"{where}: scope must be 'request' or 'app', got {scope!r}")
        if name in self.providers:
            raise ValueError(
                f"{where}: {name!r} is already registered; register each name once and use"
                f" app.dependency_overrides[{name!r}] to swap it in tests"
            )
        params = _parameters(factory, where)
        if scope == "app":
            for pname, source in params.items():
                if isinstance(source, str) and source in BUILTIN_SOURCES:
                    raise ValueError(_app_takes_request_message(name, pname))
                if not isinstance(source, str) and source is not None:
                    raise ValueError(_app_takes_request_message(name, pname))
        provider = Provider(name, factory, scope)
        self.providers[name] = provider
        try:
            # NOTE: names not registered yet are skipped here (they may come later) and
            # caught when a route uses this one; a cycle through existing names is final.
            self._visit(name, [], {}, (), where, lenient=True)
        except ValueError:
            del self.providers[name]
            raise

    # -- planning -------------------------------------------------------------------

    def plan(self, depends: Mapping[str, Any], passed: Collection[str], where: str) -> Plan:
        """Resolve ``{keyword: name | Depends | callable}`` into ordered steps, or raise.

        Only the keywords in ``passed`` reach the handler; the others are guards, resolved
        for their effect (e.g. raising 401) and not passed.
        """
        steps: list[Step] = []
        done: dict[Any, None] = {}
        kwargs: dict[str, Any] = {}
        for keyword, target in depends.items():
            key = self._visit(_key_of(target, where), steps, done, (), where)
            if keyword in passed:
                kwargs[keyword] = key
        if "background" in passed:
            kwargs["background"] = "background"
        return Plan(steps, kwargs)

    def _factory(self, key: Any) -> tuple[Callable[..., Any], Provider | None, bool]:
        """The callable that makes ``key``, its provider, and whether it is overridden."""
        overrides = self.overrides
        provider = self.providers.get(key) if isinstance(key, str) else None
        original = provider.factory if provider is not None else key
        if key in overrides:
            return overrides[key], provider, True
        if provider is not None and _hashable(original) and original in overrides:
            return overrides[original], provider, True
        return original, provider, False

    def _visit(
        self,
        key: Any,
        steps: list[Step],
        done: dict[Any, None],
        path: tuple[Any, ...],
        where: str,
        lenient: bool = False,
    ) -> Any:
        if isinstance(key, str) and key in BUILTIN_SOURCES:
            return key
        if key in done:
            return key
        if key in path:
            cycle = " -> ".join(_label(k) for k in (*path, key))
            raise ValueError(
                f"{where}: dependency cycle {cycle}; a dependency cannot need itself,"
                " directly or through others"
            )
        if isinstance(key, str) and key not in self.providers:
            if lenient:
                return key
            if path:
                raise ValueError(
                    f"{where}: dependency {_label(path[-1])} takes parameter {key!r}, which is"
                    " neither input, req, background nor a registered name; call"
                    f" app.register({key!r}, factory), give the parameter a default, or"
                    f" write {key}=Depends(fn)"
                )
            raise ValueError(
                f"{where}: dependency {key!r} is not registered; call"
                f" app.register({key!r}, factory) before adding the route, or pass"
                f" depends={{{key!r}: Depends(factory)}}"
            )
        func, provider, overridden = self._factory(key)
        # NOTE: an overridden app-scoped name is made per request: a test that swaps it
        # must get the replacement at once, not a value cached before the swap.
        app_scoped = provider is not None and provider.scope == "app" and not overridden
        params: dict[str, Any] = {}
        for pname, source in _parameters(func, where).items():
            if source is None:
                continue
            sub = self._visit(source, steps, done, (*path, key), where, lenient)
            if app_scoped and self._request_bound(sub):
                assert provider is not None
                raise ValueError(f"{where}: " + _app_takes_request_message(provider.name, pname))
            params[pname] = sub
        if inspect.isgeneratorfunction(func):
            func = contextlib.contextmanager(func)
        steps.append((key, func, params, "app" if app_scoped else "call"))
        done[key] = None
        return key

    def _request_bound(self, key: Any) -> bool:
        if not isinstance(key, str) or key in BUILTIN_SOURCES:
            return True
        provider = self.providers.get(key)
        # NOTE: an unknown name (lenient mode, at register()) is judged when it is known.
        return provider is not None and (provider.scope != "app" or key in self.overrides)

    # -- app-scoped values ------------------------------------------------------------

    def app_value(self, key: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """The process-wide value of ``key``, made once even when threads race for it."""
        provider = self.providers[key]
        if provider.has_value:
            return provider.value
        with provider.lock:
            if not provider.has_value:
                value, exit_ = _enter(func(**kwargs))
                if exit_ is not None:
                    with self._app_lock:
                        self.app_exits.append((repr(key), exit_))
                provider.value = value
                provider.has_value = True
        return provider.value

    def close_app_values(self) -> None:
        """Clean up the app-scoped values, newest first, and forget them."""
        with self._app_lock:
            exits, self.app_exits = self.app_exits, []
        close_exits(exits, None)
        for provider in self.providers.values():
            provider.forget()

    def forget_app_values(self) -> None:
        """Drop app-scoped values without cleanup (a forked child does not own them)."""
        self._app_lock = threading.Lock()
        self.app_exits = []
        for provider in self.providers.values():
            provider.forget()


def _app_takes_request_message(name: str, pname: str) -> str:
    return (
        f"app-scoped dependency {name!r} cannot take {pname!r}: {pname!r} lives for one"
        f" request and {name!r} for the whole process; take only other app-scoped names,"
        f" or register {name!r} with scope='request'"
    )


def _hashable(obj: Any) -> bool:
    try:
        hash(obj)
    except TypeError:
        return False
    return True


def _key_of(target: Any, where: str) -> Any:
    if isinstance(target, Depends):
        return target.dependency
    if isinstance(target, str) or callable(target):
        return target
    raise TypeError(
        f"{where}: depends values must be registered names, Depends(callable) or callables;"
        f" got {target!r}"
    )


def _parameters(func: Callable[..., Any], where: str) -> dict[str, Any]:
    """Map each parameter of a dependency to what supplies it (None: its own default)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return {}
    sources: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(
                f"{where}: dependency {_name(func)}() has positional-only parameter"
                f" {param.name!r}; dependencies receive their arguments by name"
            )
        if isinstance(param.default, Depends):
            sources[param.name] = param.default.dependency
        elif param.default is param.empty:
            sources[param.name] = param.name
        else:
            sources[param.name] = None
    return sources


# -- the per-request scope ------------------------------------------------------------


class RequestScope:
    """One request's dependency values and the exits to run, newest first."""

    __slots__ = ("exits", "registry", "values")

    def __init__(self, registry: Registry, builtins: dict[str, Any]) -> None:
        self.registry = registry
        self.values: dict[Any, Any] = builtins
        self.exits: list[tuple[str, Exit]] = []

    def resolve(self, plan: Plan) -> dict[str, Any]:
        """Make each value of ``plan`` not made yet; return the handler's keyword arguments."""
        self.make(plan.steps)
        values = self.values
        return {keyword: values[source] for keyword, source in plan.kwargs.items()}

    def make(self, steps: list[Step]) -> None:
        """Make the value of each step not made yet, in order."""
        values = self.values
        for key, func, params, kind in steps:
            if key in values:
                continue
            kwargs = {name: values[source] for name, source in params.items()}
            if kind == "app":
                values[key] = self.registry.app_value(key, func, kwargs)
                continue
            value, exit_ = _enter(func(**kwargs))
            if exit_ is not None:
                self.exits.append((_label(key), exit_))
            values[key] = value

    def close(self, exc: BaseException | None) -> None:
        """Run the exits in reverse order of creation; log each failure and go on."""
        exits, self.exits = self.exits, []
        close_exits(exits, exc)


def _enter(result: Any) -> tuple[Any, Exit | None]:
    """Turn a factory's result into ``(value, exit)``: enter context managers, split pairs."""
    kind = type(result)
    if hasattr(kind, "__enter__") and hasattr(kind, "__exit__"):
        return result.__enter__(), result.__exit__
    if kind is tuple and len(result) == 2 and callable(result[1]):
        return result[0], _cleanup_exit(result[1])
    return result, None


def _cleanup_exit(cleanup: Callable[[], Any]) -> Exit:
    def exit_(*_exc_info: Any) -> bool:
        cleanup()
        return False

    return exit_


def close_exits(exits: list[tuple[str, Exit]], exc: BaseException | None) -> None:
    """Call each exit newest first with ``exc``; a failure is logged and the rest still run."""
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else (None, None, None)
    for label, exit_ in reversed(exits):
        try:
            exit_(*exc_info)
        except BaseException as failure:
            # NOTE: a generator that lets the request's exception through re-raises it;
            # that is not a cleanup failure.
            if failure is exc:
                continue
            logger.error("cleanup of dependency %s failed", label, exc_info=failure)
