"""Shared helpers for the benchmarks: a virtual environment, timing, medians, RESULTS.md."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"


def bench_env(**extra: str) -> dict[str, str]:
    """The environment every contender runs in: PYTHONDONTWRITEBYTECODE and friends unset."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PACKER_"))}
    env.update(extra)
    return env


def make_venv(where: Path, *requirements: str) -> Path:
    """A virtual environment on this interpreter with *requirements*; returns its python."""
    python = where / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(where)
    if requirements:
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *requirements,
            ],
            check=True,
            env=bench_env(),
        )
    return python


def timed(command: Sequence[str | os.PathLike[str]], cwd: Path | None = None, **env: str) -> float:
    """Wall-clock seconds of one run of *command* (with *env* added); raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(
        [os.fspath(c) for c in command],
        cwd=cwd,
        env=bench_env(**env),
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"benchmark command failed ({proc.returncode}): {' '.join(map(str, command))}\n"
            + proc.stderr.decode(errors="replace")
        )
    return elapsed


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine_line() -> str:
    cpus = os.cpu_count()
    day = time.strftime("%Y-%m-%d")
    return f"Python {sys.version.split()[0]} on {sys.platform}, {cpus} CPUs, {day}"


def record(section: str, body: str) -> None:
    """Replace (or add, before the closing "Reading") the section ``## {section}`` of
    bench/RESULTS.md."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    block = f"## {section}\n\n{body.rstrip()}\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text).rstrip() + "\n"
    elif "\n## Reading\n" in text:
        head, _, tail = text.partition("\n## Reading\n")
        text = head.rstrip() + "\n\n" + block + "\n## Reading\n" + tail
    else:
        text = text.rstrip() + "\n\n" + block
    RESULTS.write_text(text, encoding="utf-8")


def invocation(script: str, args: argparse.Namespace) -> str:
    """The command line that reproduces this run: every parameter written out, defaults
    included, quoted for a shell so that it can be pasted back."""
    words = ["python", f"bench/{script}"]
    for name, value in vars(args).items():
        flag = "--" + name.replace("_", "-")
        if name == "no_record" or value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def tool_versions(python: Path, *distributions: str, packer: bool = True) -> str:
    """What *python*'s environment ran, as RESULTS.md records it: "packer 0.1.0 at 1a2b3c4,
    shiv 1.0.8" (packer's commit, ``+changes`` when packer/ differed from it; with *packer* False,
    only *distributions*)."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try: print(name, m.version(name))\n"
        "    except m.PackageNotFoundError: print(name, 'not installed')\n"
    )
    out = subprocess.run(
        [str(python), "-c", code, *(["packer-pyz"] if packer else []), *distributions],
        capture_output=True, text=True, check=True, env=bench_env(),
    ).stdout.splitlines()  # fmt: skip
    if not packer:
        return ", ".join(out)
    parts = [f"packer {out[0].split()[1]} at {commit_of('packer')}", *out[1:]]
    return ", ".join(parts)


def commit_of(folder: str) -> str:
    """The checkout's commit, ``+changes`` when *folder* differs from it (others do not count)."""
    git = ["git", "-C", str(REPO)]
    commit = (
        subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        or "unknown commit"
    )
    if subprocess.run([*git, "diff", "--quiet", "HEAD", "--", folder], check=False).returncode:
        commit += "+changes"
    return commit


def publish(section: str, intro: str, rows: Sequence[str], save: bool) -> None:
    """Print *intro* and the table *rows*; with *save*, also as *section* of RESULTS.md."""
    body = f"{intro}\n\n" + "\n".join(rows) + "\n"
    print(body)
    if save:
        record(section, body)
