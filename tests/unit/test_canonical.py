"""Bytecode bytes that do not depend on what else the writing process holds."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from packer.canonical import canonical, reads
from packer.targets import find_interpreter

pytestmark = pytest.mark.skipif(
    not reads(sys.version_info[:2]), reason="the marshal layouts it reads"
)


def _stdlib_sources(count: int) -> list[Path]:
    return sorted(Path(os.__file__).parent.glob("*.py"))[:count]


def test_the_code_is_the_same_code() -> None:
    checked = 0
    for path in _stdlib_sources(150):
        code = compile(path.read_bytes(), path.name, "exec", dont_inherit=True)
        data = marshal.dumps(code)
        assert marshal.loads(canonical(data)) == code, path
        assert canonical(canonical(data)) == canonical(data)
        checked += 1
    assert checked > 100


def test_a_flag_set_by_someone_elses_reference_is_taken_out() -> None:
    """An object is flagged for back-references when its count is above one: a reference
    held elsewhere in the process flags it though nothing in the stream refers back to it."""
    source = "X = ('a tuple', 'of strings that are not names', 12345678901234567890)\n"
    code = compile(source, "m", "exec")
    alone = marshal.dumps(code)
    held = code.co_consts[0]  # one more reference to the constant tuple
    shared = marshal.dumps(code)
    assert alone != shared  # the flag differs, and nothing else
    assert canonical(alone) == canonical(shared)
    assert held is code.co_consts[0]


def test_back_references_are_kept_and_renumbered() -> None:
    source = "def f(a, b):\n    return a + b, 'same text here', 'same text here'\nf(1, 2)\n"
    code = compile(source, "m", "exec")
    data = canonical(marshal.dumps(code))
    assert b"r" in data and marshal.loads(data) == code


def test_what_it_cannot_read_it_leaves_alone() -> None:
    assert canonical(b"not marshal") == b"not marshal"
    assert canonical(marshal.dumps([1, 2])[:-1]) == marshal.dumps([1, 2])[:-1]


#: Run by another Python: the same code marshalled with and without an outside reference to
#: its constants, and each canonical form, as hex on one line each.
_ELSEWHERE = """
import marshal, sys
sys.path.insert(0, sys.argv[1])
from packer.canonical import canonical
code = compile(open(sys.argv[2], "rb").read(), "m.py", "exec", dont_inherit=True)
alone = marshal.dumps(code)
held = [c for c in code.co_consts]
shared = marshal.dumps(code)
assert marshal.loads(canonical(alone)) == code
print(alone != shared, canonical(alone) == canonical(shared))
"""


@pytest.mark.parametrize("version", [(3, 9), (3, 10), (3, 12), (3, 13)])
def test_each_layout_it_reads_gives_one_form(version: tuple[int, int], tmp_path: Path) -> None:
    """3.9 and 3.10 write the older code object layout; 3.12 and 3.13 the newer one."""
    python = find_interpreter(version)
    assert python, f"the tests need pyenv's CPython {version[0]}.{version[1]}"
    source = tmp_path / "m.py"
    source.write_text(
        "T = ('constant tuple', 'with strings that are not identifiers', 2 ** 70)\n"
        "def f(a, *, b=('another', 'tuple')):\n    return a, b, 'not a name either'\n"
        "class C:\n    def g(self):\n        return [x for x in T]\n"
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [python, "-I", "-c", _ELSEWHERE, str(repo), str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]
