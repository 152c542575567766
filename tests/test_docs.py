"""The README and the guides in docs/ say only what is true: their code runs.

Conventions for the docs (write new guides to them):

* Every ```python block of README.md and docs/*.md is run here, in this
  process, in a fresh namespace, with the working directory a fresh empty
  temporary directory (so `output_dir="logs/train"` lands there).
* A block may rely on this preamble, already executed in its namespace:

      import numpy as np
      import tensorflow as tf
      import keras
      import keras_stepcounter
      x, y = ...    # 256 examples: x float32 (256, 8), y float32 (256, 1)
      model = ...   # keras.Sequential([Input((8,)), Dense(1)]), compiled
                    # with optimizer="sgd", loss="mse"; a fresh one per block
      tmp = ...     # str: a fresh empty directory for logs

  Blocks meant to be copied whole still import what they use.
* A block that cannot run on CPU in seconds (needs a cluster, another
  Keras flavour, a user's own model, a shell) is marked by an HTML comment
  on the line right before its fence, with the reason:

      <!-- not run: needs two worker processes -->

  The marker must give a reason; any other block runs and must not raise.
* Blocks are run one by one, in file order; none sees another's names.

Also checked: the README stays short (at most 260 lines), shows no image
(relative image paths break on the package index page), keeps the CI
marker before the test command, and every relative link in the README and
the guides points at a file or directory that exists.
"""

from __future__ import annotations

import pathlib
import re
from typing import Dict, List, NamedTuple, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 260

_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not run:(.*?)-->\s*$")
# [text](target) and ![alt](target); target up to whitespace or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


class Block(NamedTuple):
    path: pathlib.Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    skip_reason: Optional[str]  # None: run; "" would be a marker without a reason


def blocks_of(path: pathlib.Path) -> List[Block]:
    """The fenced code blocks of a markdown file, with their not-run markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: List[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start = index
        index += 1
        body: List[str] = []
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        previous = lines[start - 1] if start > 0 else ""
        marker = _NOT_RUN.match(previous)
        blocks.append(
            Block(
                path,
                start + 1,
                opening.group(1),
                "\n".join(body) + "\n",
                marker.group(1).strip() if marker else None,
            )
        )
    return blocks


def _python_blocks() -> List[Block]:
    return [b for path in DOC_FILES for b in blocks_of(path) if b.language == "python"]


def _block_id(block: Block) -> str:
    return f"{block.path.relative_to(ROOT)}:{block.line}"


PYTHON_BLOCKS = _python_blocks()
RUNNABLE = [b for b in PYTHON_BLOCKS if b.skip_reason is None]


def test_docs_are_found() -> None:
    names = {p.name for p in DOC_FILES}
    assert "README.md" in names and len(DOC_FILES) > 1
    assert RUNNABLE, "no runnable python block found: the parser is broken"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=_block_id)
def test_each_skipped_block_says_why(block: Block) -> None:
    if block.skip_reason is not None:
        assert len(block.skip_reason) >= 8, (
            f"{_block_id(block)}: a `<!-- not run: ... -->` marker needs a reason"
        )


def test_markers_sit_right_before_a_python_block() -> None:
    """A marker followed by anything else would silently mark nothing."""
    for path in DOC_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if "not run:" in line:
                following = lines[number] if number < len(lines) else ""
                assert _NOT_RUN.match(line) and following.startswith("```python"), (
                    f"{path.relative_to(ROOT)}:{number}: a not-run marker must be "
                    "an HTML comment on the line right before a ```python fence"
                )


@pytest.fixture(scope="module")
def preamble_data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((256, 8), dtype=np.float32)
    y = rng.random((256, 1), dtype=np.float32)
    return x, y


def _namespace(x, y, tmp: str) -> Dict[str, object]:
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_stepcounter

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return {
        "__name__": "__docs__",
        "np": np,
        "tf": tf,
        "keras": keras,
        "keras_stepcounter": keras_stepcounter,
        "x": x,
        "y": y,
        "model": model,
        "tmp": tmp,
    }


@pytest.mark.parametrize("block", RUNNABLE, ids=_block_id)
def test_python_block_runs(block: Block, preamble_data, tmp_path, monkeypatch) -> None:
    work = tmp_path / "cwd"
    logs = tmp_path / "tmp"
    work.mkdir()
    logs.mkdir()
    monkeypatch.chdir(work)
    namespace = _namespace(*preamble_data, str(logs))
    # From a real file, so that AutoGraph (inspect.getsource) finds the code.
    source = tmp_path / (block.path.stem.replace("-", "_") + f"_{block.line}.py")
    source.write_text(block.code, encoding="utf-8")
    code = compile(block.code, str(source), "exec")
    exec(code, namespace)  # noqa: S102 - the docs' own examples


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; keep it at most {MAX_README_LINES} "
        "and move detail into docs/"
    )


def test_readme_shows_no_image() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "![" not in text and "<img" not in text.lower()


def test_readme_marks_the_test_command_for_ci() -> None:
    """`.ci/run` runs the sh block right after the marker line."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    markers = [i for i, line in enumerate(lines) if line.startswith("<!-- test-command")]
    assert len(markers) == 1
    assert lines[markers[0] + 1] == "```sh"
    assert "pytest" in lines[markers[0] + 2]


def _relative_links(path: pathlib.Path) -> List[str]:
    return _links_in(path.read_text(encoding="utf-8"))


def _links_in(text: str) -> List[str]:
    """Relative link targets in markdown text, without their #anchors."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code is not links
    targets = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, https:, mailto:; anchors in the same page
        targets.append(target.split("#", 1)[0])
    return targets


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_existing_files(path: pathlib.Path) -> None:
    missing = [
        target
        for target in _relative_links(path)
        if not (path.parent / target).exists()
    ]
    assert not missing, f"{path.relative_to(ROOT)} links to missing {missing}"


def test_link_check_sees_links() -> None:
    """The link test must not pass by finding nothing."""
    assert any(_relative_links(p) for p in DOC_FILES)
    assert _links_in("[a](docs/x.md#y) [b](https://e.com) [c](#z) ![d](i.png)") == [
        "docs/x.md",
        "i.png",
    ]


def _example_core(example: str) -> str:
    """An example's code from creating the counter to reading records back."""
    source = (ROOT / "examples" / example).read_text(encoding="utf-8")
    start = source.index("    counter = keras_stepcounter.")
    end = source.index("    records = read_scalars", start)
    return "\n".join(line[4:] for line in source[start:end].splitlines()).strip()


@pytest.mark.parametrize("example", ["custom_loop.py", "graph_loop.py"])
def test_custom_loops_guide_shows_the_examples_code(example: str) -> None:
    """The guide's not-run excerpts are the examples' code, which tests run."""
    guide = (ROOT / "docs" / "custom-loops.md").read_text(encoding="utf-8")
    assert _example_core(example) in guide
