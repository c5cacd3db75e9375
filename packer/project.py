"""A Python project as the source: its wheel, built by its own PEP 517 backend, and what the
archive takes from it (the distribution, its dependencies, its console scripts)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PathDistribution
from pathlib import Path

from ._version import __version__
from .buildcache import HERE, default_cache
from .config import read_toml
from .dependencies import Distribution, PipOptions, Staged, forget_origin, pip_reason, uv_binary
from .errors import BuildError, ConfigError, EntryPointError, SourceError
from .selection import FileFilter, select_files

__all__ = [
    "LEFTOVERS",
    "Project",
    "build_wheel",
    "canonical",
    "find_project",
    "no_project",
    "project_entry",
    "requirement",
    "settle",
]

#: What earlier builds leave in a project (setuptools' build/ and egg-info, dist/): never copied
#: to the folder the backend builds in, so a stale file cannot reach the wheel.
LEFTOVERS = ("/build/", "/dist/", "*.egg-info/", "/.eggs/")


@dataclass(frozen=True)
class Project:
    """A folder with project metadata: what was found, and where."""

    root: Path
    #: Which file says it is a project (pyproject.toml, setup.py or setup.cfg).
    marker: str


def find_project(src: Path) -> Project | None:
    """The project *src* holds: a ``pyproject.toml`` with a ``[project]`` or ``[build-system]``
    table, or a ``setup.py`` or ``setup.cfg``; None for a plain folder."""
    pyproject = src / "pyproject.toml"
    if pyproject.is_file():
        data = read_toml(pyproject)
        if isinstance(data.get("project"), dict) or isinstance(data.get("build-system"), dict):
            return Project(src, "pyproject.toml")
    for name in ("setup.py", "setup.cfg"):
        if (src / name).is_file():
            return Project(src, name)
    return None


def build_wheel(
    project: Project,
    into: Path,
    pip: PipOptions,
    patterns: FileFilter,
    skip: Callable[[str, Path], bool],
) -> Path:
    """Build *project*'s wheel in *into*, from a copy of its files (so the build writes nothing
    into the project), with its backend in an isolated environment, as ``pip wheel`` does.

    The copy holds what the folder would pack (``.gitignore`` and *patterns* apply) without
    :data:`LEFTOVERS`. Returns the wheel's path; BuildError, in one line, if the backend fails.
    """
    leftovers = FileFilter(
        patterns.include, (*patterns.exclude, *LEFTOVERS), patterns.use_gitignore
    )
    selection = select_files(project.root, patterns=leftovers, skip=skip)
    copy = into / "source"
    key = hashlib.sha256()
    for item in selection.files:
        target = copy / item.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(item.path, target)
        executable = os.stat(target).st_mode & 0o111 != 0
        key.update(f"{item.name}\0{executable:d}\0".encode())
        key.update(hashlib.sha256(target.read_bytes()).digest())
    wheels = into / "wheel"
    try:
        # uv builds in an isolated environment it keeps cached: seconds faster than pip.
        command = [
            uv_binary(), "build", "--wheel", "--out-dir", str(wheels), "--quiet",
            "--python", sys.executable, *pip.args(), str(copy),
        ]  # fmt: skip
    except BuildError:
        command = [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels),
            "--disable-pip-version-check", "--no-input", *pip.args(), str(copy),
        ]  # fmt: skip
    # The backend sees only the copy (no build leftovers, no version control folder), so the
    # copy's files, the interpreter, the tool that runs the backend and its options decide the
    # wheel: an unchanged project reuses the wheel it built last time.
    key.update(b"\0".join([HERE, __version__.encode(), os.path.basename(command[0]).encode(),
                            *(arg.encode() for arg in pip.args())]))  # fmt: skip
    cache = default_cache()
    cached = cache.get_wheel(key.hexdigest()) if cache is not None else None
    if cached is not None:
        wheels.mkdir(parents=True, exist_ok=True)
        (wheels / cached[0]).write_bytes(cached[1])
        return wheels / cached[0]
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_TARGET", "PIP_PREFIX")}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise BuildError(f"cannot run {command[0]}: {exc.strerror}") from None
    built = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if proc.returncode != 0 or len(built) != 1:
        reason = _reason(proc.stderr) if proc.returncode else "it gave no single wheel"
        raise BuildError(f"{project.root}: building the project's wheel failed: {reason}")
    if cache is not None:
        cache.put_wheel(key.hexdigest(), built[0].name, built[0].read_bytes())
    return built[0]


#: The box-drawing characters uv frames a backend's output with.
_FRAME = ("\u00d7", "\u2570", "\u2502", "\u251c")


def _reason(stderr: str) -> str:
    """What a failed build said, in one line: the backend's own last words before the
    tools' wrapping ("note: ...", "hint: ..."), else pip's reason."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    own = [
        line for line in lines
        if not line.startswith(("note:", "hint:", "help:", "[end of output]", *_FRAME))
    ]  # fmt: skip
    errors = [line for line in own if "Error" in line or line.startswith("error")]
    chosen = errors[-2:] or own[-1:] or [pip_reason(stderr)]
    return " / ".join(chosen)


def wheel_name(wheel: Path) -> str:
    """The distribution name a wheel's file name gives, normalized."""
    return canonical(wheel.name.split("-")[0])


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement(wheel: Path, extras: tuple[str, ...]) -> str:
    """The requirement that installs *wheel* with its *extras*."""
    return f"{wheel}[{','.join(extras)}]" if extras else str(wheel)


def settle(staged: Staged, wheel: Path, extras: tuple[str, ...]) -> Distribution:
    """The project's own distribution among the installed ones, with the traces of the
    temporary wheel removed; ConfigError for an extra the project does not declare."""
    name = wheel_name(wheel)
    found = [d for d in staged.distributions if canonical(d.name) == name]
    if len(found) != 1:
        raise BuildError(f"{wheel.name}: the project's distribution was not installed")
    dist = found[0]
    info = staged.root / dist.dist_info
    declared = {
        canonical(e) for e in PathDistribution(info).metadata.get_all("Provides-Extra") or []
    }
    unknown = [e for e in extras if canonical(e) not in declared]
    if unknown:
        listed = ", ".join(sorted(declared)) or "none"
        raise ConfigError(
            f"--extra {unknown[0]}: the project declares no such optional-dependency group "
            f"(it has: {listed})"
        )
    forget_origin(info, dist)
    return dist


def project_entry(dist: Distribution) -> str:
    """The console script to run when none was named: the project's only one, or among
    several the one named as the project (as ``pipx run`` picks one)."""
    scripts = sorted(dist.console_scripts)
    if len(scripts) == 1:
        return scripts[0]
    named = [s for s in scripts if canonical(s) == canonical(dist.name)]
    if named:
        return named[0]
    if not scripts:
        raise EntryPointError(
            f"{dist.name} declares no console script ([project.scripts]): give --entry "
            "module:function or --console-script NAME"
        )
    raise EntryPointError(
        f"{dist.name} declares {len(scripts)} console scripts ({', '.join(scripts)}) and "
        "none is named after it: choose one with --console-script NAME"
    )


def no_project(src: Path) -> SourceError:
    return SourceError(
        f"{src}: --project: no pyproject.toml with a [project] or [build-system] table, "
        "setup.py or setup.cfg here"
    )
