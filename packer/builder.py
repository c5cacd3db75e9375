"""Build an archive: select files, compile bytecode, write the stub, manifest and digest."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config as config_module
from ._runtime.format import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    RUNTIME_CONFIG_NAME,
    STUB_NAME,
    Manifest,
    NativeDist,
    RuntimeConfig,
    native_key,
    runtime_config_text,
    sources_key,
)
from ._runtime.render import human_size
from ._version import __version__
from .config import Settings
from .dependencies import Staged, install
from .errors import ConfigError
from .install import Installer, request_for, stage
from .lock import read_lock
from .members import MemberJob, produce, produce_members
from .output import atomic_output, new_file_mode
from .plan import (
    Plan,
    bytecode_tag,
    check_entry_count,
    check_output,
    folder_entries,
    is_output,
    make_plan,
    member_jobs,
    planned_names,
)
from .stub import render_stub
from .targets import Target, foreign_bytecode
from .zipwriter import (
    FILE_MODE,
    Member,
    Packs,
    ZipWriter,
    directory,
    prepare,
    shebang_line,
)

if TYPE_CHECKING:
    from .signing import Signer

__all__ = ["BuildResult", "build"]

Progress = Callable[[int, int], None]
#: Installs (requirements files, specs, pip options) into a staging folder.


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build` wrote."""

    output: Path
    members: int
    #: Bytes of the archive file.
    size: int
    #: Bytes of the members before compression.
    stored_size: int
    seconds: float
    build_id: str
    digest: str
    entry: str
    names: tuple[str, ...]
    warnings: tuple[str, ...]
    #: Bundled distributions: (name, version, has native code).
    distributions: tuple[tuple[str, str, bool], ...] = ()
    #: The pure distributions extracted to the cache at run time: (name, version, why).
    extracted: tuple[tuple[str, str, str], ...] = ()

    @property
    def ratio(self) -> float:
        """Archive size as a fraction of the uncompressed members."""
        return self.size / self.stored_size if self.stored_size else 1.0

    def summary(self) -> str:
        """The one-line summary the CLI prints."""
        return (
            f"{self.output.name}: {self.members} members, {human_size(self.size)} "
            f"({self.ratio:.0%} of {human_size(self.stored_size)}), {self.seconds:.2f} s, "
            f"build {self.build_id}"
        )


def build(
    source: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    installer: Installer = install,
    **keywords: Any,
) -> BuildResult:
    """Pack the folder *source* (and bundled dependencies) into *output*; say what was written.

    The keywords are the build options of :class:`packer.config.Settings` (the same as the
    command line's, with underscores: ``entry``, ``with_packages``, ``compress``, ...; the
    README's table lists them). Every option not given (or None) comes from *config* when
    given, else from ``[tool.packer]`` in *source*'s ``pyproject.toml``, else from its default.
    *output* defaults to ``<source>.pyz`` beside *source* (``<console_script>.pyz`` here
    without one). Nothing is written unless the whole build succeeds; an existing *output*
    is replaced only then. *progress* is called with (members done, members in all);
    *installer* installs the dependencies into a staging folder (pip, by default).
    """
    started = time.perf_counter()
    src = Path(source) if source is not None else None
    if output is not None:
        keywords["output"] = output
    given = config_module.given(keywords)
    options = config_module.settings_for(src, given, Path(config) if config is not None else None)
    out = check_output(src, options)
    sign = _signer(options)
    epoch = _source_date_epoch()  # checked before any work is done
    request = request_for(src, options)
    with contextlib.ExitStack() as stack:
        staged, options = stage(request, options, out, installer, stack)
        plan = make_plan(None if request.project else src, out, options, staged)
        written = _write(plan, out, options, epoch, progress, sign)
    return BuildResult(
        output=out,
        members=len(written.names),
        size=out.stat().st_size,
        stored_size=written.stored,
        seconds=time.perf_counter() - started,
        build_id=written.build_id,
        digest=written.digest,
        entry=plan.entry_text,
        names=written.names,
        warnings=plan.warnings + written.warnings,
        distributions=tuple((n, v, native) for n, v, native, _ in _distinct(staged)),
        extracted=tuple((n, v, why) for n, v, _, why in _distinct(staged) if why),
    )


