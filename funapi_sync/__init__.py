"""funapi_sync: a small, fast, synchronous WSGI framework for JSON APIs."""

from .app import App as App
from .background import BackgroundTasks as BackgroundTasks
from .dependencies import Depends as Depends
from .exceptions import HTTPException as HTTPException
from .exceptions import ValidationError as ValidationError
from .routing.router import Router as Router
from .schema import Schema as Schema
from .task_context import current_task as current_task
from .templating import Templates as Templates
from .uploads import File as File

__version__ = "0.1.0"

__all__ = [
    "App",
    "BackgroundTasks",
    "Depends",
    "File",
    "HTTPException",
    "Router",
    "Schema",
    "Templates",
    "ValidationError",
    "__version__",
    "current_task",
]
