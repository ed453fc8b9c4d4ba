"""funapi_sync: a small, fast, synchronous WSGI framework for JSON APIs."""

from typing import TYPE_CHECKING, Any

from . import _lazy_werkzeug

# PERF: before anything imports werkzeug, so its development server is imported only
# when an app runs on it (App.run, funapi-sync dev), not by every gunicorn worker.
_lazy_werkzeug.install()

from .app import App as App  # noqa: E402
from .background import BackgroundTasks as BackgroundTasks  # noqa: E402
from .background import TaskHandle as TaskHandle  # noqa: E402
from .exceptions import HTTPException as HTTPException  # noqa: E402
from .exceptions import ValidationError as ValidationError  # noqa: E402
from .inputs import Input as Input  # noqa: E402
from .routing.router import Router as Router  # noqa: E402
from .schema import Schema as Schema  # noqa: E402
from .task_context import current_task as current_task  # noqa: E402
from .uploads import File as File  # noqa: E402

if TYPE_CHECKING:
    # NOTE: to a type checker Depends(fn) is Any, so `user: User = Depends(fn)` passes
    # mypy --strict; at run time it is the class (see funapi_sync/_typed.py).
    from ._typed import Depends as Depends
    from .templating import Templates as Templates
else:
    from .dependencies import Depends as Depends

__version__ = "0.1.0"

__all__ = [
    "App",
    "BackgroundTasks",
    "Depends",
    "File",
    "HTTPException",
    "Input",
    "Router",
    "Schema",
    "TaskHandle",
    "Templates",
    "ValidationError",
    "__version__",
    "current_task",
]


def __getattr__(name: str) -> Any:
    # PERF: Jinja2 is imported by the first app that renders templates, not by every app.
    if name == "Templates":
        from .templating import Templates

        globals()["Templates"] = Templates
        return Templates
    raise AttributeError(f"module 'funapi_sync' has no attribute {name!r}")
