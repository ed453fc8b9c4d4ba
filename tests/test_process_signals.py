"""_process.exit_on_sigterm and the drain's budget, in this process (no server started)."""

from __future__ import annotations

import signal
import threading

import pytest

from funapi_sync import _process


@pytest.fixture
def fresh_sigterm(monkeypatch):
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(_process, "_sigterm_checked", False)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_with_the_default_action_becomes_a_clean_system_exit(fresh_sigterm):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _process.exit_on_sigterm()
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    with pytest.raises(SystemExit) as exit_info:
        handler(signal.SIGTERM, None)
    assert exit_info.value.code == 0


def test_a_servers_own_sigterm_handler_is_never_replaced(fresh_sigterm):
    def servers(signum, frame):
        pass

    signal.signal(signal.SIGTERM, servers)
    _process.exit_on_sigterm()
    assert signal.getsignal(signal.SIGTERM) is servers


def test_no_handler_from_another_thread_or_under_uwsgi(fresh_sigterm, monkeypatch):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    thread = threading.Thread(target=_process.exit_on_sigterm)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.setitem(__import__("sys").modules, "uwsgi", object())
    _process.exit_on_sigterm()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_drain_budget_counts_from_the_stop_signal(monkeypatch):
    monkeypatch.setattr(_process, "_drain_limit", None)
    monkeypatch.setattr(_process, "_stopping_since", None)
    assert _process.drain_budget() is None
    _process.limit_drain(2.0)
    assert 1.9 < _process.drain_budget() <= 2.0
    monkeypatch.setattr(_process, "_stopping_since", _process.time.monotonic() - 1.5)
    assert 0.4 < _process.drain_budget() <= 0.5
