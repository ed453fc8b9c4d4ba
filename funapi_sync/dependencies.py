"""Dependencies: registered names, ``Depends`` callables, their per-request scope and cleanups."""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from collections import UserDict
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ._callables import is_async_callable
from .security import guard_steps

logger = logging.getLogger("funapi_sync")

#: Parameter names a dependency (or handler keyword) gets from the request itself.
BUILTIN_SOURCES = frozenset({"input", "req", "background"})

#: When a request-scoped value is cleaned up, in the order the phases run (SPEC §7).
CLEANUP_PHASES = ("before_response", "after_response", "after_tasks")
BEFORE_RESPONSE, AFTER_RESPONSE, AFTER_TASKS = range(3)
#: The phase of an app-scoped value: after every request phase (it outlives them all).
APP_PHASE = len(CLEANUP_PHASES)

#: How a cleanup is called: ``exit_(exc_type, exc, traceback)``, as ``__exit__`` is.
Exit = Callable[..., Any]


class Depends:
    """Mark a callable as a dependency: ``depends={"user": Depends(current_user)}``.

    Its parameters are resolved by name from ``input``, ``req``, ``background``, other
    keys of the same route's ``depends=`` mapping, registered names and ``Depends``
    defaults, each at most once per request. A generator is a dependency with cleanup:
    the code after its ``yield`` runs in the ``cleanup`` phase, with the request's
    exception (if any) thrown in at the ``yield``.

    :param dependency: the callable; also usable as a parameter default,
        ``def handler(*, user=Depends(current_user))``.
    :param cleanup: ``"before_response"`` (default), ``"after_response"`` or
        ``"after_tasks"``; see ``docs/dependencies.md``.
    """

    __slots__ = ("cleanup", "dependency")

    def __init__(self, dependency: Callable[..., Any], *, cleanup: str = "before_response") -> None:
        if not callable(dependency):
            raise TypeError(f"Depends() takes a callable, got {dependency!r}")
        where = f"Depends({_name(dependency)})"
        refuse_async(dependency, where, "dependency")
        self.cleanup = check_cleanup(cleanup, where)
        self.dependency = dependency

    def __repr__(self) -> str:
        if self.cleanup == "before_response":
            return f"Depends({_name(self.dependency)})"
        return f"Depends({_name(self.dependency)}, cleanup={self.cleanup!r})"


def check_cleanup(cleanup: Any, where: str) -> str:
    """Return ``cleanup`` if it names a phase, else raise a ``ValueError`` listing them."""
    if not isinstance(cleanup, str) or cleanup not in CLEANUP_PHASES:
        raise ValueError(
            f"{where}: cleanup must be 'before_response', 'after_response' or"
            f" 'after_tasks', got {cleanup!r}"
        )
    return cleanup


def refuse_async(fn: Any, where: str, what: str) -> None:
    """Raise a ``TypeError`` naming the fix when calling ``fn`` would make a coroutine."""
    if is_async_callable(fn):
        raise TypeError(
            f"{where}: {_name(fn)} is an async {what}, and funapi_sync is synchronous: it"
            " would get a coroutine object that nothing awaits; write it with plain def"
            " (call async code inside it with asyncio.run(...) if you must)"
        )


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)


def _label(key: Any) -> str:
    return repr(key) if isinstance(key, str) else f"{_name(key)}()"


class Provider:
    """A registered factory: its name, scope, and the process-wide value for ``scope="app"``."""

    def __init__(
        self, name: str, factory: Callable[..., Any], scope: str, cleanup: str = "before_response"
    ) -> None:
        self.name = name
        self.factory = factory
        self.scope = scope
        self.phase = CLEANUP_PHASES.index(cleanup)
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
        refuse_async(value, f"dependency_overrides[{key!r}]", "dependency")
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


