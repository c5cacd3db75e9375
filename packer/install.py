"""What goes into the staging folder before a build: the project's wheel, the dependencies
for each target (or for the building interpreter), or exactly a lock's pins; and ``packer
lock``, which writes such a lock."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as config_module
from ._runtime.gate import python_supported
from .config import Settings
from .dependencies import PipOptions, Staged, scan, uv_binary
from .errors import BuildError, ConfigError, SourceError
from .lock import LockInfo, read_lock, write_lock
from .plan import is_output
from .project import (
    Project,
    build_wheel,
    find_project,
    no_project,
    project_entry,
    requirement,
    settle,
)
from .pyversion import parse_requires_python
from .selection import FileFilter
from .targets import Target, install_for, merge, parse_target

__all__ = ["Installer", "Request", "lock", "request_for", "stage"]

#: Installs (requirements files, specs, pip options) into a staging folder.
Installer = Callable[[Sequence[Path], Sequence[str], PipOptions, Path], None]


@dataclass(frozen=True)
class Request:
    """What a build asks to install, checked before any work is done."""

    project: Project | None
    targets: tuple[Target, ...]
    lock: LockInfo | None
    pip: PipOptions


def request_for(src: Path | None, options: Settings) -> Request:
    """What *options* ask to install for *src*, checked (targets, lock, project)."""
    project = project_for(src, options)
    targets = resolve_targets(options)
    lock_info = read_lock(options.lock) if options.lock is not None else None
    if lock_info is not None and (options.with_packages or options.requirements or options.extras):
        raise ConfigError(
            f"{options.lock}: --lock installs the lock's pins and nothing else: give --with, "
            "-r and --extra to packer lock instead"
        )
    pip = PipOptions(
        find_links=options.find_links,
        index_url=options.index_url,
        extra_index_urls=options.extra_index_urls,
        no_index=options.no_index,
    )
    return Request(project, tuple(targets), lock_info, pip)


def stage(
    request: Request,
    options: Settings,
    out: Path,
    installer: Installer,
    stack: contextlib.ExitStack,
) -> tuple[Staged | None, Settings]:
    """Build the project's wheel and install what *request* asks into temporary folders
    (which *stack* removes); returns what was installed, and *options* with the project's
    console script as the entry point when none was given."""
    specs = list(options.with_packages)
    wheel = None
    if request.project is not None:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="packer-wheel-")))
        patterns = FileFilter(options.include, options.exclude, options.gitignore)
        real = out.resolve()
        skip = lambda name, path: is_output(name, path, real)  # noqa: E731
        wheel = build_wheel(request.project, work, request.pip, patterns, skip)
        specs.insert(0, requirement(wheel, options.extras))
    own = None
    staged = None
    steps = install_steps(options, specs, request.pip, request.lock)
    if request.targets:
        staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="packer-deps-")))
        roots = [staging / str(index) for index in range(len(request.targets))]

        def install_one(index: int) -> None:
            roots[index].mkdir()
            for files, wanted, how in steps:
                install_for(request.targets[index], files, wanted, how, roots[index])

        # One uv at a time leaves most of the wait to the network and the disk: the targets
        # are installed side by side, and the first failure (in target order) is reported.
        uv_binary()  # found before the threads start: the lookup is not thread-safe
        with ThreadPoolExecutor(max_workers=min(4, len(roots))) as pool:
            list(pool.map(install_one, range(len(roots))))
        each = []
        for root in roots:
            each.append(scan(root))
            if wheel is not None:
                own = settle(each[-1], wheel, options.extras)
        staged = merge(request.targets, each)
    elif steps:
        staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="packer-deps-")))
        for files, wanted, how in steps:
            installer(files, wanted, how, staging)
        staged = scan(staging)
        if wheel is not None:
            own = settle(staged, wheel, options.extras)
    if (
        own is not None
        and options.entry is None
        and options.console_script is None
        and not (options.interpreter)
    ):
        options = dataclasses.replace(options, console_script=project_entry(own))
    return staged, options


def lock(
    source: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | None = None,
    **keywords: Any,
) -> LockInfo:
    """Write a lock for *source* (its project's dependencies, with ``extras``) and any
    ``with_packages`` and ``requirements``, for every target at once; say what it pins.

    The keywords are the build options that decide what is resolved (``targets``, index
    options...); the others are refused, as :func:`build` refuses unknown ones.
    """
    src = Path(source) if source is not None else None
    unknown = sorted(set(keywords) - config_module.LOCK_OPTIONS)
    if unknown:
        raise TypeError(f"lock() got an unexpected keyword argument {unknown[0]!r}")
    given = config_module.given(keywords, where="lock()")
    options = config_module.settings_for(src, given, Path(config) if config is not None else None)
    project = project_for(src, options)
    if src is not None and project is None:
        raise SourceError(f"{src}: nothing to lock: not a project (and --with/-r lock alone)")
    pip = PipOptions(
        find_links=options.find_links,
        index_url=options.index_url,
        extra_index_urls=options.extra_index_urls,
        no_index=options.no_index,
    )
    out = Path(os.path.abspath(output))
    if not out.parent.is_dir():
        raise BuildError(f"{out}: the output folder {out.parent} does not exist")
    return write_lock(
        out, project, options.extras, options.requirements, options.with_packages,
        resolve_targets(options), pip,
    )  # fmt: skip


def install_steps(
    options: Settings, specs: list[str], pip: PipOptions, lock: LockInfo | None
) -> list[tuple[tuple[Path, ...], tuple[str, ...], PipOptions]]:
    """The installs to run into the staging folder: what was asked for, resolved; or, from a
    lock, its pins (hashes checked, no more) and then the project's own wheel alone."""
    if lock is None:
        if options.requirements or specs:
            return [(options.requirements, tuple(specs), pip)]
        return []
    exact = dataclasses.replace(pip, require_hashes=True, no_deps=True)
    steps: list[tuple[tuple[Path, ...], tuple[str, ...], PipOptions]] = []
    if lock.pins:
        steps.append(((lock.path,), (), exact))
    if specs:  # the project's wheel (no hash to check: it was built just now)
        steps.append(((), tuple(specs), dataclasses.replace(pip, no_deps=True)))
    return steps


def resolve_targets(options: Settings) -> list[Target]:
    """The targets asked for, each once; each checked against requires-python."""
    targets: list[Target] = []
    for spec in options.targets:
        target = parse_target(spec)
        if target in targets:
            raise ConfigError(f"--target {spec!r}: given twice")
        targets.append(target)
    if targets and options.requires_python:
        clauses = parse_requires_python(options.requires_python)
        for target in targets:
            if not python_supported([c.as_literal() for c in clauses], (*target.python, 99)):
                raise ConfigError(
                    f"--target {target.version}: outside requires-python "
                    f"{options.requires_python!r}"
                )
    return targets


def project_for(src: Path | None, options: Settings) -> Project | None:
    """The project SOURCE is, if it is to be built as one (``--project``, or found)."""
    if src is None or options.project is False:
        if options.extras:
            raise ConfigError("--extra names an optional-dependency group of a project source")
        return None
    if not src.is_dir():
        return None  # said by the file selection, as for any folder
    project = find_project(src)
    if project is None and options.project:
        raise no_project(src)
    if project is None and options.extras:
        raise ConfigError(f"{src}: --extra needs a project source, and this folder is not one")
    return project
