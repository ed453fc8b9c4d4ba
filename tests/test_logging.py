"""Log output with no configuration: gunicorn's error log under gunicorn, stderr otherwise.

The unit tests drive :mod:`funapi_sync.logconfig` in this process with the root logger's
handlers (pytest's among them) taken away for the test; the system tests start a real
gunicorn with no logging flags and read its log.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from funapi_sync import logconfig


@contextmanager
def bare_logging() -> Iterator[logging.Logger]:
    """No root handler, Python's default last resort and level; everything restored after.

    NOTE: a context manager used inside the test, not a fixture: pytest adds its capture
    handlers to the root logger around the test call, after the fixtures ran.
    """
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.lastResort, logconfig._root_level)
    error_log = logging.getLogger("gunicorn.error")
    saved_error_log = (error_log.handlers[:], error_log.level, error_log.propagate)
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    logging.lastResort = logging._defaultLastResort  # type: ignore[attr-defined]
    logconfig._root_level = None
    try:
        yield root
    finally:
        root.handlers[:], level, logging.lastResort, logconfig._root_level = saved
        root.setLevel(level)
        error_log.handlers[:], error_log.level, error_log.propagate = saved_error_log


def fake_gunicorn_error_log(level: int) -> io.StringIO:
    """Set up ``gunicorn.error`` as gunicorn's Logger does: its handler, format and level."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("GUNICORN [%(levelname)s] %(message)s"))
    error_log = logging.getLogger("gunicorn.error")
    error_log.handlers[:] = [handler]
    error_log.setLevel(level)
    error_log.propagate = False
    return stream


def test_install_does_nothing_when_the_program_configured_logging():
    with bare_logging() as root:
        handler = logging.StreamHandler(io.StringIO())
        root.addHandler(handler)

        assert logconfig.install() is False
        assert logging.lastResort is logging._defaultLastResort  # type: ignore[attr-defined]
        assert root.level == logging.WARNING
        assert root.handlers == [handler]


def test_install_sends_info_lines_to_stderr_without_blocking_a_later_basicconfig(capsys):
    with bare_logging() as root:
        assert logconfig.install() is True
        assert root.level == logging.INFO
        logging.getLogger("myapp").info("hello from the app")
        assert re.search(r"\[\d+\] \[INFO\] myapp: hello from the app\n", capsys.readouterr().err)

        # The default is a handler of last resort, not a root handler: basicConfig still works,
        # and its handler then takes the records.
        stream = io.StringIO()
        logging.basicConfig(stream=stream, format="MINE %(name)s %(message)s")
        logging.getLogger("myapp").warning("configured")
        assert stream.getvalue() == "MINE myapp configured\n"
        assert capsys.readouterr().err == ""


def test_under_gunicorn_records_use_its_handlers_format_and_log_level():
    with bare_logging() as root:
        stream = fake_gunicorn_error_log(logging.WARNING)

        assert logconfig.install_under_gunicorn() is True
        assert root.level == logging.WARNING
        logging.getLogger("funapi_sync.background").warning("task failed")
        logging.getLogger("myapp").info("dropped at gunicorn's --log-level warning")
        assert stream.getvalue() == "GUNICORN [WARNING] task failed\n"


def test_install_under_gunicorn_is_a_no_op_outside_gunicorn():
    with bare_logging():
        logging.getLogger("gunicorn.error").handlers[:] = []

        assert logconfig.install_under_gunicorn() is False
        assert logging.lastResort is logging._defaultLastResort  # type: ignore[attr-defined]


def test_a_handler_installed_before_gunicorn_set_up_its_log_follows_it(capsys):
    with bare_logging():
        logging.getLogger("gunicorn.error").handlers[:] = []
        logconfig.install()  # gunicorn.start(), before gunicorn configured its logging
        logging.getLogger("funapi_sync").info("before")
        stream = fake_gunicorn_error_log(logging.INFO)
        logging.getLogger("funapi_sync").info("after")

        assert "funapi_sync: before" in capsys.readouterr().err
        assert stream.getvalue() == "GUNICORN [INFO] after\n"


def test_a_root_level_the_program_chose_is_kept():
    with bare_logging() as root:
        root.setLevel(logging.ERROR)

        assert logconfig.install() is True
        assert root.level == logging.ERROR


def test_a_last_resort_the_program_replaced_is_kept():
    with bare_logging():
        theirs = logging.StreamHandler(io.StringIO())
        logging.lastResort = theirs

        assert logconfig.install() is False
        assert logging.lastResort is theirs


# -- under a real gunicorn, with no logging configured ----------------------------------


def test_the_gunicorn_conf_module_defines_no_setting_but_its_hooks():
    # gunicorn reads every module-level name of a config module that names a setting;
    # `logconfig` is one, so importing funapi_sync.logconfig under that name broke -c.
    from gunicorn.config import Config

    from funapi_sync.server import gunicorn_conf

    settings = Config().settings
    names = {name for name in vars(gunicorn_conf) if name in settings}
    assert "post_worker_init" in names
    assert all(callable(getattr(gunicorn_conf, name)) for name in names), names
