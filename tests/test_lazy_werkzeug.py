"""The deferred package ``__init__``, on a throwaway package (werkzeug is imported already here).

``tests/server/test_lazy_imports.py`` checks the real werkzeug in a fresh interpreter.
"""

from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path

import pytest

from funapi_sync import _lazy_werkzeug

INIT = """
from . import counter, heavy
counter.RUNS.append(1)
from .light import VALUE as VALUE
run = heavy.run
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"lazy_pkg_{abs(hash(tmp_path)) % 10**8}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text(textwrap.dedent(INIT))
    (root / "heavy.py").write_text("def run():\n    return 'ran'\n")
    (root / "counter.py").write_text("RUNS = []\n")
    # light's own `from . import heavy` asks the package for a submodule, as werkzeug's do.
    (root / "light.py").write_text("from . import heavy as _heavy\nVALUE = 42\n")
    (root / "__pycache__").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_importing_a_submodule_does_not_run_the_package_init(package: str) -> None:
    _lazy_werkzeug.install(package)
    light = __import__(f"{package}.light", fromlist=["VALUE"])
    assert light.VALUE == 42
    # light imported heavy through the package, without the package's __init__.
    assert f"{package}.heavy" in sys.modules
    assert "__getattr__" in vars(sys.modules[package])
    assert "VALUE" not in vars(sys.modules[package])


def test_a_name_the_init_defines_runs_it_once(package: str) -> None:
    _lazy_werkzeug.install(package)
    module = sys.modules[package]
    assert module.run() == "ran"
    assert module.VALUE == 42
    assert "__getattr__" not in vars(module)
    assert sys.modules[f"{package}.counter"].RUNS == [1]
    with pytest.raises(AttributeError, match=rf"module '{package}' has no attribute 'missing'"):
        module.missing  # noqa: B018


def test_a_submodule_attribute_imports_the_submodule_only(package: str) -> None:
    _lazy_werkzeug.install(package)
    module = sys.modules[package]
    assert module.heavy.run() == "ran"
    assert "__getattr__" in vars(module)  # the __init__ still has not run
    assert "__pycache__" not in dir(module)


def test_threads_asking_at_once_run_the_init_once(package: str) -> None:
    _lazy_werkzeug.install(package)
    module = sys.modules[package]
    barrier = threading.Barrier(8)
    values: list[int] = []

    def ask() -> None:
        barrier.wait(timeout=10)
        values.append(module.VALUE)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert values == [42] * 8
    assert sys.modules[f"{package}.counter"].RUNS == [1]


def test_an_imported_package_is_left_alone(package: str) -> None:
    real = __import__(package)
    _lazy_werkzeug.install(package)
    assert sys.modules[package] is real
    assert real.VALUE == 42
