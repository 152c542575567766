"""Checks the sdist and wheel that `python -m build` made, before any install.

    python .ci/check_dist.py DIST_DIR

One wheel and one sdist, each holding every file of the package directory
(so a module, a subpackage or `py.typed` left out of the build fails here),
and the wheel's metadata naming the README as its Markdown description.
Exits 1 with one line per problem. Rendering of that description is left to
`twine check`, which .ci/run runs beside this.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import List, Set

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "keras_stepcounter"


def package_files() -> Set[str]:
    """The package's files in the checkout, as paths from the repository root."""
    root = REPO / PACKAGE
    return {
        path.relative_to(REPO).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def check_wheel(wheel: Path, expected: Set[str]) -> List[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode("utf-8"))
    problems = [f"{wheel.name}: {name} is missing" for name in sorted(expected - names)]
    if metadata.get("Description-Content-Type", "").split(";")[0] != "text/markdown":
        problems.append(f"{wheel.name}: the description is not text/markdown")
    body = metadata.get_payload() or metadata.get("Description", "")
    if "# keras_stepcounter" not in body:
        problems.append(f"{wheel.name}: the description is not the README")
    return problems


def check_sdist(sdist: Path, expected: Set[str]) -> List[str]:
    with tarfile.open(sdist) as archive:
        # Every member sits under one top directory, `<name>-<version>/`.
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = expected | {"README.md", "LICENSE", "setup.cfg", "pyproject.toml"}
    return [f"{sdist.name}: {name} is missing" for name in sorted(wanted - names)]


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print("usage: python .ci/check_dist.py DIST_DIR", file=sys.stderr)
        return 2
    dist = Path(argv[0])
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"{dist}: want one wheel and one sdist, found {wheels + sdists}")
        return 1
    expected = package_files()
    if f"{PACKAGE}/py.typed" not in expected:
        print(f"{PACKAGE}/py.typed is missing from the checkout")
        return 1
    problems = check_wheel(wheels[0], expected) + check_sdist(sdists[0], expected)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"{wheels[0].name} and {sdists[0].name}: all {len(expected)} package files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
