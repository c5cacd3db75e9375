"""Install dependencies with pip into a staging folder and describe what landed there."""

from __future__ import annotations

import email.parser
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PathDistribution
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .targets import Target

from .errors import BuildError

__all__ = [
    "Distribution",
    "PipOptions",
    "Staged",
    "forget_origin",
    "install",
    "pip_reason",
    "run_uv",
    "scan",
    "uv_binary",
]

#: File name endings of native code: extension modules and the shared libraries wheels carry.
_NATIVE = re.compile(r"\.(so|pyd|dylib|dll)(\.[0-9.]+)?$")


@dataclass(frozen=True)
class PipOptions:
    """Where pip may look: passed through to ``pip install`` as they are."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    no_index: bool = False
    #: Installing a lock: every file must match a hash, and nothing is added to it.
    require_hashes: bool = False
    no_deps: bool = False

    def args(self) -> list[str]:
        args: list[str] = []
        if self.require_hashes:
            args.append("--require-hashes")
        if self.no_deps:
            args.append("--no-deps")
        for link in self.find_links:
            args += ["--find-links", link]
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        if self.no_index:
            args.append("--no-index")
        return args


@dataclass
class Distribution:
    """One installed distribution: its files relative to the staging folder."""

    name: str
    version: str
    dist_info: str
    files: list[str] = field(default_factory=list)
    tags: tuple[str, ...] = ()
    console_scripts: dict[str, str] = field(default_factory=dict)
    #: Where its files are read from (a multi-target build has one staging folder a
    #: target); None: the staging folder of :class:`Staged`.
    root: Path | None = None
    #: The archive folder its files go to; None: by whether it has native code.
    prefix: str | None = None
    #: The targets it serves (indexes into Staged.targets); empty: every one.
    targets: tuple[int, ...] = ()
    #: Why a pure distribution is extracted to the cache, like native code: the evidence
    #: that it reads its own files by path, or the option that asked. None: it is not.
    extract: str | None = None

    @property
    def native(self) -> bool:
        """Whether it carries native code (which cannot be imported from a zip)."""
        return any(_NATIVE.search(name) or ".libs/" in name for name in self.files)

    @property
    def extracted(self) -> bool:
        """Whether it runs from the cache rather than from inside the archive."""
        return self.extract is not None or self.native


@dataclass
class Staged:
    """What pip installed: distributions, plus files no RECORD claims (kept, as pip left them)."""

    root: Path
    distributions: list[Distribution]
    loose: list[str]
    #: The targets of a multi-target build; empty: the building interpreter alone.
    targets: tuple[Target, ...] = ()

    def console_script(self, name: str) -> str | None:
        for dist in self.distributions:
            if name in dist.console_scripts:
                return dist.console_scripts[name]
        return None


def install(
    requirements: Sequence[Path], specs: Sequence[str], options: PipOptions, target: Path
) -> None:
    """Install *requirements* files and *specs* into *target* for the interpreter running the
    build; BuildError, in one line, on failure.

    uv does it (markers and tags evaluated for this interpreter, as pip would, several times
    faster); pip where uv is not installed. Their caches and configuration apply. Bytecode is
    left to the builder, which writes it reproducibly; scripts written into ``bin/`` are not
    packed (see :func:`settle`).
    """
    check_requirements(requirements)
    try:
        uv = uv_binary()
    except BuildError:
        _install_with_pip(requirements, specs, options, target)
        settle(target)
        return
    command = [
        uv, "pip", "install", "--target", str(target), "--python", sys.executable,
        "--no-progress", "--quiet", *options.args(),
    ]  # fmt: skip
    run_uv(command, requirements, specs, target, "")


def _shown(requirements: Sequence[Path], specs: Sequence[str]) -> str:
    """What was to be installed, as an error names it (a built wheel by its file name)."""
    shown = [str(file) for file in requirements]
    shown += [os.path.basename(s) if s.split("[")[0].endswith(".whl") else s for s in specs]
    return ", ".join(shown)


@functools.cache
def uv_binary() -> str:
    """uv's executable, as its Python package finds it; BuildError if it is not installed.

    Looked up once: the lookup reads ``sysconfig``, whose first use is not thread-safe (the
    targets are installed from several threads).
    """
    try:
        from uv import find_uv_bin
    except ImportError:
        raise BuildError(
            "resolving for other Pythons needs uv, which packer depends on: pip install uv"
        ) from None
    return str(find_uv_bin())


def check_requirements(requirements: Sequence[Path]) -> None:
    """BuildError, in one line, for a requirements file that is not there."""
    for file in requirements:
        if not file.is_file():
            raise BuildError(f"{file}: no such requirements file")


def _requested(requirements: Sequence[Path], specs: Sequence[str]) -> list[str]:
    """The installer arguments that ask for *requirements* files and *specs* (pip's and uv's
    are the same)."""
    return [arg for file in requirements for arg in ("--requirement", str(file))] + list(specs)


def run_uv(
    command: list[str],
    requirements: Sequence[Path],
    specs: Sequence[str],
    target: Path,
    what_for: str,
) -> None:
    """Run a ``uv pip install`` *command* into *target*; BuildError naming what failed."""
    command = command + _requested(requirements, specs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_PYTHON")}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise BuildError(f"cannot run uv: {exc.strerror}") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        kept = [line for line in lines if not line.startswith(("hint:", "help:"))]
        reason = " / ".join(kept[:4]) or "no reason given"
        raise BuildError(f"uv could not install {_shown(requirements, specs)}{what_for}: {reason}")
    settle(target)


def settle(target: Path) -> None:
    """Take out of an install in *target* what depends on where the build runs: installers'
    traces (:func:`forget_origin`, uv's lock file) and the scripts they wrote into ``bin/``,
    whose first line names the building interpreter (they cannot run from an archive
    anyway), with their lines in RECORD."""
    scripts = target / "bin"
    drop = scripts.is_dir() and not (scripts / "__init__.py").exists()
    for info in sorted(target.glob("*.dist-info")):
        forget_origin(info)
        record = info / "RECORD"
        if drop and record.exists():
            lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
            # uv records them as bin/NAME; pip, which installs elsewhere and moves, ../../bin/
            kept = [line for line in lines if not re.match(r"(\.\./)*bin/", line)]
            if kept != lines:
                record.write_text("".join(kept), encoding="utf-8")
    if drop:
        shutil.rmtree(scripts)
    lock = target / ".lock"  # uv's, held while it installs
    if lock.is_file() and lock.stat().st_size == 0:
        lock.unlink()


#: What installers write into a .dist-info about where and when it was installed from: the
#: temporary wheel's path (PEP 610), uv's cache stamp. It would make every build differ.
INSTALL_TRACES = ("direct_url.json", "uv_cache.json")


def forget_origin(info: Path, dist: Distribution | None = None) -> None:
    """Drop :data:`INSTALL_TRACES` from the ``.dist-info`` folder *info*, and from its RECORD."""
    traces = [name for name in INSTALL_TRACES if (info / name).exists()]
    if not traces:
        return
    for name in traces:
        (info / name).unlink()
    record = info / "RECORD"
    if record.exists():
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        dropped = tuple(f"{info.name}/{name}," for name in traces)
        kept = [line for line in lines if not line.startswith(dropped)]
        record.write_text("".join(kept), encoding="utf-8")
    if dist is not None:
        for name in traces:
            rel = f"{info.name}/{name}"
            if rel in dist.files:
                dist.files.remove(rel)


def _install_with_pip(
    requirements: Sequence[Path], specs: Sequence[str], options: PipOptions, target: Path
) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--target", str(target), "--no-compile",
        "--disable-pip-version-check", "--no-warn-script-location", "--no-input",
        *options.args(), *_requested(requirements, specs),
    ]  # fmt: skip
    env = dict(os.environ)
    env.pop("PIP_TARGET", None)
    env.pop("PIP_PREFIX", None)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise BuildError(f"cannot run pip: {exc.strerror}") from None
    if proc.returncode != 0:
        what = ", ".join([*map(str, requirements), *specs])
        raise BuildError(f"pip could not install {what}: {pip_reason(proc.stderr)}")


def pip_reason(stderr: str) -> str:
    """pip's reason, in one line: its ERROR lines, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    chosen = errors or lines[-1:] or ["no reason given"]
    return " / ".join(chosen)


def scan(root: Path) -> Staged:
    """Describe the distributions in a staging folder, as ``importlib.metadata`` reads their
    ``.dist-info`` folders (METADATA, RECORD, entry points), plus their wheel tags."""
    distributions: list[Distribution] = []
    claimed: set[str] = set()
    for info in sorted(root.glob("*.dist-info")):
        found = PathDistribution(info)
        name = found.metadata["Name"] or info.name.split("-")[0]
        dist = Distribution(name, found.version or "?", info.name)
        for path in found.files or ():
            rel = os.path.normpath(str(path)).replace(os.sep, "/")
            if rel.startswith("../") or rel.endswith((".pyc", ".pyo")) or "__pycache__/" in rel:
                continue  # scripts in bin/ via ../, and bytecode we write ourselves
            if (root / rel).is_file():
                dist.files.append(rel)
        dist.files.sort()
        claimed.update(dist.files)
        wheel = email.parser.Parser().parsestr(found.read_text("WHEEL") or "")
        dist.tags = tuple(tag.strip() for tag in wheel.get_all("Tag") or ())
        dist.console_scripts = {
            ep.name: ep.value for ep in found.entry_points.select(group="console_scripts")
        }
        distributions.append(dist)
    loose = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file()
        and path.relative_to(root).parts[0] != "bin"
        and "__pycache__" not in path.parts
        and path.suffix not in (".pyc", ".pyo")
        and path.relative_to(root).as_posix() not in claimed
    )
    return Staged(root, distributions, loose)