# A plan step: (key, callable, {param: source key}, kind, phase) where kind is "call" (once
# per request) or "app" (a process-wide registered value), and phase indexes CLEANUP_PHASES
# (APP_PHASE for an app-scoped value).
Step = tuple[Any, Callable[..., Any], dict[str, Any], str, int]


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
            source in params.values() for _, _, params, _, _ in self.steps
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

    def register(
        self,
        name: str,
        factory: Callable[..., Any],
        scope: str = "request",
        cleanup: str = "before_response",
    ) -> None:
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
        refuse_async(factory, where, "dependency")
        check_cleanup(cleanup, where)
        if scope == "app" and cleanup != "before_response":
            raise ValueError(
                f"{where}: cleanup={cleanup!r} applies to request-scoped values; an"
                " app-scoped value is cleaned up once, at shutdown; drop cleanup= or use"
                " scope='request'"
            )
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
        provider = Provider(name, factory, scope, cleanup)
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
        done: dict[Any, int] = {}
        kwargs: dict[str, Any] = {}
        # NOTE: a dependency's parameter named like another key of the same mapping is
        # that key's value (SPEC §7): depends={"db": Depends(get_db), "user": Depends(u)}
        # gives u(db) the route's db, even when a name 'db' is registered too.
        siblings = {keyword: _target(target, where) for keyword, target in depends.items()}
        for keyword, (target, phase) in siblings.items():
            key = self._visit(target, steps, done, (), where, phase=phase, siblings=siblings)
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
        done: dict[Any, int],
        path: tuple[Any, ...],
        where: str,
        lenient: bool = False,
        phase: str | None = None,
        siblings: Mapping[str, tuple[Any, str | None]] | None = None,
    ) -> Any:
        if isinstance(key, str) and key in BUILTIN_SOURCES:
            return key
        if key in done:
            if phase is not None and done[key] not in (CLEANUP_PHASES.index(phase), APP_PHASE):
                raise ValueError(
                    f"{where}: dependency {_label(key)} is asked for with cleanup={phase!r}"
                    f" and cleanup={CLEANUP_PHASES[done[key]]!r}; it is made once per"
                    " request and cleaned up once, so give every Depends() of it the same"
                    " cleanup="
                )
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
        if app_scoped:
            own = APP_PHASE
        elif provider is not None:
            own = provider.phase
        else:
            own = CLEANUP_PHASES.index(phase or "before_response")
        refuse_async(func, where, "dependency")
        params: dict[str, Any] = {}
        for pname, source in _parameters(func, where).items():
            if source is None:
                continue
            target: Any = source
            sub_phase: str | None = None
            if isinstance(source, Depends):
                target, sub_phase = source.dependency, source.cleanup
            elif siblings and source in siblings and siblings[source][0] != key:
                target, sub_phase = siblings[source]
            sub = self._visit(
                target, steps, done, (*path, key), where, lenient, sub_phase, siblings
            )
            if app_scoped and self._request_bound(sub):
                assert provider is not None
                raise ValueError(f"{where}: " + _app_takes_request_message(provider.name, pname))
            if sub in done and done[sub] < own:
                # NOTE: refused, not promoted: keeping the sub-dependency open longer would
                # silently move its cleanup (a commit) after the response.
                raise ValueError(
                    f"{where}: dependency {_label(key)} (cleanup={CLEANUP_PHASES[own]!r})"
                    f" takes {pname!r}, which is cleaned up earlier"
                    f" (cleanup={CLEANUP_PHASES[done[sub]]!r}), so {_label(key)} would use"
                    f" it after it closed; give {_label(sub)} cleanup={CLEANUP_PHASES[own]!r},"
                    f" or {_label(key)} cleanup={CLEANUP_PHASES[done[sub]]!r}"
                )
            params[pname] = sub
        if inspect.isgeneratorfunction(func):
            func = contextlib.contextmanager(func)
        steps.append((key, func, params, "app" if app_scoped else "call", own))
        done[key] = own
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


def _target(target: Any, where: str) -> tuple[Any, str | None]:
    """A ``depends=`` value as ``(key, cleanup phase or None for the registered one)``."""
    if isinstance(target, Depends):
        return target.dependency, target.cleanup
    if isinstance(target, str) or callable(target):
        return target, None
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
            sources[param.name] = param.default
        elif param.default is param.empty:
            sources[param.name] = param.name
        else:
            sources[param.name] = None
    return sources


# -- the per-request scope ------------------------------------------------------------


class RequestScope:
    """One request's dependency values and their exits, one list per cleanup phase."""

    __slots__ = ("exits", "registry", "values")

    def __init__(self, registry: Registry, builtins: dict[str, Any]) -> None:
        self.registry = registry
        self.values: dict[Any, Any] = builtins
        #: The exits of each phase of CLEANUP_PHASES, in creation order.
        self.exits: tuple[list[tuple[str, Exit]], ...] = ([], [], [])

    def resolve(self, plan: Plan) -> dict[str, Any]:
        """Make each value of ``plan`` not made yet; return the handler's keyword arguments."""
        self.make(plan.steps)
        values = self.values
        return {keyword: values[source] for keyword, source in plan.kwargs.items()}

    def make(self, steps: list[Step]) -> None:
        """Make the value of each step not made yet, in order."""
        values = self.values
        for key, func, params, kind, phase in steps:
            if key in values:
                continue
            kwargs = {name: values[source] for name, source in params.items()}
            if kind == "app":
                values[key] = self.registry.app_value(key, func, kwargs)
                continue
            value, exit_ = _enter(func(**kwargs))
            if exit_ is not None:
                self.exits[phase].append((_label(key), exit_))
            values[key] = value

    def close_phase(self, phase: int, exc: BaseException | None) -> None:
        """Run one phase's exits newest first; log each failure and go on."""
        exits = self.exits[phase]
        if exits:
            pending = list(exits)
            exits.clear()
            close_exits(pending, exc)

    def close_before_response(self, exc: Exception | None) -> Exception | None:
        """Run the ``before_response`` exits; return the failure the response must show.

        When the request succeeded so far, the first ``Exception`` a cleanup raises (a
        failing commit) is returned, not logged, and the older exits see it thrown in.
        """
        exits = self.exits[BEFORE_RESPONSE]
        pending = list(exits)
        exits.clear()
        return close_exits(pending, exc, keep_first=exc is None)

    def close(self, exc: BaseException | None) -> None:
        """Run every phase's exits, phase after phase, each newest first."""
        for phase in range(len(CLEANUP_PHASES)):
            self.close_phase(phase, exc)


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


def close_exits(
    exits: list[tuple[str, Exit]], exc: BaseException | None, keep_first: bool = False
) -> Exception | None:
    """Call each exit newest first with ``exc``; a failure is logged and the rest still run.

    :param keep_first: return the first ``Exception`` raised instead of logging it.
    """
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else (None, None, None)
    first: Exception | None = None
    for label, exit_ in reversed(exits):
        try:
            exit_(*exc_info)
        except BaseException as failure:
            # NOTE: a generator that lets the request's exception through re-raises it;
            # that is not a cleanup failure.
            if failure is exc:
                continue
            if keep_first and first is None and isinstance(failure, Exception):
                # As in an ExitStack, the older exits see the failure thrown in.
                first = exc = failure
                exc_info = (type(failure), failure, failure.__traceback__)
                continue
            logger.error("cleanup of dependency %s failed", label, exc_info=failure)
    return first
