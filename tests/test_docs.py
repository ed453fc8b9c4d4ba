"""Every ```python block of every docs/*.md page and of README.md runs, so they cannot rot.

The standard is "every snippet runs as pasted": a reader copies one block, not the page.
So each block runs alone, in its own fresh module namespace and its own fresh temporary
working directory; a block that leans on a name or a file an earlier block made fails
here. One test case per page (its id is the file name). A block whose first line is
``# doc: skip`` is not run (it starts a server, or needs what a test cannot provide).
Examples end in assertions through ``app.test_client()``, so running them checks what
they claim.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
SKIP_MARK = "# doc: skip"
_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[ \t]*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its source and the line of the page where the code starts."""

    source: str
    first_line: int

    @property
    def skipped(self) -> bool:
        return self.source.lstrip("\n").startswith(SKIP_MARK)


def python_blocks(text: str) -> list[Block]:
    """Return the ```python (or ```py) blocks of a Markdown page, in page order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start = index + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise ValueError(f"unclosed code fence opened on line {index + 1}")
        if opening["lang"] in ("python", "py"):
            blocks.append(Block("\n".join(lines[start:end]) + "\n", first_line=start + 1))
        index = end + 1
    return blocks


def run_block(path: Path, block: Block) -> None:
    """Run one block as a reader pasting it would: fresh namespace, fresh empty cwd."""
    name = "docs_" + re.sub(r"\W", "_", path.stem)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    # NOTE: a real, registered module, so dataclasses, pickling and logging that look the
    # defining module up in sys.modules work as they do in a user's file.
    sys.modules[name] = module
    previous_cwd = os.getcwd()
    try:
        with tempfile.TemporaryDirectory() as cwd:
            # A block that writes files (SQLite, templates) writes them here, so it
            # neither litters the repo nor finds a file an earlier block left behind.
            os.chdir(cwd)
            try:
                # Pad with newlines so tracebacks point at the line in the .md file.
                code = compile("\n" * (block.first_line - 1) + block.source, str(path), "exec")
                exec(code, module.__dict__)
            finally:
                os.chdir(previous_cwd)
    finally:
        del sys.modules[name]


def run_page(path: Path) -> int:
    """Run each of the page's blocks alone; return how many ran."""
    ran = 0
    for block in python_blocks(path.read_text(encoding="utf-8")):
        if block.skipped:
            continue
        run_block(path, block)
        ran += 1
    return ran


#: Every docs page, and the README, whose first example is the one most often pasted.
PAGES = [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_docs_page_examples_run(page):
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    assert all(block.skipped for block in blocks) or run_page(page) > 0


# -- the extractor itself -------------------------------------------------------------


def test_extractor_finds_python_blocks_in_order_and_skips_others():
    page = "\n".join(
        [
            "# Title",
            "```python",
            "a = 1",
            "```",
            "text",
            "```console",
            "$ curl localhost",
            "```",
            "```py",
            "b = a + 1",
            "```",
            "```python",
            SKIP_MARK,
            "app.run()",
            "```",
        ]
    )

    blocks = python_blocks(page)

    assert [block.source for block in blocks] == [
        "a = 1\n",
        "b = a + 1\n",
        f"{SKIP_MARK}\napp.run()\n",
    ]
    assert [block.first_line for block in blocks] == [3, 10, 13]
    assert [block.skipped for block in blocks] == [False, False, True]


def test_the_readme_and_every_docs_page_are_run():
    names = [page.name for page in PAGES]
    assert "README.md" in names
    assert {"index.md", "quickstart.md", "command-line.md", "logging.md"} <= set(names)


def test_extractor_rejects_an_unclosed_fence():
    with pytest.raises(ValueError, match="unclosed code fence opened on line 2"):
        python_blocks("text\n```python\nx = 1\n")


def test_each_block_runs_alone_and_failures_point_at_the_page(tmp_path):
    page = tmp_path / "example.md"
    page.write_text(
        "```python\nvalue = 41\nopen('left.txt', 'w').close()\n```\n\n"
        "```python\n# doc: skip\nraise SystemExit\n```\n"
        "```python\nimport os\nassert not os.path.exists('left.txt'), 'cwd shared'\n"
        "assert 'value' not in globals(), 'namespace shared'\n```\n"
        "```python\nvalue += 1\n```\n",
        encoding="utf-8",
    )

    with pytest.raises(NameError, match="value") as info:
        run_page(page)

    frame = info.traceback[-1]
    assert frame.path == page
    assert frame.lineno + 1 == 16
    assert not (tmp_path / "left.txt").exists()
