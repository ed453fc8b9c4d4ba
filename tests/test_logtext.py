"""Request text in log lines: the path decoded as the client sent it, every control escaped.

One test per log line that carries request text: the access log, "Exception on …", a
failing task's WARNING (through the request label every task line uses) and the refused
header line, plus the helper itself.
"""

from __future__ import annotations

import logging

import pytest
from werkzeug.test import EnvironBuilder

from funapi_sync import App
from funapi_sync._logtext import log_path, log_text
from funapi_sync.after_close import request_label
from funapi_sync.backends import ThreadBackend

FORGED = "/a%0D%0A127.0.0.1 - admin logged in%1b[2J"
ESCAPED = "/a\\r\\n127.0.0.1 - admin logged in\\x1b[2J"


def wsgi(path: str) -> str:
    """PATH_INFO as a PEP 3333 server hands it over for ``path`` sent percent-encoded."""
    return EnvironBuilder(path=path).get_environ()["PATH_INFO"]


@pytest.mark.parametrize(
    ("sent", "logged"),
    [
        ("/plain/path", "/plain/path"),
        ("/caf%C3%A9", "/café"),
        ("/%E2%9C%93?", "/✓"),
        (FORGED, ESCAPED),
        ("/t%09b%00c%7f", "/t\\tb\\x00c\\x7f"),
        ("/c1%C2%85x", "/c1\\x85x"),
        ("/ls%E2%80%A8x", "/ls\\u2028x"),
    ],
    ids=["ascii", "utf8", "utf8-3", "crlf-esc", "c0-del", "c1-nel", "line-sep"],
)
def test_log_text_decodes_utf8_and_escapes_controls(sent, logged):
    assert log_path({"PATH_INFO": wsgi(sent)}) == logged


def test_invalid_utf8_is_written_as_its_byte():
    # NOTE: werkzeug's EnvironBuilder would replace the byte; a server hands it over as is.
    assert log_path({"PATH_INFO": "/bad\xffbyte"}) == "/bad\\xffbyte"


def test_log_text_escapes_text_that_is_not_latin1_too():
    assert log_text("/✓\n") == "/✓\\n"


def test_a_plain_path_is_returned_as_it_is():
    path = "/orders/42"
    assert log_text(path) is path


def test_the_request_label_of_every_task_line_is_escaped():
    environ = EnvironBuilder(path="/caf%C3%A9%0D%0AX", method="POST").get_environ()
    assert request_label(environ) == "POST /café\\r\\nX"


def one_line(records: list[logging.LogRecord]) -> str:
    (record,) = records
    message = record.getMessage()
    assert not {"\r", "\n", "\x1b"} & set(message)
    return message


def test_the_access_log_line_is_escaped(caplog):
    caplog.set_level(logging.INFO, logger="funapi_sync.access")
    app = App()

    @app.get("/<name>")
    def anything(input):
        return {}

    app.add_request_logger()
    app.test_client().get(FORGED)
    app.test_client().get("/caf%C3%A9")

    access = [r for r in caplog.records if r.name == "funapi_sync.access"]
    assert one_line(access[:1]).startswith(f"GET {ESCAPED} 200 ")
    assert access[0].path == ESCAPED  # the structured field too
    assert one_line(access[1:]).startswith("GET /café 200 ")


def test_the_exception_line_is_escaped(caplog):
    caplog.set_level(logging.ERROR, logger="funapi_sync")
    app = App()

    @app.get("/<name>")
    def boom(input):
        raise RuntimeError("boom")

    assert app.test_client().get(FORGED).status_code == 500
    errors = [r for r in caplog.records if r.name == "funapi_sync"]
    assert one_line(errors) == f"Exception on GET {ESCAPED}"


def test_a_failing_tasks_warning_is_escaped(caplog):
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    app = App(background_workers=1, background_backend=ThreadBackend(own_pool=True))

    def fail():
        raise ValueError("task failed")

    @app.get("/<name>")
    def route(input, *, background):
        background.add_task(fail)
        return {}

    app.test_client().get("/caf%C3%A9%0D%0AWARNING forged")
    assert app.background.drain(10)
    warnings = [r for r in caplog.records if r.getMessage().startswith("background task")]
    assert one_line(warnings) == (
        "background task test_logtext.test_a_failing_tasks_warning_is_escaped.<locals>.fail"
        " of GET /café\\r\\nWARNING forged failed"
    )


def test_the_refused_header_line_is_escaped(caplog):
    caplog.set_level(logging.ERROR, logger="funapi_sync")
    app = App()

    @app.get("/<name>")
    def route(input):
        return {}, 200, {"X": "a\r\nb"}

    assert app.test_client().get(FORGED).status_code == 500
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert one_line(errors).startswith(f"refused to send the response to GET {ESCAPED}: header")
