"""Real plugin-heavy programs from PyPI: start-up, size and importlib.metadata, packer against
a venv install, shiv and pex.

Run: python bench/apps.py [--runs N] [--app NAME ...]

Each program is built from the same pinned requirement by each tool (packer ``--with DIST
--console-script NAME``, with and without ``--compile``, ``shiv -c NAME DIST``, ``pex DIST
-c NAME``) and ``NAME --version`` is timed: warm (the tool's cache already filled) and first
run (emptied before each run), interleaved, medians. Everything runs on this interpreter;
archives on a bare venv of it.
The metadata table times ``distributions()`` and ``entry_points()`` plus ``version()``,
``files()`` and ``read_text()`` of every distribution, in process, inside packer's archive
(its interpreter mode) and in the venv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REPO,
    bench_env,
    invocation,
    machine_line,
    make_venv,
    median,
    record,
    tool_versions,
)

#: name: (requirement, console script). Plugin machinery through entry points: httpie and
#: sqlfluff (pluggy); IPython and Django are large and read their files by path.
APPS = {
    "httpie": ("httpie==3.2.4", "http"),
    "sqlfluff": ("sqlfluff==4.5.0", "sqlfluff"),
    "ipython": ("ipython==9.18.1", "ipython"),
    "django": ("django==5.2.19", "django-admin"),
}

METADATA = """
import importlib.metadata as m, time
began = time.perf_counter()
dists = list(m.distributions())
eps = m.entry_points()
for d in dists:
    m.version(d.metadata["Name"]); d.files; d.read_text("METADATA")
