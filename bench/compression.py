"""Which deflate level should be the default? Start-up time and size of one archive per level.

Run: python bench/compression.py [--runs N]

The archive holds a copy of a few hundred stdlib modules under another package name, and its
entry point imports them all, so start-up reads and inflates a realistic amount of bytecode.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, invocation, machine_line, make_venv, median, publish, timed, tool_versions

PACKAGES = (
    "email",
    "json",
    "http",
    "xml",
    "urllib",
    "logging",
    "asyncio",
    "concurrent",
    "unittest",
)
LEVELS = {
    "stored": ["--no-compress"],
    "level 1": ["--compression-level", "1"],
    "level 6": ["--compression-level", "6"],
    "level 9": ["--compression-level", "9"],
}


def make_app(root: Path) -> int:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lib = root / "vendored"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    modules = []
    for package in PACKAGES:
        shutil.copytree(
            stdlib / package, lib / package, ignore=shutil.ignore_patterns("__pycache__", "test*")
        )
        for path in sorted((lib / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8", errors="replace")
            # Point absolute imports of the copied packages at the copies.
            for other in PACKAGES:
                text = text.replace(f"from {other}", f"from vendored.{other}")
                text = text.replace(f"import {other}.", f"import vendored.{other}.")
            path.write_text(text, encoding="utf-8")
            rel = path.relative_to(root).with_suffix("")
            if rel.name != "__main__":
                modules.append(".".join(rel.parts).removesuffix(".__init__"))
    lines = ["import importlib", "def main():", "    ok = 0", f"    for name in {modules!r}:",
             "        try:", "            importlib.import_module(name)", "            ok += 1",
             "        except Exception:", "            pass", "    return 0"]  # fmt: skip
    (root / "app.py").write_text("\n".join(lines) + "\n")
    return len(modules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="packer-bench-compression-"))
    try:
        python = make_venv(work / "venv", "-e", str(REPO))
        count = make_app(work / "src")
        archives = {}
        for name, flags in LEVELS.items():
            out = work / f"{name.replace(' ', '')}.pyz"
            timed(
                [
                    python.parent / "packer",
                    "build",
                    work / "src",
                    "-o",
                    out,
                    "-m",
                    "app:main",
                    "-q",
                    *flags,
                ]
            )
            archives[name] = out
        times: dict[str, list[float]] = {name: [] for name in archives}
        for out in archives.values():
            timed([python, out])  # warm the page cache
        for _ in range(args.runs):
            for name, out in archives.items():
                times[name].append(timed([python, out]))
        base = median(times["stored"])
        rows = ["| members | size | start-up median ms | × stored |", "|---|---:|---:|---:|"]
        for name, out in archives.items():
            m = median(times[name])
            rows.append(
                f"| {name} | {out.stat().st_size / 1e6:.2f} MB | {m * 1000:.1f} | {m / base:.3f} |"
            )
        intro = (
            f"`{invocation('compression.py', args)}` — an app importing {count} modules "
            f"at start; {machine_line()}; {tool_versions(python)}."
        )
        section = "Compression level and start-up (bench/compression.py)"
        publish(section, intro, rows, not args.no_record)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
