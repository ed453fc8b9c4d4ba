"""funapi_sync: a small, fast, synchronous WSGI framework for JSON APIs."""

from typing import TYPE_CHECKING

from .app import App as App
from .background import BackgroundTasks as BackgroundTasks
from .background import TaskHandle as TaskHandle
from .exceptions import HTTPException as HTTPException
from .exceptions import ValidationError as ValidationError
from .inputs import Input as Input
from .routing.router import Router as Router
from .schema import Schema as Schema
from .templating import Templates as Templates
from .uploads import File as File

if TYPE_CHECKING:
    # NOTE: to a type checker Depends(fn) is Any, so `user: User = Depends(fn)` passes
    # mypy --strict; at run time it is the class (see funapi_sync/_typed.py).
    from ._typed import Depends as Depends
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
]
