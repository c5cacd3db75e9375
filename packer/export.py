"""``packer export app.pyz --to lib.zip``: the archive's Python code as a plain library zip.

Cluster engines that put a zip on their workers' ``sys.path`` (``spark-submit --py-files``,
Dask's ``Client.upload_file``) import from it with zipimport alone and treat every top-level
module in it as code to load: the archive's stub, its ``__main__.py`` and packer's runtime
would run there, and an entry point would start. The export holds only what such an engine
should import: the project's own modules and data, and every bundled pure distribution with
its ``.dist-info``, all at the zip's top. Native code cannot load from a zip, so an archive
that bundles any is refused, in one line naming each, unless the user leaves them out.

Members are copied as they are stored (no recompression), in name order, with the archive's
times: the same archive gives the same zip.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._runtime.environment import normalize_name
from ._runtime.format import (
    APP_MAIN_MODULE,
    NATIVE_FOLDER,
    RESERVED_PREFIXES,
    SITE_PACKAGES,
    STUB_NAME,
    VARIANTS_FOLDER,
    Entry,
    Limits,
    Target,
    open_archive,
)
from ._runtime.inspection import refuse_damaged
from .convert import member_epoch
from .errors import BuildError
from .output import atomic_output, new_file_mode
from .plan import folder_entries
from .zipwriter import Member, ZipWriter, directory

__all__ = ["Exported", "export"]


@dataclass(frozen=True)
class Exported:
    path: Path
    members: int
    left_out: tuple[str, ...]
    #: Pure distributions the archive runs extracted (they read their files by path), which
    #: may fail from a zip: (name, why).
    by_path: tuple[tuple[str, str], ...]
    #: ``.pth`` files the archive honours, which nothing reads from a zip on sys.path.
    pth: tuple[str, ...] = ()


def export(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    leave_out: Sequence[str] = (),
    limits: Limits | None = None,
    target: str | None = None,
) -> Exported:
    """Write the library zip of packer archive *source* at *output*; of a multi-target
    archive, for one of its *target* names (``3.12`` when one target has that Python)."""
    src = Path(source)
    out = Path(os.path.abspath(output))
    if not out.parent.is_dir():
        raise BuildError(f"{out}: the output folder {out.parent} does not exist")
    if out.is_dir():
        raise BuildError(f"{out}: is a folder; give the output's file name")
    if out.exists() and src.exists() and os.path.samefile(src, out):
        raise BuildError(f"{out}: the output would overwrite the input")
    with open_archive(str(src), limits) as archive:
        refuse_damaged(archive)
        manifest = archive.manifest() if archive.layout.strict else None
        if manifest is None:
            raise BuildError(f"{src.name}: not a packer archive; only those can be exported")
        runtime = manifest.runtime
        chosen_target = _chosen_target(src.name, runtime.targets, target)
        variants = [v for v in runtime.variants if chosen_target in v.targets]
        natives = [d for d in runtime.native if not d.targets or chosen_target in d.targets]
        pure_extracted = {(n, v): why for n, v, _, why in manifest.distributions if why}
        given = {normalize_name(name): name for name in leave_out}
        known = {normalize_name(d.name) for d in natives}
        unknown = sorted(set(given) - known)
        if unknown:
            raise BuildError(
                f"--leave-out {given[unknown[0]]}: {src.name} bundles no native or extracted "
                "distribution of that name"
            )
        native = [d for d in natives if (d.name, d.version) not in pure_extracted]
        refused = [d for d in native if normalize_name(d.name) not in given]
        if refused:
            listed = ", ".join(f"{d.name} {d.version}" for d in refused)
            flags = " ".join(f"--leave-out {d.name}" for d in refused)
            raise BuildError(
                f"{src.name}: native code cannot be imported from a zip: {listed} "
                f"(leave {'it' if len(refused) == 1 else 'them'} out with {flags})"
            )
        # Pure ones the archive extracts go in the zip too, and the chosen target's variants.
        kept_prefixes = [d.prefix for d in natives if normalize_name(d.name) not in given]
        kept_prefixes += [v.folder + "/" for v in variants]
        chosen: list[tuple[str, Entry]] = []
        for entry in archive.entries:
            if entry.is_dir or entry.is_link:
                continue
            name = _exported_name(entry.name, kept_prefixes)
            if name is not None and "/__pycache__/" not in "/" + name:
                chosen.append((name, entry))
        chosen.sort(key=lambda item: item[0])
        names = [name for name, _ in chosen]
        if len(set(names)) != len(names):
            raise BuildError(f"{src.name}: two members would have the same name in the zip")
        with atomic_output(out, new_file_mode(executable=False)) as fp:
            writer = ZipWriter(fp, b"", member_epoch(manifest.created))
            for name, entry in chosen:
                member = Member(name, b"", entry.method, entry.crc, entry.size, "",
                                entry.mode or 0o100644, stream_size=entry.compressed)  # fmt: skip
                writer.add_stream(member, archive.raw_chunks(entry))
            for folder in folder_entries(names):
                writer.add(directory(folder))
            writer.finish(seal=False)
    by_path = tuple(
        (f"{n} {v}", why) for (n, v), why in sorted(pure_extracted.items())
        if normalize_name(n) not in given
    )  # fmt: skip
    left = sorted({d.name for d in natives if normalize_name(d.name) in given})
    pth = tuple(runtime.pth)
    return Exported(out, len(chosen), tuple(left), by_path, pth)


def _chosen_target(name: str, targets: Sequence[Target], wanted: str | None) -> int | None:
    """The index of the target to export: None for a single-target archive."""
    if not targets:
        if wanted is not None:
            raise BuildError(f"--target {wanted}: {name} is not a multi-target archive")
        return None
    names = ", ".join(t.name for t in targets)
    if wanted is None:
        raise BuildError(
            f"{name}: a multi-target archive bundles something else for each target: give "
            f"--target (one of {names})"
        )
    exact = [i for i, t in enumerate(targets) if t.name == wanted]
    by_python = [i for i, t in enumerate(targets) if f"{t.python[0]}.{t.python[1]}" == wanted]
    found = exact or (by_python if len(by_python) == 1 else [])
    if not found:
        raise BuildError(f"--target {wanted}: {name} has no such target (it has {names})")
    return found[0]


def _exported_name(name: str, kept_prefixes: Sequence[str]) -> str | None:
    """Where member *name* goes in the library zip; None when it stays out."""
    if name.startswith(SITE_PACKAGES + "/"):
        return name[len(SITE_PACKAGES) + 1 :]
    for prefix in kept_prefixes:
        if name.startswith(prefix):
            return name[len(prefix) :]
    if name.startswith((NATIVE_FOLDER + "/", VARIANTS_FOLDER + "/")):
        return None  # left out, or another target's
    if name in (STUB_NAME, STUB_NAME + "c", APP_MAIN_MODULE + ".py", APP_MAIN_MODULE + ".pyc"):
        return None
    if name.startswith(RESERVED_PREFIXES):
        return None
    return name
