"""Install dependencies with pip into a staging folder and describe what landed there."""

from __future__ import annotations

import email.parser
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PathDistribution
from pathlib import Path
from typing import Any

from .errors import BuildError

__all__ = ["Distribution", "PipOptions", "Staged", "install", "pip_reason", "scan"]

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

    @property
    def native(self) -> bool:
        """Whether it carries native code (which cannot be imported from a zip)."""
        return any(_NATIVE.search(name) or ".libs/" in name for name in self.files)


@dataclass
class Staged:
    """What pip installed: distributions, plus files no RECORD claims (kept, as pip left them)."""

    root: Path
    distributions: list[Distribution]
    loose: list[str]
    #: The targets of a multi-target build (packer.targets.Target); empty: the building
    #: interpreter alone.
    targets: tuple[Any, ...] = ()

    def console_script(self, name: str) -> str | None:
        for dist in self.distributions:
            if name in dist.console_scripts:
                return dist.console_scripts[name]
        return None


def install(
    requirements: Sequence[Path], specs: Sequence[str], options: PipOptions, target: Path
) -> None:
    """Run pip to install *requirements* files and *specs* into *target*; BuildError on failure.

    pip's own cache and configuration apply. Bytecode is left to the builder, which writes it
    reproducibly; scripts pip writes into ``bin/`` are not packed.
    """
    for file in requirements:
        if not file.is_file():
            raise BuildError(f"{file}: no such requirements file")
    command = [
        sys.executable, "-m", "pip", "install", "--target", str(target), "--no-compile",
        "--disable-pip-version-check", "--no-warn-script-location", "--no-input",
        *options.args(),
    ]  # fmt: skip
    for file in requirements:
        command += ["--requirement", str(file)]
    command += list(specs)
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