def _output_skipper(out: Path) -> Callable[[str, Path], bool]:
    real = out.resolve()
    return lambda name, path: is_output(name, path, real)


def _with_native_keys(
    config: RuntimeConfig, members: dict[str, tuple[str, int]], signed_by: str | None
) -> RuntimeConfig:
    """A copy of *config* with each native distribution's key derived from its written
    members, the key of its sources, and the public key the stub is to require (if any)."""
    natives = [
        NativeDist(
            d.name, d.version, native_key(d.prefix, members), d.prefix, d.tags, d.optional,
            d.top, d.targets,
        )
        for d in config.native
    ]  # fmt: skip
    return RuntimeConfig(
        config.site, config.dists, config.pth, natives, config.verify, signed_by,
        config.targets, config.variants, config.inherit_path, config.export_path,
        sources_key(members),
    )  # fmt: skip


@dataclass(frozen=True)
class _Written:
    names: tuple[str, ...]
    stored: int
    digest: str
    build_id: str
    warnings: tuple[str, ...]


def _write(
    plan: Plan,
    out: Path,
    options: Settings,
    epoch: int,
    progress: Progress | None,
    sign: Signer | None,
) -> _Written:
    level = options.compression_level if options.compress else None
    interpreter = options.python
    with_shebang = options.shebang
    prefix = shebang_line(interpreter) if with_shebang else b""
    jobs = member_jobs(plan, options)
    do_compile = options.compile
    warnings: list[str] = []
    work = tempfile.TemporaryDirectory(prefix="packer-bytecode-")
    targets = plan.staged.targets if plan.staged is not None else ()
    if targets and do_compile:
        jobs, more = _bytecode_for_targets(jobs, targets, Path(work.name), options.jobs)
        warnings += more
    planned = planned_names(jobs)
    packs = Packs((d.prefix for d in plan.runtime.native), epoch)
    # Before the work, from the names: the same count as the written archive's, checked again.
    check_entry_count(packs.records(planned) + len(folder_entries(planned)), plan.clauses, out)
    with work, contextlib.closing(packs), atomic_output(out, new_file_mode(with_shebang)) as fp:
        writer = ZipWriter(fp, prefix, epoch)
        entries: dict[str, tuple[str, int]] = {}
        stored = 0

        def add(member: Member) -> None:
            nonlocal stored
            if not packs.take(member):
                writer.add(member)
            entries[member.name] = (member.sha256, member.size)
            stored += member.size

        for done, (job, members) in enumerate(
            produce_members(jobs, level, workers=options.jobs), start=1
        ):
            if job.compile and len(members) == 1:
                warnings.append(f"{job.name}: not compiled (syntax error); shipped as source")
            for member in members:
                add(member)
            if progress is not None:
                progress(done, len(jobs))
        packs.finish(writer)
        # The stub goes last but for the manifest: it carries the native cache keys, which
        # derive from the hashes of the members just written, and, when the archive checks
        # itself and is signed, the key whose signature it requires.
        required = sign.public if sign is not None and plan.runtime.verify else None
        runtime = _with_native_keys(plan.runtime, entries, required)
        for member in produce(_runtime_config_job(runtime), level):
            add(member)
        stub = render_stub(
            plan.entry.kind, plan.entry.value, plan.requires_python, plan.clauses, runtime
        ).encode("utf-8")
        # An archive that checks itself at start runs its stub from source, stored: a flipped
        # bit then cannot reach marshal or zlib before the check.
        checked = runtime.verify
        stub_job = MemberJob(
            STUB_NAME, None, stub, FILE_MODE, do_compile and not checked, len(stub)
        )
        for member in produce(stub_job, None if checked else level):
            add(member)
        for folder in folder_entries([*entries, MANIFEST_NAME]):
            writer.add(directory(folder))
        check_entry_count(writer.count + 1, plan.clauses, out)
        manifest = _manifest(plan, options, interpreter if with_shebang else None, epoch,
                             entries, runtime)  # fmt: skip
        manifest_member = prepare(MANIFEST_NAME, manifest.to_bytes(), FILE_MODE, level)
        writer.add(manifest_member)
        stored += manifest_member.size
        digest = writer.finish(sign)
    names = sorted([*entries, MANIFEST_NAME])
    return _Written(tuple(names), stored, digest, manifest.build_id, tuple(warnings))


