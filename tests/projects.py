"""A Python project for the tests: pyproject metadata, two scripts, package data, an
optional-dependency group, and leftovers of an earlier build that must never be packed."""

from __future__ import annotations

from pathlib import Path

from helpers import write_tree

REPORT = """
import json, sys
from importlib.metadata import distribution, version
from importlib.resources import files


def main():
    import greet
    report = {
        "script": "{script}",
        "version": version("myproj"),
        "requires": sorted(distribution("myproj").requires or []),
        "data": files("myproj").joinpath("data/greeting.txt").read_text().strip(),
        "greet": greet.hello(),
        "argv": sys.argv[1:],
    }
    try:
        import pkrtest_speedups  # the optional-dependency group "fast"
        report["fast"] = pkrtest_speedups.NAME
    except ImportError:
        report["fast"] = None
    print(json.dumps(report))
    return 0
"""

PYPROJECT = """
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "myproj"
version = "2.5.0"
requires-python = ">=3.9"
dependencies = ["greet>=1"]

[project.optional-dependencies]
fast = ["pkrtest-speedups"]

[project.scripts]
myproj = "myproj.cli:main"
myproj-admin = "myproj.admin:main"

[tool.setuptools.package-data]
myproj = ["data/*.txt"]
"""


def make_project(root: Path, *, layout: str = "flat") -> Path:
    package = "src/myproj" if layout == "src" else "myproj"
    write_tree(root, {
        "pyproject.toml": PYPROJECT,
        f"{package}/__init__.py": "",
        f"{package}/cli.py": REPORT.replace("{script}", "myproj"),
        f"{package}/admin.py": REPORT.replace("{script}", "myproj-admin"),
        f"{package}/data/greeting.txt": "hello from the project's data\n",
        "tests/test_nothing.py": "def test_nothing():\n    pass\n",
        "requirements.txt": "this-is-never-installed==0\n",
        # Leftovers of an earlier build in the tree: must not reach the archive.
        "build/lib/myproj/stale.py": "raise SystemExit('a stale build file ran')\n",
        "myproj.egg-info/PKG-INFO": "Name: stale\n",
    })  # fmt: skip
    return root
