"""Start-up time: one realistic app as a venv install, stdlib zipapp, shiv, pex and packer.

Run: python bench/startup.py [--runs N] [--apps [--app-runs N]]

With ``--apps`` it goes on to the real plugin-heavy programs of bench/apps.py (httpie,
sqlfluff, IPython, Django: warm and first-run start-up against a venv, shiv and pex, sizes,
and importlib.metadata), which record their own section.

The app uses click, msgpack (a C extension) and 200 small modules imported at start, and
reads a data file with importlib.resources; ``app --version`` is what is timed. Every
contender runs on this interpreter from one virtual environment. Cold: the tool's cache is
emptied before each run. Warm: it is not. Runs are interleaved; medians go to RESULTS.md.
"""

from __future__ import annotations

import argparse
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

MODULES = 200


def write_app(root: Path) -> Path:
    """The benchmark app as an installable project; returns its folder."""
    project = root / "benchapp"
    package = project / "benchapp"
    (package / "mods").mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "1.0"\n')
    (package / "mods" / "__init__.py").write_text("")
    for i in range(MODULES):
        (package / "mods" / f"m{i:03d}.py").write_text(
            f'"""Module {i}."""\n\nVALUE = {i}\n\n\ndef compute(x):\n    return x * {i} + VALUE\n'
            f"\n\nclass Thing{i}:\n    def __init__(self, v):\n        self.v = v\n\n"
            f"    def __repr__(self):\n        return f'Thing{i}({{self.v!r}})'\n"
        )
    imports = "\n".join(f"from benchapp.mods import m{i:03d}" for i in range(MODULES))
    (package / "data.json").write_text('{"name": "benchapp", "greeting": "hello"}\n')
    (package / "cli.py").write_text(
        "import json\nfrom importlib.resources import files\n\nimport click\nimport msgpack\n\n"
        f"{imports}\n\n\n"
        "@click.command()\n@click.version_option('1.0')\ndef main():\n"
        "    data = json.loads(files('benchapp').joinpath('data.json').read_text())\n"
        "    click.echo(msgpack.unpackb(msgpack.packb(data))['greeting'])\n"
    )
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "benchapp"\nversion = "1.0"\ndependencies = ["click", "msgpack"]\n'
        '[project.scripts]\nbenchapp = "benchapp.cli:main"\n\n'
        '[tool.setuptools.package-data]\nbenchapp = ["data.json"]\n'
    )
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--apps", action="store_true", help="and the real programs (apps.py)")
    parser.add_argument("--app-runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="packer-bench-startup-"))
    try:
        run_all(work, args, not args.no_record)
        if args.apps:
            import apps

            real = argparse.Namespace(runs=args.app_runs, app=None, no_record=args.no_record)
            apps.run_all(work / "apps", real, not args.no_record)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(work: Path, args: argparse.Namespace, write: bool) -> None:
    runs = args.runs
    project = write_app(work)
    # Tools in one venv; the app installed in another (the baseline); archives run on a third,
    # bare one, so nothing installed (an editable install's import hook, say) taxes them.
    tools = make_venv(work / "tools", "-e", str(REPO), "shiv", "pex")
    bindir = tools.parent
    installed = make_venv(work / "installed", str(project))
    python = make_venv(work / "bare")
    out = work / "out"
    out.mkdir()
    env = bench_env(PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    caches = {name: work / "caches" / name for name in ("shiv", "pex", "pex-venv", "packer")}

    def sh(*command: str | Path) -> None:
        subprocess.run([str(c) for c in command], check=True, env=env, capture_output=True)

    # stdlib zipapp: dependencies installed next to the code (msgpack falls back to pure Python,
    # as a C extension cannot load from a zip).
    target = work / "zipapp-src"
    sh(tools, "-m", "pip", "install", "--target", target, "--no-compile", "-q", project)
    sh(tools, "-m", "zipapp", target, "-m", "benchapp.cli:main", "-c", "-o", out / "zipapp.pyz")
    sh(bindir / "shiv", "-c", "benchapp", "-o", out / "app.shiv", project)
    sh(bindir / "pex", project, "-c", "benchapp", "--python", python, "-o", out / "app.pex")
    sh(bindir / "pex", project, "-c", "benchapp", "--python", python, "--venv", "--sh-boot",
       "-o", out / "venv.pex")  # fmt: skip
    # From the project, as shiv and pex build it: its wheel, its dependencies, its script.
    sh(bindir / "packer", "build", project, "-o", out / "app.pyz", "-q")

    def archive(file: str, var: str, cache: str) -> tuple[list[str], dict[str, str], Path]:
        return [str(python), str(out / file)], {var: str(caches[cache])}, caches[cache]

    contenders: dict[str, tuple[list[str], dict[str, str], Path | None]] = {
        "venv (console script)": ([str(installed.parent / "benchapp")], {}, None),
        "stdlib zipapp": ([str(python), str(out / "zipapp.pyz")], {}, None),
        "shiv": archive("app.shiv", "SHIV_ROOT", "shiv"),
        "pex": archive("app.pex", "PEX_ROOT", "pex"),
        "pex --venv --sh-boot": (
            [str(out / "venv.pex")],
            {"PEX_ROOT": str(caches["pex-venv"])},
            caches["pex-venv"],
        ),
        "packer": archive("app.pyz", "PACKER_CACHE", "packer"),
    }
    cold: dict[str, list[float]] = {name: [] for name, c in contenders.items() if c[2] is not None}
    warm: dict[str, list[float]] = {name: [] for name in contenders}

    def start(name: str) -> float:
        command, extra, _ = contenders[name]
        began = time.perf_counter()
        proc = subprocess.run([*command, "--version"], env={**env, **extra}, capture_output=True)
        elapsed = time.perf_counter() - began
        if proc.returncode != 0 or b"1.0" not in proc.stdout:
            raise SystemExit(f"{name} failed: {proc.stderr.decode(errors='replace')}")
        return elapsed

    for name in contenders:  # check each works, and warm the page cache
        start(name)
    for _ in range(runs):
        for name, (_, _, cache) in contenders.items():
            if cache is not None:
                shutil.rmtree(cache, ignore_errors=True)
                cold[name].append(start(name))
            warm[name].append(start(name))

    base = median(warm["venv (console script)"])
    rows = [
        "| contender | warm median ms | warm × venv | cold median ms | cold × venv warm |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in contenders:
        w = median(warm[name])
        c = (
            f"{median(cold[name]) * 1000:.0f} | {median(cold[name]) / base:.2f}"
            if name in cold
            else "- | -"
        )
        rows.append(f"| {name} | {w * 1000:.0f} | {w / base:.2f} | {c} |")
    body = (
        f"`{invocation('startup.py', args)}` — `app --version` of an app with click, msgpack "
        f"(C extension) and {MODULES} modules imported at start; {machine_line()}; "
        f"{tool_versions(tools, 'shiv', 'pex')}; the app's "
        f"{tool_versions(installed, 'click', 'msgpack', packer=False)}.\n\n"
        + "\n".join(rows)
        + "\n\nCold: the tool's cache emptied before each run (shiv `SHIV_ROOT`, pex `PEX_ROOT`, "
        "packer `PACKER_CACHE`); venv and zipapp have no cache. The zipapp runs msgpack's "
        "pure-Python fallback (a C extension cannot load from a zip).\n"
    )
    print(body)
    if write:
        record("Start-up (bench/startup.py)", body)


if __name__ == "__main__":
    main()
