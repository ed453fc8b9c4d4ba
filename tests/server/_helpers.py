"""Start a real gunicorn on 127.0.0.1 with an ephemeral port, and stop it for sure."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import gunicorn

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
_BOOTED = re.compile(r"Booting worker with pid: (\d+)")


def _version() -> tuple[int, ...]:
    return tuple(int(part) for part in gunicorn.__version__.split(".")[:2])


@dataclass
class Server:
    process: subprocess.Popen[str]
    log_path: Path
    port: int = 0
    worker_pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """Wait (bounded) until ``pattern`` appears in the server log."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            match = regex.search(self.log())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} not in the gunicorn log:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        """Signal the master and wait for it to exit; kill it if it does not."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"gunicorn did not exit within {timeout}s:\n{self.log()}")


def gunicorn_command(app: str, *args: str) -> list[str]:
    command = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", *args, app]
    if _version() >= (25, 1):
        command.insert(3, "--no-control-socket")
    return command


@contextmanager
def run_server(
    command: list[str],
    *,
    log_path: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    workers: int = 1,
    wait_workers: bool = True,
) -> Iterator[Server]:
    """Run ``command`` (anything that starts gunicorn); yield once it listens and booted.

    ``ROOT`` and ``cwd`` go on ``PYTHONPATH``; the process is stopped (SIGTERM, then
    SIGKILL) on the way out whatever the test did.
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), str(cwd), full_env.get("PYTHONPATH", "")])
    )
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(cwd),
            env=full_env,
            text=True,
        )
    server = Server(process, log_path)
    try:
        server.port = int(server.wait_for_log(_LISTENING.pattern).group(1))
        if wait_workers:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                server.worker_pids = [int(p) for p in _BOOTED.findall(server.log())]
                if len(server.worker_pids) >= workers:
                    break
                time.sleep(0.02)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextmanager
def run_gunicorn(
    app: str,
    *args: str,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    workers: int = 1,
    wait_workers: bool = True,
    cwd: Path | None = None,
) -> Iterator[Server]:
    """Run ``gunicorn APP`` with ``args``; yield once it listens and its workers booted."""
    with run_server(
        gunicorn_command(app, "--workers", str(workers), *args),
        log_path=tmp_path / f"gunicorn-{time.monotonic_ns()}.log",
        cwd=cwd or tmp_path,
        env=env,
        workers=workers,
        wait_workers=wait_workers,
    ) as server:
        yield server


def run_python(code: str) -> str:
    """Run ``code`` (dedented) in a fresh interpreter on this checkout; its stripped stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
