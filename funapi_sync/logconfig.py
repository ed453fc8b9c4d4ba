"""Default log output: where log records go when the program configured no logging.

Python drops INFO records when nothing is configured, and prints WARNING and above bare
(no time, level or pid) through :data:`logging.lastResort`. Under gunicorn that hides the
access log, the app's own INFO lines and the background tasks' lines. :func:`install`
replaces that handler of last resort with one that writes to gunicorn's error log (its
handlers, so its format, file and ``--log-level``) when the process is a gunicorn worker
or master, and to stderr otherwise, and lowers the root logger to INFO.

NOTE: the handler of last resort, not a root handler: Python only uses it for a record
that found no handler at all, so any logging the program sets up later
(``logging.basicConfig``, ``dictConfig``, a handler on one logger) takes over for the
records it handles, and ``basicConfig`` is not made a no-op by a handler we added.
"""

from __future__ import annotations

import logging
import sys

#: The format used on stderr outside gunicorn (gunicorn's own, plus the logger's name).
STDERR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
_DATEFMT = "[%Y-%m-%d %H:%M:%S %z]"
_GUNICORN_ERROR = "gunicorn.error"
#: The root level install() set last, so that a second call may change its own choice.
_root_level: int | None = None


class DefaultHandler(logging.Handler):
    """Write a record to gunicorn's error log when gunicorn set one up, else to stderr.

    The target is looked up per record, so a handler installed before gunicorn configured
    its logging (``gunicorn.start()`` from a script) follows it once it has, and a log
    file gunicorn reopens (``USR1``) is written to in its new place.
    """

    def __init__(self) -> None:
        super().__init__()
        self._stderr = logging.StreamHandler(sys.stderr)
        self._stderr.setFormatter(logging.Formatter(STDERR_FORMAT, _DATEFMT))

    def emit(self, record: logging.LogRecord) -> None:
        error_log = gunicorn_error_log()
        if error_log is None:
            self._stderr.handle(record)
            return
        if record.levelno < error_log.getEffectiveLevel():
            return
        for handler in error_log.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def gunicorn_error_log() -> logging.Logger | None:
    """gunicorn's ``gunicorn.error`` logger, if this process's gunicorn set it up."""
    existing = logging.Logger.manager.loggerDict.get(_GUNICORN_ERROR)
    if isinstance(existing, logging.Logger) and existing.handlers:
        return existing
    return None


def install(level: int | None = None) -> bool:
    """Send unhandled records to gunicorn's error log or stderr, unless logging is set up.

    Does nothing (and returns False) when the root logger has a handler: the program
    configured logging, and that configuration is left exactly as it is. Otherwise the
    handler of last resort becomes a :class:`DefaultHandler` and the root logger's level
    becomes ``level``: by default gunicorn's ``--log-level`` under gunicorn, else INFO. A
    root level the program set itself (other than Python's default WARNING) is kept.
    Calling it again only updates the level.

    :returns: whether the default is (now) in place.
    """
    root = logging.getLogger()
    if root.handlers:
        return False
    current = logging.lastResort
    if not isinstance(current, DefaultHandler):
        # A program that replaced the handler of last resort itself keeps its own.
        if current is not getattr(logging, "_defaultLastResort", current):
            return False
        logging.lastResort = DefaultHandler()
    global _root_level
    if root.level in (logging.WARNING, _root_level):
        if level is None:
            error_log = gunicorn_error_log()
            level = logging.INFO if error_log is None else error_log.getEffectiveLevel()
        root.setLevel(level)
        _root_level = level
    return True


def install_under_gunicorn() -> bool:
    """:func:`install`, only in a process where gunicorn set up its error log."""
    if gunicorn_error_log() is None:
        return False
    return install()
