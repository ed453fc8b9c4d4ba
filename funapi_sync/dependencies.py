"""Dependencies: what a route may depend on, checked and compiled into a plan at registration."""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections import UserDict
from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple

from ._callables import callable_name, refuse_async
from ._exits import Exit, close_exits, enter
from .parameters import Load, Parameters, bind, declare, documented

#: Parameter names a dependency (or handler keyword) gets from the request itself.
BUILTIN_SOURCES = frozenset({"input", "req", "background"})
#: Where a request's scope keeps its WSGI environ (not an identifier: no name collides).
ENVIRON = "<environ>"

#: When a request-scoped value is cleaned up, in the order the phases run (SPEC §7).
CLEANUP_PHASES = ("before_response", "after_response", "after_tasks")
BEFORE_RESPONSE, AFTER_RESPONSE, AFTER_TASKS = range(3)
#: The phase of an app-scoped value: after every request phase (it outlives them all).
APP_PHASE = len(CLEANUP_PHASES)


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
    :param query: a schema of query parameters the dependency reads: its parameters
        named after the schema's fields get the validated values (a 422 located at
        ``["query", name]`` otherwise), and ``/openapi.json`` lists them.
    :param headers: the same for request headers (``x_token`` reads ``X-Token``; a
        field's ``data_key`` names its header exactly).

    .. versionchanged:: 0.2 ``query=`` and ``headers=``.
    """

    __slots__ = ("cleanup", "dependency", "parameters")

    def __init__(
        self,
        dependency: Callable[..., Any],
        *,
        cleanup: str = "before_response",
        query: Any = None,
        headers: Any = None,
    ) -> None:
        if not callable(dependency):
            raise TypeError(f"Depends() takes a callable, got {dependency!r}")
        where = f"Depends({callable_name(dependency)})"
        refuse_async(dependency, where, "dependency")
        self.cleanup = check_cleanup(cleanup, where)
        self.dependency = dependency
        #: The compiled ``query=`` and ``headers=`` schemas.
        self.parameters: tuple[Parameters, ...] = declare(query, headers, where)

    def __repr__(self) -> str:
        parts = [callable_name(self.dependency)]
        if self.cleanup != "before_response":
            parts.append(f"cleanup={self.cleanup!r}")
        parts.extend(repr(parameters) for parameters in self.parameters)
        return f"Depends({', '.join(parts)})"


def check_cleanup(cleanup: Any, where: str) -> str:
    """Return ``cleanup`` if it names a phase, else raise a ``ValueError`` listing them."""
    if not isinstance(cleanup, str) or cleanup not in CLEANUP_PHASES:
        raise ValueError(
            f"{where}: cleanup must be 'before_response', 'after_response' or"
            f" 'after_tasks', got {cleanup!r}"
        )
    return cleanup


def label(key: Any) -> str:
    """How messages and logs name a dependency: ``'db'`` for a name, ``get_db()`` for a callable."""
    return repr(key) if isinstance(key, str) else f"{callable_name(key)}()"


class Provider:
    """A registered factory: its name, scope, and the process-wide value for ``scope="app"``."""

    def __init__(
        self,
        name: str,
        factory: Callable[..., Any],
        scope: str,
        cleanup: str = "before_response",
        parameters: tuple[Parameters, ...] = (),
    ) -> None:
        self.name = name
        self.factory = factory
        self.scope = scope
        self.parameters = parameters
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


class Step(NamedTuple):
    """One value a plan makes: what makes it, from which values, and when it is cleaned up."""

    #: Where the value is kept in the request's scope: a registered name or the callable.
    key: Any
    #: What makes the value (a generator function is already a context manager here).
    func: Callable[..., Any]
    #: ``{parameter: key of the value that supplies it}``.
    params: dict[str, Any]
    #: ``"call"`` (made once per request) or ``"app"`` (a process-wide registered value).
    kind: str
    #: Its cleanup phase, an index of CLEANUP_PHASES (APP_PHASE for an app-scoped value).
    phase: int
    #: The query and header parameters it declares (documented even when overridden).
    declared: tuple[Parameters, ...] = ()
    #: What is loaded into its keyword arguments per request (none for an override).
    loads: tuple[Load, ...] = ()


class Plan:
    """What one endpoint needs, in creation order; built and checked at registration."""

    __slots__ = (
        "guards",
        "kwargs",
        "needs_background",
        "needs_environ",
        "needs_input",
        "needs_request",
        "parameters",
        "steps",
    )

    def __init__(
        self,
        steps: list[Step],
        kwargs: dict[str, Any],
        parameters: tuple[Parameters, ...] = (),
    ) -> None:
        self.steps = steps
        self.kwargs = kwargs
        #: The query and header parameters its steps declare, each once (for OpenAPI).
        self.parameters = parameters
        #: The steps that check credentials, resolved before the body is read.
        self.guards = guard_steps(steps)
        self.needs_background = self._uses("background")
        self.needs_input = self._uses("input")
        self.needs_request = self._uses("req")
        #: Some step loads query or header parameters from the WSGI environ.
        self.needs_environ = any(step.loads for step in steps)

    def _uses(self, source: str) -> bool:
        return source in self.kwargs.values() or any(
            source in step.params.values() for step in self.steps
        )


def checks_credentials(obj: Any) -> bool:
    """Whether ``obj`` is a security scheme: its class sets ``checks_credentials = True``.

    NOTE: an attribute, not ``isinstance(obj, SecurityScheme)``: the schemes are
    dependencies, so ``security`` imports this module and this module cannot import it.
    Read on the type, as ``isinstance`` would: a scheme class itself is not a scheme.
    """
    return getattr(type(obj), "checks_credentials", False) is True


def guard_steps(steps: list[Step]) -> list[Step]:
    """The plan steps that check credentials, with what they need, in order.

    A guard is a security scheme, or a dependency built on one (``current_user(token=
    Depends(bearer))``) that does not take the request's ``input``. The app resolves the
    guards before it reads the body, so a request without credentials is a 401 whatever
    its body (FastAPI's order), and no anonymous upload is parsed.
    """
    needs_input: set[Any] = set()
    guarded: set[Any] = set()
    for step in steps:
        sources = step.params.values()
        if "input" in sources or any(source in needs_input for source in sources):
            needs_input.add(step.key)
        elif (
            checks_credentials(step.key)
            or checks_credentials(step.func)
            or any(source in guarded for source in sources)
        ):
            guarded.add(step.key)
    if not guarded:
        return []
    # A guard's other sources (a database to look the token up in) come first too.
    by_key = {step.key: step for step in steps}
    wanted = set(guarded)
    pending = list(guarded)
    while pending:
        for source in by_key[pending.pop()].params.values():
            if source in by_key and source not in wanted:
                wanted.add(source)
                pending.append(source)
    return [step for step in steps if step.key in wanted]


class Registry:
    """The app's registered names and the overrides; compiles dependency plans."""

    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        self.overrides = DependencyOverrides(self._check_override)
        self.app_exits: list[tuple[str, Exit]] = []
        self._app_lock = threading.Lock()

    def _check_override(self, key: Any) -> None:
        self.plan({"override": key}, (), f"dependency_overrides[{label(key)}]")

    def register(
        self,
        name: str,
        factory: Callable[..., Any],
        scope: str = "request",
        cleanup: str = "before_response",
        query: Any = None,
        headers: Any = None,
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
        parameters = declare(query, headers, where)
        if scope == "app" and parameters:
            raise ValueError(
                f"{where}: query= and headers= are read from each request, and an app-scoped"
                " value is made once per process; register it with scope='request'"
            )
        if scope == "app":
            for pname, source in params.items():
                if isinstance(source, str) and source in BUILTIN_SOURCES:
                    raise ValueError(_app_takes_request_message(name, pname))
                if not isinstance(source, str) and source is not None:
                    raise ValueError(_app_takes_request_message(name, pname))
        provider = Provider(name, factory, scope, cleanup, parameters)
        self.providers[name] = provider
        try:
            # NOTE: names not registered yet are skipped here (they may come later) and
            # caught when a route uses this one; a cycle through existing names is final.
            _Planner(self, where, lenient=True).visit(name, ())
        except ValueError:
            del self.providers[name]
            raise

    # -- planning -------------------------------------------------------------------

    def plan(self, depends: Mapping[str, Any], passed: Collection[str], where: str) -> Plan:
        """Resolve ``{keyword: name | Depends | callable}`` into ordered steps, or raise.

        Only the keywords in ``passed`` reach the handler; the others are guards, resolved
        for their effect (e.g. raising 401) and not passed.
        """
        kwargs: dict[str, Any] = {}
        # NOTE: a dependency's parameter named like another key of the same mapping is
        # that key's value (SPEC §7): depends={"db": Depends(get_db), "user": Depends(u)}
        # gives u(db) the route's db, even when a name 'db' is registered too.
        siblings = {keyword: _target(target, where) for keyword, target in depends.items()}
        planner = _Planner(self, where, siblings=siblings)
        for keyword, (target, phase, declared) in siblings.items():
            key = planner.visit(target, (), phase, declared)
            if keyword in passed:
                kwargs[keyword] = key
        if "background" in passed:
            kwargs["background"] = "background"
        steps = planner.steps
        parameters = documented(
            ((label(step.key), parameters) for step in steps for parameters in step.declared),
            where,
        )
        return Plan(steps, kwargs, parameters)

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
                value, exit_ = enter(func(**kwargs))
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


class _Planner:
    """One plan being built: its steps so far, and the phase each planned key was given."""

    def __init__(
        self,
        registry: Registry,
        where: str,
        *,
        lenient: bool = False,
        siblings: Mapping[str, Wanted] | None = None,
    ) -> None:
        self.registry = registry
        self.where = where
        #: Skip names not registered yet (at register(): they may come later).
        self.lenient = lenient
        #: The route's ``depends=`` keys, each as what it wants.
        self.siblings = siblings or {}
        self.steps: list[Step] = []
        self.done: dict[Any, int] = {}
        #: The query and header parameters each planned key was declared with.
        self.declared: dict[Any, tuple[Parameters, ...]] = {}

    def visit(
        self,
        key: Any,
        path: tuple[Any, ...],
        phase: str | None = None,
        declared: tuple[Parameters, ...] | None = None,
    ) -> Any:
        """Plan ``key`` after everything it takes; return the key its value is kept under.

        :param path: the keys that led here, to name a cycle.
        :param phase: the ``cleanup=`` it is asked for with (None: its registered one).
        :param declared: its ``query=``/``headers=`` (None: its registered ones).
        """
        if self._settled(key, path, phase, declared):
            return key
        func, provider, overridden = self.registry._factory(key)
        if declared is None:
            declared = provider.parameters if provider is not None else ()
        # NOTE: an overridden app-scoped name is made per request: a test that swaps it
        # must get the replacement at once, not a value cached before the swap.
        app_scoped = provider is not None and provider.scope == "app" and not overridden
        app_provider = provider if app_scoped else None
        if app_provider is not None:
            own = APP_PHASE
        elif provider is not None:
            own = provider.phase
        else:
            own = CLEANUP_PHASES.index(phase or "before_response")
        refuse_async(func, self.where, "dependency")
        sources = _parameters(func, self.where)
        # NOTE: an override replaces what the dependency reads too (FastAPI's): a test
        # that swaps a token check out needs no token; the document keeps the original's.
        loads = () if overridden else self._bind(key, declared, sources)
        for load in loads:
            for attr in load.taken:
                del sources[attr]
        params = self._plan_parameters(key, sources, (*path, key), app_provider, own)
        if inspect.isgeneratorfunction(func):
            func = contextlib.contextmanager(func)
        kind = "call" if app_provider is None else "app"
        self.steps.append(Step(key, func, params, kind, own, declared, loads))
        self.done[key] = own
        self.declared[key] = declared
        return key

    def _bind(
        self, key: Any, declared: tuple[Parameters, ...], sources: dict[str, Any]
    ) -> tuple[Load, ...]:
        """Bind ``declared`` to the parameters named after its fields."""
        loads = bind(declared, {p: not isinstance(s, str) for p, s in sources.items()})
        for load in loads:
            for attr in load.taken:
                if isinstance(sources[attr], Depends):
                    raise ValueError(
                        f"{self.where}: dependency {label(key)} takes {attr!r} from its"
                        f" {load.parameters!r} and from {sources[attr]!r}; drop the"
                        " Depends() default or rename the parameter"
                    )
        return loads

    def _settled(
        self,
        key: Any,
        path: tuple[Any, ...],
        phase: str | None,
        declared: tuple[Parameters, ...] | None,
    ) -> bool:
        """Whether ``key`` needs no new step; raise if it can never have one."""
        if isinstance(key, str) and key in BUILTIN_SOURCES:
            return True
        done = self.done
        if key in done:
            if declared is not None and declared != self.declared[key]:
                raise ValueError(
                    f"{self.where}: dependency {label(key)} is asked for with"
                    f" {_declared_text(declared)} and with"
                    f" {_declared_text(self.declared[key])}; it is made once per request,"
                    " so give every Depends() of it the same query= and headers= (declare"
                    " it once, e.g. pagination = Depends(paginate, query=PageQuery))"
                )
            if phase is not None and done[key] not in (CLEANUP_PHASES.index(phase), APP_PHASE):
                raise ValueError(
                    f"{self.where}: dependency {label(key)} is asked for with cleanup={phase!r}"
                    f" and cleanup={CLEANUP_PHASES[done[key]]!r}; it is made once per"
                    " request and cleaned up once, so give every Depends() of it the same"
                    " cleanup="
                )
            return True
        if key in path:
            cycle = " -> ".join(label(k) for k in (*path, key))
            raise ValueError(
                f"{self.where}: dependency cycle {cycle}; a dependency cannot need itself,"
                " directly or through others"
            )
        if isinstance(key, str) and key not in self.registry.providers:
            if self.lenient:
                return True
            raise _unknown_name(self.where, key, path)
        return False

    def _plan_parameters(
        self,
        key: Any,
        sources: dict[str, Any],
        path: tuple[Any, ...],
        app_provider: Provider | None,
        own: int,
    ) -> dict[str, Any]:
        """Plan what supplies each of ``sources``; return ``{parameter: key}``."""
        params: dict[str, Any] = {}
        siblings = self.siblings
        for pname, source in sources.items():
            if source is None:
                continue
            target: Any = source
            sub_phase: str | None = None
            declared: tuple[Parameters, ...] | None = None
            if isinstance(source, Depends):
                target, sub_phase, declared = source.dependency, source.cleanup, source.parameters
            elif source in siblings and siblings[source][0] != key:
                target, sub_phase, declared = siblings[source]
            sub = self.visit(target, path, sub_phase, declared)
            self._check_lifetime(key, pname, sub, app_provider, own)
            params[pname] = sub
        return params

    def _check_lifetime(
        self, key: Any, pname: str, sub: Any, app_provider: Provider | None, own: int
    ) -> None:
        """Refuse a parameter whose value ends before the value that takes it."""
        where = self.where
        if app_provider is not None and self.registry._request_bound(sub):
            raise ValueError(f"{where}: " + _app_takes_request_message(app_provider.name, pname))
        done = self.done
        if sub in done and done[sub] < own:
            # NOTE: refused, not promoted: keeping the sub-dependency open longer would
            # silently move its cleanup (a commit) after the response.
            raise ValueError(
                f"{where}: dependency {label(key)} (cleanup={CLEANUP_PHASES[own]!r})"
                f" takes {pname!r}, which is cleaned up earlier"
                f" (cleanup={CLEANUP_PHASES[done[sub]]!r}), so {label(key)} would use"
                f" it after it closed; give {label(sub)} cleanup={CLEANUP_PHASES[own]!r},"
                f" or {label(key)} cleanup={CLEANUP_PHASES[done[sub]]!r}"
            )


def _unknown_name(where: str, key: str, path: tuple[Any, ...]) -> ValueError:
    if path:
        return ValueError(
            f"{where}: dependency {label(path[-1])} takes parameter {key!r}, which is"
            " neither input, req, background nor a registered name; call"
            f" app.register({key!r}, factory), give the parameter a default, or"
            f" write {key}=Depends(fn)"
        )
    return ValueError(
        f"{where}: dependency {key!r} is not registered; call"
        f" app.register({key!r}, factory) before adding the route, or pass"
        f" depends={{{key!r}: Depends(factory)}}"
    )


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


class Wanted(NamedTuple):
    """A ``depends=`` value as the planner reads it."""

    key: Any
    #: Its ``cleanup=`` (None: the registered one).
    phase: str | None
    #: Its ``query=`` and ``headers=`` (None: the registered ones).
    declared: tuple[Parameters, ...] | None


def _declared_text(declared: tuple[Parameters, ...]) -> str:
    return ", ".join(repr(parameters) for parameters in declared) or "no query=/headers="


def _target(target: Any, where: str) -> Wanted:
    """A ``depends=`` value as the key, cleanup and parameters it is wanted with."""
    if isinstance(target, Depends):
        return Wanted(target.dependency, target.cleanup, target.parameters)
    if isinstance(target, str):
        return Wanted(target, None, None)
    if callable(target):
        return Wanted(target, None, ())
    raise TypeError(
        f"{where}: depends values must be registered names, Depends(callable) or callables;"
        f" got {target!r}"
    )


def _parameters(func: Callable[..., Any], where: str) -> dict[str, Any]:
    """Map each parameter of a dependency to what supplies it (None: its own default)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        # NOTE: refused, not read as "no parameters": a builtin or C callable whose
        # parameters cannot be seen would be called without the arguments it needs.
        raise TypeError(
            f"{where}: cannot read the signature of dependency {callable_name(func)} ({exc});"
            " wrap it in a function whose parameters name what it needs"
        ) from None
    sources: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(
                f"{where}: dependency {callable_name(func)}() has positional-only parameter"
                f" {param.name!r}; dependencies receive their arguments by name"
            )
        if isinstance(param.default, Depends):
            sources[param.name] = param.default
        elif param.default is param.empty:
            sources[param.name] = param.name
        else:
            sources[param.name] = None
    return sources
