"""Building a project with its dependencies, for one Python and for four, and starting the
four-target archive under each Python: packer against shiv, pex and a venv.

Run: python bench/targets.py [--rounds N] [--runs N]

The app is bench/startup.py's (click, msgpack with its C extension, 200 modules), built from
its pyproject.toml: packer in project mode, shiv and pex as their documents show. Every tool
runs from one virtual environment on this interpreter; caches stay warm (pip's, pex's, uv's,
packer's build cache) as they are on a developer's machine, after one build of each that
is not timed. Rounds are interleaved; medians and ratios go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
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
    timed,
    tool_versions,
)
from startup import write_app

VERSIONS = ("3.10", "3.11", "3.12", "3.13")
#: pex's default (pip's legacy resolver) fails on a local project with several --python
#: (an assertion inside pip); the 2020 resolver is the one pip itself uses.
RESOLVER = ["--resolver-version", "pip-2020-resolver"]


def interpreters() -> dict[str, str]:
    """CPython 3.10 to 3.13 on this machine, by version (pyenv's, called by path)."""
    sys.path.insert(0, str(REPO))
    from packer.targets import find_interpreter

    found = {}
    for version in VERSIONS:
        major, minor = map(int, version.split("."))
        path = find_interpreter((major, minor))
        if path:
            found[version] = path
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    pythons = interpreters()
    missing = [v for v in VERSIONS if v not in pythons]
    if missing:
        raise SystemExit(f"this benchmark needs CPython {', '.join(missing)} installed")
    work = Path(tempfile.mkdtemp(prefix="packer-bench-targets-"))
    try:
        run(work, args, pythons)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace, pythons: dict[str, str]) -> None:
    project = write_app(work)
    tools = make_venv(work / "tools", "-e", str(REPO), "shiv", "pex")
    bindir = tools.parent
    out = work / "out"
    out.mkdir()
    everyone = [arg for v in VERSIONS for arg in ("--python", pythons[v])]
    # For four Pythons both tools start from the app's wheel, built once: pex builds a local
    # project in its own folder, once a Python and in parallel, and those builds collide.
    wheels = work / "wheels"
    subprocess.run([tools, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, project],
                   check=True, env=bench_env())  # fmt: skip
    shutil.rmtree(project / "build", ignore_errors=True)
    wheel = next(wheels.glob("*.whl"))
    targets = [arg for v in VERSIONS for arg in ("--target", v)]
    one: dict[str, list[str | Path]] = {
        "shiv": [bindir / "shiv", "-c", "benchapp", "-o", out / "app.shiv", project],
        "pex": [bindir / "pex", project, "-c", "benchapp", *RESOLVER, "-o", out / "app.pex"],
        # --compile: bytecode stored for each target, the start-up this bench measures.
        "packer": [bindir / "packer", "build", project, "-o", out / "app.pyz", "--compile", "-q"],
        "packer, one file of the project changed": [
            bindir / "packer",
            "build",
            project,
            "-o",
            out / "app.pyz",
            "--compile",
            "-q",
        ],
    }
    four: dict[str, list[str | Path]] = {
        "pex, 4 interpreters": [bindir / "pex", wheel, "-c", "benchapp", *RESOLVER,
                                *everyone, "-o", out / "four.pex"],
        "packer, 4 targets": [bindir / "packer", "build", "--with", wheel, "--console-script",
                              "benchapp", "-o", out / "four.pyz", *targets, "--compile",
                              "-q"],
    }  # fmt: skip
    builds = {**one, **four}
    for command in builds.values():  # warm every cache once
        timed(command)
    times: dict[str, list[float]] = {name: [] for name in builds}
    changed = project / "benchapp" / "mods" / "m005.py"
    for round_number in range(args.rounds):
        for name, command in builds.items():
            if name.endswith("changed"):  # the backend runs again, and one module compiles
                with changed.open("a") as fp:
                    fp.write(f"\nCHANGED_IN_ROUND = {round_number}\n")
            times[name].append(timed(command))
    rows = ["| build | median s | × peer | runs (s) |", "|---|---:|---:|---|"]
    for name in builds:
        peer = "shiv" if name in one else "pex, 4 interpreters"
        ratio = median(times[name]) / median(times[peer])
        runs = ", ".join(f"{v:.2f}" for v in times[name])
        rows.append(f"| {name} | {median(times[name]):.2f} | {ratio:.2f} × {peer} | {runs} |")
    starts = startup(work, project, pythons, out / "four.pyz", args.runs)
    body = (
        f"`{invocation('targets.py', args)}` — bench/startup.py's app (click, msgpack, 200 "
        f"modules) built from its pyproject.toml; {machine_line()}; "
        f"{tool_versions(tools, 'shiv', 'pex', 'uv')}.\n\n"
        + "\n".join(rows)
        + "\n\npacker keeps the project's wheel, bytecode and deflated members in its build "
        "cache: a build of an unchanged project runs no backend; after a change to one file it "
        'runs the backend again and compiles that module (the "changed" row).\n\n'
        "Targets: packer ≤ 0.5× shiv for one Python (each from the project folder); "
        "packer ≤ 0.5× pex for four (each from the app's wheel, built once; packer "
        "`--target 3.10 ... --target 3.13`, resolved by uv; pex `--python` for each of the "
        "four interpreters).\n\n" + "\n".join(starts) + "\n"
    )
    print(body)
    if not args.no_record:
        record("Builds for one and four Pythons, and start-up on each (bench/targets.py)", body)


def startup(
    work: Path, project: Path, pythons: dict[str, str], archive: Path, runs: int
) -> list[str]:
    """`app --version` from the four-target archive under each Python, against the app
    installed in a venv of that Python; warm, interleaved."""
    rows = [
        "| Python | venv median ms | packer median ms | × venv |",
        "|---|---:|---:|---:|",
    ]
    for version in ("3.10", "3.12", "3.13"):
        venv = work / f"venv-{version}"
        subprocess.run([pythons[version], "-m", "venv", venv], check=True, env=bench_env())
        subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", project], check=True,
                       env=bench_env())  # fmt: skip
        bare = work / f"bare-{version}"
        subprocess.run([pythons[version], "-m", "venv", "--without-pip", bare], check=True)
        commands = {
            "venv": [str(venv / "bin" / "benchapp"), "--version"],
            "packer": [str(bare / "bin" / "python"), str(archive), "--version"],
        }
        results: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():
            subprocess.run(command, check=True, capture_output=True, env=bench_env())
        for _ in range(runs):
            for name, command in commands.items():
                began = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=bench_env())
                results[name].append(time.perf_counter() - began)
        v, p = median(results["venv"]), median(results["packer"])
        rows.append(f"| {version} | {v * 1000:.0f} | {p * 1000:.0f} | {p / v:.2f} |")
    rows.append("")
    rows.append(
        "Start-up target: ≤ 1.1× the venv of the same Python. The archive is the four-target "
        "one above, run by a bare venv of each Python; the venv runs its console script."
    )
    return rows


if __name__ == "__main__":
    main()
