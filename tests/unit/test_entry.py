"""Entry-point specs: parsing and the static check against the packed files."""

from __future__ import annotations

import re

import pytest

from packer.entry import parse_entry
from packer.errors import EntryPointError


def reader(files: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda name: files[name].encode() if name in files else None


@pytest.mark.parametrize(
    ("spec", "kind", "value"),
    [
        ("pkg.mod:main", "callable", "pkg.mod:main"),
        ("  pkg.mod:App.run ", "callable", "pkg.mod:App.run"),
        ("pkg.mod", "module", "pkg.mod"),
        ("tool", "module", "tool"),
    ],
)
def test_parse(spec: str, kind: str, value: str) -> None:
    entry = parse_entry(spec)
    assert (entry.kind, entry.value) == (kind, value)


@pytest.mark.parametrize(
    "spec", ["", ":main", "pkg.:main", "pkg:", "pkg:1x", "a-b:main", "pkg::x", "pkg/mod"]
)
def test_malformed(spec: str) -> None:
    with pytest.raises(EntryPointError, match=re.escape("expected 'package.module:function'")):
        parse_entry(spec)


def test_check_accepts_defined_names_in_many_forms() -> None:
    files = {
        "app/__init__.py": "",
        "app/cli.py": (
            "import sys\nfrom os import path as main_path\n"
            "if sys.platform:\n    def main():\n        pass\n"
            "run = lambda: 0\nclass App:\n    pass\n"
        ),
    }
    for spec in (
        "app.cli:main",
        "app.cli:run",
        "app.cli:App.go",
        "app.cli:main_path",
        "app.cli:sys",
    ):
        parse_entry(spec).check(reader(files), "src")


def test_check_refuses_missing_module_and_name() -> None:
    files = {"app/__init__.py": "", "app/cli.py": "def helper():\n    def main():\n        pass\n"}
    with pytest.raises(EntryPointError, match=re.escape("module 'app.nope' is not in src")):
        parse_entry("app.nope:main").check(reader(files), "src")
    with pytest.raises(EntryPointError, match=re.escape("does not define 'main'")):
        parse_entry("app.cli:main").check(reader(files), "src")


def test_check_gives_up_on_star_imports_and_module_getattr() -> None:
    files = {"a.py": "from os import *\n", "b.py": "def __getattr__(name):\n    return name\n"}
    parse_entry("a:anything").check(reader(files), "src")
    parse_entry("b:anything").check(reader(files), "src")


def test_module_entry_needs_a_main_for_packages() -> None:
    files = {"app/__init__.py": ""}
    with pytest.raises(EntryPointError, match=re.escape("has no __main__.py")):
        parse_entry("app").check(reader(files), "src")
    parse_entry("app").check(reader({**files, "app/__main__.py": ""}), "src")