def _runtime_config_job(runtime: RuntimeConfig) -> MemberJob:
    text = runtime_config_text(runtime).encode("utf-8")
    return MemberJob(RUNTIME_CONFIG_NAME, None, text, FILE_MODE, False, len(text))


def _bytecode_for_targets(
    jobs: list[MemberJob], targets: tuple[Target, ...], work: Path, workers: int | None
) -> tuple[list[MemberJob], list[str]]:
    """Bytecode for every target's Python: the building interpreter's beside each module
    (for the modules a target of its version imports), the others' in ``__pycache__``."""
    here = sys.version_info[:2]
    sources = [(job.name, job.path, job.targets) for job in jobs if job.compile and job.path]
    kept = []
    for job in jobs:
        serves = [targets[i] for i in job.targets] if job.targets else list(targets)
        if job.compile and not any(t.python == here for t in serves):
            job = dataclasses.replace(job, compile=False)
        kept.append(job)
    extra, warnings = foreign_bytecode(sources, targets, work, workers or os.cpu_count() or 1)
    for name, path in extra:
        kept.append(MemberJob(name, path, None, FILE_MODE, False, path.stat().st_size))
    kept.sort(key=lambda job: job.name)
    return kept, warnings


def _distinct(staged: Staged | None) -> list[tuple[str, str, bool, str | None]]:
    """The bundled distributions, each once (a multi-target build has one copy a target of
    those that differ between targets)."""
    found = [
        (d.name, d.version, d.native, None if d.native else d.extract)
        for d in (staged.distributions if staged else [])
    ]
    return list(dict.fromkeys(found))


def _signer(options: Settings) -> Signer | None:
    """Signs a digest with the build's key, loaded (and so checked) before anything is built."""
    if options.sign_key is None:
        return None
    from .signing import load_signer

    return load_signer(options.sign_key)


def _manifest(
    plan: Plan,
    options: Settings,
    interpreter: str | None,
    epoch: int,
    members: dict[str, tuple[str, int]],
    runtime: RuntimeConfig,
) -> Manifest:
    given_epoch = os.environ.get("SOURCE_DATE_EPOCH")
    lock = read_lock(options.lock) if options.lock is not None else None
    return Manifest(
        format=FORMAT_VERSION,
        packer_version=__version__,
        entry=(plan.entry.kind, plan.entry_text),
        interpreter=interpreter,
        requires_python=plan.requires_python,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if given_epoch else None,
        bytecode=bytecode_tag() if options.compile else None,
        distributions=_distinct(plan.staged),
        runtime=runtime,
        members=dict(sorted(members.items())),
        lock=(lock.sha256, lock.pins) if lock is not None else None,
    )


#: SOURCE_DATE_EPOCH from 1970 to the end of 9999 (zip timestamps are clamped to 1980-2107).
_MAX_EPOCH = 253402300799


def _source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip can record
    try:
        epoch = int(value)
    except ValueError:
        epoch = -1
    if not 0 <= epoch <= _MAX_EPOCH:
        raise ConfigError(
            f"SOURCE_DATE_EPOCH must be whole seconds from 1970 to 9999, not {value!r}"
        )
    return epoch
