"""uWSGI's stop signal: warn at boot when SIGTERM would kill a busy worker silently.

Internal. Under ``--die-on-term`` (and on SIGINT) the uWSGI master sends its workers
SIGINT, and a worker that is serving a request then exits without running Python's exit
path (uWSGI skips it for a busy worker): its queued and running background tasks are lost
with no line. uWSGI's graceful stop, ``--hook-master-start "unix_signal:15
gracefully_kill_them_all"``, lets the worker finish its request and exit through Python,
which drains the pool (see docs/deployment.md).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger("funapi_sync")

GRACEFUL_HOOK = "unix_signal:15 gracefully_kill_them_all"


def warn_if_sigterm_kills() -> None:
    """Log a WARNING if this is a uWSGI process whose SIGTERM is not the graceful stop."""
    uwsgi: Any = sys.modules.get("uwsgi")
    options = getattr(uwsgi, "opt", None)
    if not isinstance(options, dict):
        return
    hooks = options.get("hook-master-start", [])
    hooks = hooks if isinstance(hooks, list) else [hooks]
    graceful = any(_text(hook).strip() == GRACEFUL_HOOK for hook in hooks)
    if options.get("die-on-term") and not graceful:
        logger.warning(
            "uWSGI runs with --die-on-term: at SIGTERM a worker busy with a request exits"
            " without draining, and its background tasks are lost with no log line; stop"
            ' gracefully instead: drop --die-on-term and add --hook-master-start "%s"',
            GRACEFUL_HOOK,
        )


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
