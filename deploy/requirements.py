"""Print the requirements of pyproject.toml's base install plus the given extras, for ``pip -r``.

    python deploy/requirements.py pyproject.toml serve cpu > serve-cpu.txt

The Dockerfile installs the dependencies in a layer of their own, keyed by these lists rather
than by the whole project, so that a change to the code (or to a tool's settings in
pyproject.toml) does not reinstall TensorFlow. Standard library only: it runs before anything
is installed.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The base dependencies followed by those of each extra, in order, without duplicates."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise ValueError(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    lines = list(project["dependencies"])
    for extra in extras:
        lines += [line for line in optional[extra] if line not in lines]
    return lines


def main(argv: list[str]) -> int:
    """``requirements.py PYPROJECT [EXTRA ...]``: one requirement per line on stdout."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        lines = requirements(Path(argv[0]), argv[1:])
    except ValueError as error:
        print(f"requirements.py: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
