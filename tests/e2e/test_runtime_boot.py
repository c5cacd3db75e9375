"""Under a target Python other than the building one, the runtime's own modules come from
that Python's bytecode, not from their source compiled at every start."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from helpers import cli, other_interpreters, run, write_tree

PROBE = """
import importlib.util, json, sys
def main():
    runtime = [m for n, m in sys.modules.items() if n.partition(".")[0] == "_packer_runtime"]
    compiled_here = [m.__name__ for m in runtime if m.__spec__ is None]
    print(json.dumps({
        "loaders": sorted({type(m.__loader__).__name__ for m in runtime}),
        "found": importlib.util.find_spec("_packer_runtime.importer") is not None,
        "no_spec": compiled_here,
    }))
"""


def test_the_runtime_loads_from_each_targets_own_bytecode(tmp_path: Path) -> None:
    others = [(path, v) for path, v in other_interpreters() if (3, 10) <= v <= (3, 13)]
    assert others, "the tests need a CPython 3.10-3.13 other than this one (pyenv's)"
    app = write_tree(tmp_path / "app", {"probe.py": PROBE})
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    targets = [here] + [f"{v[0]}.{v[1]}" for _, v in others]
    args: list[object] = [
        "build",
        app,
        "-o",
        tmp_path / "app.pyz",
        "-m",
        "probe:main",
        "-q",
        "--compile",
    ]
    for target in targets:
        args += ["--target", target]
    code, _, err = cli(*args)
    assert code == 0, err
    for python, version in others:
        proc = run([python, tmp_path / "app.pyz"])
        assert proc.returncode == 0, (version, proc.stderr)
        # Every runtime module through the archive's importer: none by zipimport, which
        # would have compiled it from source.
        assert json.loads(proc.stdout) == {"loaders": ["_Loader"], "found": True, "no_spec": []}
    proc = run([sys.executable, tmp_path / "app.pyz"])
    assert proc.returncode == 0, proc.stderr
    # The building Python: zipimport reads its bytecode beside each module, as before.
    assert "zipimporter" in json.loads(proc.stdout)["loaders"]
