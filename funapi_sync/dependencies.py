"""Dependencies: registered names, ``Depends`` callables, their per-request scope and cleanups."""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

logger = logging.getLogger("funapi_sync")

#: Parameter names a dependency (or handler keyword) gets from the request itself.
BUILTIN_SOURCES = frozenset({"input", "req", "background"})


class Depends:
    """Mark a callable as a dependency: ``depends={"user": Depends(current_user)}``.

    Its parameters are resolved by name from ``input``, ``req``, ``background``, registered
    names and other ``Depends`` defaults, each at most once per request.
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


class Provider:
    """A registered factory: its name, scope, and the process-wide value for ``scope="app"``."""

    def __init__(self, name: str, factory: Callable[..., Any], scope: str) -> None:
        self.name = name
        self.factory = factory
        self.scope = scope
        self.lock = threading.Lock()
        self.has_value = False
        self.value: Any = None


class DependencyOverrides(dict[Any, Any]):
    """``app.dependency_overrides``: a dict that tells the plans when it changed."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def __setitem__(self, key: Any, value: Any) -> None:
        if not callable(value):
            raise TypeError(f"dependency_overrides[{key!r}] must be callable, got {value!r}")
        super().__setitem__(key, value)
        self.version += 1

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self.version += 1

    def clear(self) -> None:
        super().clear()
        self.version += 1

    def pop(self, *args: Any) -> Any:
        self.version += 1
        return super().pop(*args)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


# A plan step: (key, callable, {param: source}, kind) where kind is "call", "context"
# (generator turned context manager) or "app" (a process-wide registered value).
Step = tuple[Any, Callable[..., Any], dict[str, Any], str]


class Plan:
    """What one endpoint needs, in creation order; built and checked at registration."""

    __slots__ = ("kwargs", "needs_background", "needs_input", "steps")

    def __init__(self, steps: list[Step], kwargs: dict[str, Any]) -> None:
        self.steps = steps
        self.kwargs = kwargs
        self.needs_background = self._uses("background")
        self.needs_input = self._uses("input")

    def _uses(self, source: str) -> bool:
        return source in self.kwargs.values() or any(
            source in params.values() for _, _, params, _ in self.steps
        )


class Registry:
    """The app's registered names and the overrides; compiles dependency plans."""

    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        self.overrides = DependencyOverrides()
        self._app_exits: list[Callable[..., Any]] = []
        self._app_lock = threading.Lock()

    def register(self, name: str, factory: Callable[..., Any], scope: str = "request") -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"register() name must be a Python identifier, got {name!r}")
        if name in BUILTIN_SOURCES:
            raise ValueError(f"register() name {name!r} is reserved for the request's own {name}")
        if not callable(factory):
            raise TypeError(f"register({name!r}, ...) factory must be callable, got {factory!r}")
        if scope not in ("request", "app"):
            raise ValueError(
                f"register({name!r}, ...) scope must be 'request' or 'app', got {scope!r}"
            )
        if name in self.providers:
            raise ValueError(f"dependency {name!r} is already registered")
        self.providers[name] = Provider(name, factory, scope)

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

    def _visit(
        self, key: Any, steps: list[Step], done: dict[Any, None], path: tuple[Any, ...], where: str
    ) -> Any:
        if key in BUILTIN_SOURCES and isinstance(key, str):
            return key
        if key in done:
            return key
        if key in path:
            cycle = " -> ".join(_label(k) for k in (*path, key))
            raise ValueError(f"{where}: dependency cycle {cycle}")
        provider = self.providers.get(key) if isinstance(key, str) else None
        if isinstance(key, str) and provider is None:
            raise ValueError(
                f"{where}: dependency {key!r} is not registered; call"
                f" app.register({key!r}, factory) before adding the route, or pass"
                f" depends={{{key!r}: Depends(factory)}}"
            )
        func = self.overrides.get(key, provider.factory if provider else key)
        params: dict[str, Any] = {}
        for pname, source in _parameters(func, where).items():
            if source is None:
                continue
            sub = self._visit(source, steps, done, (*path, key), where)
            if provider is not None and provider.scope == "app" and _is_request_bound(sub, self):
                raise ValueError(
                    f"{where}: app-scoped dependency {key!r} cannot take {pname!r}, which"
                    " lives only as long as one request"
                )
            params[pname] = sub
        kind = "app" if provider is not None and provider.scope == "app" else "call"
        if inspect.isgeneratorfunction(func):
            func = contextlib.contextmanager(func)
            kind = "app" if kind == "app" else "context"
        steps.append((key, func, params, kind))
        done[key] = None
        return key


def _label(key: Any) -> str:
    return key if isinstance(key, str) else _name(key)


def _is_request_bound(key: Any, registry: Registry) -> bool:
    if isinstance(key, str):
        if key in BUILTIN_SOURCES:
            return True
        return registry.providers[key].scope != "app"
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
        self.exits: list[tuple[str, Callable[..., Any]]] = []

    def resolve(self, plan: Plan) -> dict[str, Any]:
        values = self.values
        for key, func, params, kind in plan.steps:
            if key in values:
                continue
            kwargs = {name: values[source] for name, source in params.items()}
            if kind == "app":
                values[key] = self._app_value(key, func, kwargs)
                continue
            result = func(**kwargs)
            if kind == "context" or _is_context_manager(result):
                values[key] = result.__enter__()
                self.exits.append((_label(key), result.__exit__))
            elif _is_value_and_cleanup(result):
                values[key] = result[0]
                self.exits.append((_label(key), _cleanup_exit(result[1])))
            else:
                values[key] = result
        return {keyword: values[source] for keyword, source in plan.kwargs.items()}

    def _app_value(self, key: Any, func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        provider = self.registry.providers[key]
        if provider.has_value:
            return provider.value
        with provider.lock:
            if not provider.has_value:
                result = func(**kwargs)
                if _is_context_manager(result):
                    value = result.__enter__()
                    self.registry._app_exits.append(result.__exit__)
                elif _is_value_and_cleanup(result):
                    value = result[0]
                    self.registry._app_exits.append(_cleanup_exit(result[1]))
                else:
                    value = result
                provider.value = value
                provider.has_value = True
        return provider.value

    def close(self, exc: BaseException | None) -> None:
        """Run the exits in reverse order of creation; log each failure and go on."""
        exits, self.exits = self.exits, []
        close_exits(exits, exc)


def close_exits(exits: list[tuple[str, Callable[..., Any]]], exc: BaseException | None) -> None:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else (None, None, None)
    for label, exit_ in reversed(exits):
        try:
            exit_(*exc_info)
        except BaseException as failure:
            if failure is exc:
                continue
            logger.error("cleanup of dependency %s failed", label, exc_info=failure)


def _is_context_manager(value: Any) -> bool:
    kind = type(value)
    return hasattr(kind, "__enter__") and hasattr(kind, "__exit__")


def _is_value_and_cleanup(value: Any) -> bool:
    return type(value) is tuple and len(value) == 2 and callable(value[1])


def _cleanup_exit(cleanup: Callable[[], Any]) -> Callable[..., bool]:
    def exit_(*_exc_info: Any) -> bool:
        cleanup()
        return False

    return exit_


def iter_app_exits(registry: Registry) -> Iterator[tuple[str, Callable[..., Any]]]:
    for exit_ in registry._app_exits:
        yield ("app-scoped dependency", exit_)
