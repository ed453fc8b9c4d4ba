"""RequestScope: one request's dependency values and their exits, one list per cleanup phase."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._exits import Exit, close_exits, enter
from .dependencies import BEFORE_RESPONSE, CLEANUP_PHASES, ENVIRON, label

if TYPE_CHECKING:
    from .dependencies import Plan, Registry, Step


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
        for step in steps:
            key = step.key
            if key in values:
                continue
            kwargs = {name: values[source] for name, source in step.params.items()}
            if step.loads:
                environ = values[ENVIRON]
                for load in step.loads:
                    kwargs.update(load(environ))
            if step.kind == "app":
                values[key] = self.registry.app_value(key, step.func, kwargs)
                continue
            value, exit_ = enter(step.func(**kwargs))
            if exit_ is not None:
                self.exits[step.phase].append((label(key), exit_))
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