print(json.dumps((time.perf_counter() - began) * 1000))
""".replace("import importlib", "import json, importlib", 1)


def start(app: str, contender: tuple[list[str], dict[str, str]], env: dict[str, str]) -> float:
    """Seconds of one ``--version`` run of *contender* (its command and environment)."""
    command, extra = contender
    began = time.perf_counter()
    proc = subprocess.run([*command, "--version"], env={**env, **extra}, capture_output=True,
                          stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{app}: {command[-1]} failed: {proc.stderr.decode(errors='replace')}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--app", action="append", choices=sorted(APPS), default=None)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="packer-bench-apps-"))
    try:
        run_all(work, args, not args.no_record)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(work: Path, args: argparse.Namespace, write: bool) -> None:
    apps = args.app or list(APPS)
    tools = make_venv(work / "tools", "-e", str(REPO), "shiv", "pex")
    bindir = tools.parent
    bare = make_venv(work / "bare")
    env = bench_env(PATH=f"{bare.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    startup_rows = [
        "| app | venv warm ms | packer warm × venv | packer --compile warm × venv "
        "| shiv warm × venv | pex warm × venv | packer first × venv "
        "| packer --compile first × venv | shiv first × venv | pex first × venv |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    size_rows = [
        "| app | packer MB | packer --compile MB | shiv MB | pex MB | packer × shiv "
        "| packer --compile × shiv | packer × pex | extracted by packer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    meta_rows = ["| app | venv ms | packer ms | packer × venv |", "|---|---:|---:|---:|"]
    size_ratios: list[float] = []
    compiled_ratios: list[float] = []
    for app in apps:
        spec, script = APPS[app]
        out = work / app
        out.mkdir()
        venv = make_venv(work / f"venv-{app}", spec)

        def sh(*command: str | Path) -> None:
            subprocess.run([str(c) for c in command], check=True, env=env, capture_output=True)

        sh(bindir / "packer", "build", "-o", out / "app.pyz", "--with", spec,
           "--console-script", script, "-q")  # fmt: skip
        sh(bindir / "packer", "build", "-o", out / "app-c.pyz", "--with", spec,
           "--console-script", script, "--compile", "-q")  # fmt: skip
        sh(bindir / "shiv", "-c", script, "-o", out / "app.shiv", spec)
        sh(bindir / "pex", spec, "-c", script, "--python", bare, "-o", out / "app.pex")
        caches = {name: out / f"cache-{name}" for name in ("packer", "c", "shiv", "pex")}
        contenders: dict[str, tuple[list[str], dict[str, str]]] = {
            "venv": ([str(venv.parent / script)], {}),
            "packer": ([str(bare), str(out / "app.pyz")], {"PACKER_CACHE": str(caches["packer"])}),
            "c": ([str(bare), str(out / "app-c.pyz")], {"PACKER_CACHE": str(caches["c"])}),
            "shiv": ([str(bare), str(out / "app.shiv")], {"SHIV_ROOT": str(caches["shiv"])}),
            "pex": ([str(bare), str(out / "app.pex")], {"PEX_ROOT": str(caches["pex"])}),
        }

        warm: dict[str, list[float]] = {name: [] for name in contenders}
        first: dict[str, list[float]] = {name: [] for name in contenders if name != "venv"}
        for name in contenders:
            start(app, contenders[name], env)
        for _ in range(args.runs):
            for name, contender in contenders.items():
                if name in first:
                    shutil.rmtree(caches[name], ignore_errors=True)
                    first[name].append(start(app, contender, env))
                warm[name].append(start(app, contender, env))
        base = median(warm["venv"])
        ratio = {name: median(times) / base for name, times in warm.items()}
        cold = {name: median(times) / base for name, times in first.items()}
        startup_rows.append(
            f"| {app} | {base * 1000:.0f} | {ratio['packer']:.2f} | {ratio['c']:.2f} "
            f"| {ratio['shiv']:.2f} | {ratio['pex']:.2f} | {cold['packer']:.2f} "
            f"| {cold['c']:.2f} | {cold['shiv']:.2f} | {cold['pex']:.2f} |"
        )
        files = {"packer": "app.pyz", "c": "app-c.pyz", "shiv": "app.shiv", "pex": "app.pex"}
        sizes = {name: (out / file).stat().st_size / 1e6 for name, file in files.items()}
        info = subprocess.run([str(bindir / "packer"), "info", "--json", str(out / "app.pyz")],
                              capture_output=True, text=True, check=True, env=env)  # fmt: skip
        extracted = [line.split(" (")[0] for line in json.loads(info.stdout).get("extracted", [])]
        size_ratios.append(sizes["packer"] / sizes["shiv"])
        compiled_ratios.append(sizes["c"] / sizes["shiv"])
        size_rows.append(
            f"| {app} | {sizes['packer']:.1f} | {sizes['c']:.1f} | {sizes['shiv']:.1f} "
            f"| {sizes['pex']:.1f} | {sizes['packer'] / sizes['shiv']:.2f} "
            f"| {sizes['c'] / sizes['shiv']:.2f} | {sizes['packer'] / sizes['pex']:.2f} "
            f"| {', '.join(extracted) or '-'} |"
        )
        ours, theirs = [], []
        for _ in range(args.runs):
            proc = subprocess.run(
                [str(bare), str(out / "app.pyz"), "-c", METADATA], capture_output=True,
                text=True, check=True,
                env={**env, "PACKER_INTERPRETER": "1", "PACKER_CACHE": str(caches["packer"])},
            )  # fmt: skip
            ours.append(float(proc.stdout))
            proc = subprocess.run([str(venv), "-c", METADATA], capture_output=True, text=True,
                                  check=True, env=env)  # fmt: skip
            theirs.append(float(proc.stdout))
        meta_rows.append(
            f"| {app} | {median(theirs):.1f} | {median(ours):.1f} "
            f"| {median(ours) / median(theirs):.2f} |"
        )
    body = (
        f"`{invocation('apps.py', args)}` — `NAME --version` of each program; {machine_line()}; "
        f"{tool_versions(tools, 'shiv', 'pex')}; the programs: "
        f"{', '.join(APPS[a][0] for a in apps)}.\n\n"
        + "\n".join(startup_rows)
        + "\n\nFirst run: the tool's cache emptied before each run (packer `PACKER_CACHE`, shiv "
        "`SHIV_ROOT`, pex `PEX_ROOT`), as a venv's warm start is the baseline. packer's default "
        "stores no bytecode for the program: each module compiles at its first import, into "
        "the runtime cache, which its warm runs read; `packer --compile` stores it.\n\n"
        + "\n".join(size_rows)
        + f"\n\nMedian packer × shiv size: {median(size_ratios):.2f}; with --compile: "
        f"{median(compiled_ratios):.2f}.\n\n"
        + "importlib.metadata in process (all distributions, their entry points, versions, "
        "files and METADATA), medians:\n\n" + "\n".join(meta_rows) + "\n"
    )
    print(body)
    if write:
        record("Real programs (bench/apps.py)", body)


if __name__ == "__main__":
    main()
