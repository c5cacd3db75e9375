"""Build speed: packer build vs ``python -m zipapp -c`` vs shiv on a generated 5,000-file tree.

Run: python bench/build.py [--rounds N] [--files N] [--megabytes N]

Every contender runs from one virtual environment on this interpreter, interleaved round by
round; the medians and their ratios to zipapp go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, invocation, machine_line, make_venv, median, record, timed, tool_versions

_WORDS = [
    "account",
    "buffer",
    "client",
    "connect",
    "data",
    "event",
    "factory",
    "handler",
    "index",
    "item",
    "key",
    "loader",
    "manager",
    "message",
    "network",
    "option",
    "parser",
    "queue",
    "record",
    "request",
    "response",
    "result",
    "server",
    "session",
    "socket",
    "state",
    "stream",
    "task",
    "timeout",
    "token",
    "update",
    "value",
    "worker",
]


def _module_source(rng: random.Random, size: int) -> str:
    """Plausible Python source of about *size* bytes (varied, so it compresses like real code)."""
    parts = ['"""Generated module for the build benchmark."""\n\nimport os\nimport sys\n\n']
    total = 0
    while total < size:
        name = "_".join(rng.sample(_WORDS, 2))
        args = ", ".join(rng.sample(_WORDS, rng.randint(1, 4)))
        body = "\n".join(
            f"    {rng.choice(_WORDS)}_{i} = {rng.choice(_WORDS)}.get({rng.randint(0, 9999)!r}, "
            f"{rng.choice(_WORDS)!r})"
            for i in range(rng.randint(3, 12))
        )
        chunk = (
            f"\n\ndef {name}_{rng.randint(0, 99999)}({args}):\n"
            f'    """Return the {rng.choice(_WORDS)} for {rng.choice(_WORDS)}."""\n'
            f"{body}\n    return {rng.choice(_WORDS)}_0\n"
        )
        parts.append(chunk)
        total += len(chunk)
    return "".join(parts)


def generate_tree(root: Path, files: int, megabytes: int, seed: int = 5000) -> None:
    """About *files* files and *megabytes* MB: 90% modules, 8% text data, 2% binary blobs."""
    rng = random.Random(seed)
    target = megabytes * 1_000_000
    average = target // files
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "main.py").write_text("def main():\n    print('bench')\n")
    (root / "__main__.py").write_text("from app.main import main\nmain()\n")
    for i in range(files - 3):
        package = root / "app" / f"pkg{i // 100:02d}"
        if not package.exists():
            package.mkdir()
            (package / "__init__.py").write_text("")
        kind = i % 50
        if kind == 0:
            (package / f"blob{i}.bin").write_bytes(rng.randbytes(average * 2))
        elif kind < 5:
            text = "\n".join(" ".join(rng.choices(_WORDS, k=12)) for _ in range(average // 80))
            (package / f"data{i}.txt").write_text(text)
        else:
            (package / f"mod{i}.py").write_text(_module_source(rng, average))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="packer-bench-build-"))
    try:
        python = make_venv(work / "venv", "-e", str(REPO), "shiv")
        bindir = python.parent
        src = work / "tree"
        generate_tree(src, args.files, args.megabytes)
        size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
        count = sum(1 for p in src.rglob("*") if p.is_file())
        out = work / "out"
        out.mkdir()
        contenders: dict[str, list[str | Path]] = {
            "zipapp -c": [python, "-m", "zipapp", src, "-c", "-o", out / "zipapp.pyz"],
            "shiv": [bindir / "shiv", "--site-packages", src, "-e", "app.main:main",
                     "-o", out / "shiv.pyz", "--reproducible"],
            "packer (default, source)": [bindir / "packer", "build", src, "-o",
                                         out / "packer.pyz", "-m", "app.main:main",
                                         "--exclude", "/__main__.py", "-q"],
            "packer --compile": [bindir / "packer", "build", src, "-o", out / "c.pyz",
                                 "-m", "app.main:main", "--exclude", "/__main__.py",
                                 "--compile", "-q"],
        }  # fmt: skip
        rebuild = "packer --compile rebuild, one file changed"
        contenders[rebuild] = contenders["packer --compile"]
        # The other builds are first builds, which compile and deflate everything: the
        # build cache is off for it, and on (in a folder of its own, filled by the warm-up
        # run) for the rebuild.
        envs = {
            name: {"PACKER_BUILD_CACHE": str(work / "cache") if name == rebuild else "0"}
            for name in contenders
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for name, command in contenders.items():  # warm the page cache once
            timed(command, None, **envs[name])
        sizes: dict[str, int] = {}
        changed = src / "app" / "pkg00" / "mod5.py"
        for round_number in range(args.rounds):
            for name, command in contenders.items():
                for leftover in out.iterdir():
                    leftover.unlink()
                if name == rebuild:
                    with changed.open("a") as fp:
                        fp.write(f"\nCHANGED_IN_ROUND = {round_number}\n")
                times[name].append(timed(command, None, **envs[name]))
                sizes[name] = sum(p.stat().st_size for p in out.iterdir())
        base = median(times["zipapp -c"])
        rows = ["| contender | median s | × zipapp -c | runs (s) |", "|---|---:|---:|---|"]
        for name, values in times.items():
            runs = ", ".join(f"{v:.2f}" for v in values)
            rows.append(f"| {name} | {median(values):.2f} | {median(values) / base:.2f} | {runs} |")
        body = (
            f"`{invocation('build.py', args)}` — {count} files, "
            f"{size / 1e6:.1f} MB generated tree; {machine_line()}; "
            f"{tool_versions(python, 'shiv')}.\n\n"
            + "\n".join(rows)
            + "\n\nArchive sizes: "
            + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items())
            + ".\n\n`--compile`'s extra time is compiling every module to bytecode "
            "(CPython's compile(), spread over the CPUs in worker processes). zipapp stores "
            "no bytecode, so its archive compiles every module it imports on every start "
            "(zipimport writes none); shiv stores none either, and compiles once, when it "
            "extracts the archive on its first run. The rebuild takes the bytecode and the "
            "deflated bytes of every unchanged member from packer's build cache (target: "
            "≤ 1.0× zipapp -c).\n"
        )
        print(body)
        if not args.no_record:
            record("Build speed (bench/build.py)", body)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
