"""Inspecting an archive without running it: info, list and verify. Shared by ``packer`` and
by every archive (``PACKER_TOOLS=1 ./app.pyz info``), so they never diverge.

Everything here reads the file through :mod:`.format`, whose parse refuses any archive that
two readers could read differently; nothing imports from the archive or runs it. Hostile
input (not a zip, truncated, bit flips, zip bombs) ends in an :class:`ArchiveError` with one
line, never a traceback.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import hashlib
import json
import os

from .errors import ArchiveError
from .format import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    RUNTIME_CONFIG_NAME,
    Archive,
    Entry,
    Limits,
    Manifest,
    NotCanonicalError,
    open_archive,
    read_runtime_config,
)

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["FORMAT1_NOTE", "Limits", "info", "list_members", "refuse_damaged", "verify"]

FORMAT1_NOTE = "format 1: its digest does not cover the whole file; rebuild to get format 2"


def _kind(archive: Archive) -> str:
    names = archive.layout.by_name
    if archive.layout.strict:
        return "packer"
    if "environment.json" in names and any(n.startswith("_bootstrap/") for n in names):
        return "shiv"
    if "PEX-INFO" in names:
        return "pex"
    if "__main__.py" in names:
        return "zipapp"
    return "zip"


def _read_json(archive: Archive, member: str) -> Optional[Dict[str, Any]]:
    """A foreign archive's JSON metadata (shiv, pex); None when absent or not an object."""
    entry = archive.layout.by_name.get(member)
    if entry is None or entry.size > 16 << 20:
        return None
    try:
        value = json.loads(archive.read(entry).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ArchiveError("%s: %s is not valid JSON" % (archive.name, member)) from None
    return value if isinstance(value, dict) else None


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def info(path: str, limits: Optional[Limits] = None) -> Dict[str, Any]:
    """What an archive is and holds, as a JSON-ready dict; never runs or imports it."""
    with open_archive(path, limits) as archive:
        layout = archive.layout
        kind = _kind(archive)
        files = [e for e in archive.entries if not e.is_dir]
        seal = layout.seal
        result: Dict[str, Any] = {
            "path": path,
            "kind": kind,
            "format": seal.format if seal else None,
            "interpreter": layout.interpreter,
            "members": len(files),
            # Records zipimport reads at every start: a pack is one, whatever it holds.
            "zip_records": layout.records,
            "packs": [p.name for p in layout.packs],
            "stored_size": sum(e.size for e in files),
            "packed_size": layout.size,
            "entry_point": None,
            "requires_python": None,
            "packer_version": None,
            "build_id": None,
            "created": None,
            "distributions": [],
            "native": [],
            "digest": {"status": "absent", "recorded": None, "actual": None},
            "signature": "absent",
            "notes": [],
        }
        if seal is not None:
            actual = archive.digest()
            status = "ok" if actual == seal.digest else "mismatch"
            if status == "mismatch":
                raise ArchiveError(
                    "%s: damaged: the digest does not match (verify lists what is wrong)"
                    % archive.name
                )
            result["digest"] = {"status": status, "recorded": seal.digest, "actual": actual}
            if seal.signature:
                result["signature"] = "present (check it with packer verify --key)"
            if seal.format == 1:
                result["notes"].append(FORMAT1_NOTE)
        if kind == "packer":
            manifest = archive.manifest()
            if manifest is None:
                raise ArchiveError("%s: no %s" % (archive.name, MANIFEST_NAME))
            pure_extracted = {(n, v) for n, v, _, why in manifest.distributions if why}
            result.update(
                entry_point=(
                    manifest.entry[1]
                    if manifest.entry[0] != "interpreter"
                    else "none: a Python in the archive's environment (--interpreter)"
                ),
                requires_python=manifest.requires_python,
                packer_version=manifest.packer_version,
                build_id=manifest.build_id,
                created=manifest.created,
                bytecode=manifest.bytecode,
                distributions=[
                    {"name": n, "version": v, "native": native, "extracted": why}
                    for n, v, native, why in manifest.distributions
                ],
                native=[
                    _native_line(n, manifest.runtime.targets)
                    for n in manifest.runtime.native
                    if (n.name, n.version) not in pure_extracted
                ],
                extracted=[
                    "%s %s (%s)" % (n, v, why) for n, v, _, why in manifest.distributions if why
                ],
                targets=[t.name for t in manifest.runtime.targets],
                lock=(
                    {"sha256": manifest.lock[0], "pins": manifest.lock[1]}
                    if manifest.lock is not None
                    else None
                ),
            )
        elif kind == "shiv":
            env = _read_json(archive, "environment.json") or {}
            result.update(
                entry_point=_text(env.get("entry_point")) or _text(env.get("script")),
                build_id=_text(env.get("build_id")),
                created=_text(env.get("built_at")),
                shiv=env,
            )
            result["distributions"] = _dist_infos(list(layout.by_name), "site-packages/")
        elif kind == "pex":
            pex = _read_json(archive, "PEX-INFO") or {}
            constraints = pex.get("interpreter_constraints")
            dists = pex.get("distributions")
            result.update(
                entry_point=_text(pex.get("entry_point")),
                requires_python=", ".join(str(c) for c in constraints)
                if isinstance(constraints, list) and constraints
                else None,
                build_id=_text(pex.get("code_hash")) or _text(pex.get("pex_hash")),
                pex={k: pex.get(k) for k in ("pex_hash", "requirements", "build_properties")},
            )
            result["distributions"] = [
                {"name": key, "version": None, "native": None}
                for key in sorted(dists if isinstance(dists, dict) else {})
            ]
        if kind != "packer":
            result["native"] = sorted(
                {e.name.split("/")[0] for e in files if e.name.endswith((".so", ".pyd", ".dylib"))}
            )
        return result


def _dist_infos(names: Sequence[str], marker: str) -> List[Dict[str, Any]]:
    found = []
    for n in names:
        if marker in n and n.endswith(".dist-info/METADATA"):
            folder = n.split("/")[-2][: -len(".dist-info")]
            dist, _, version = folder.partition("-")
            found.append({"name": dist, "version": version or None, "native": None})
    return sorted(found, key=lambda d: d["name"])


def list_members(
    path: str, limits: Optional[Limits] = None, notes: Optional[List[str]] = None
) -> List[Dict[str, Any]]:
    """Every member: name, size, packed size, CRC, mode, kind, in central-directory order.

    Notes for the user (a format-1 archive) are appended to *notes*.
    """
    with open_archive(path, limits) as archive:
        refuse_damaged(archive, notes)
        return [_describe(e) for e in archive.entries]


def refuse_damaged(archive: Archive, notes: Optional[List[str]] = None) -> None:
    """Refuse an archive whose digest does not match it; note a format-1 archive."""
    seal = archive.layout.seal
    if seal is not None and archive.digest() != seal.digest:
        raise ArchiveError(
            "%s: damaged: the digest does not match (verify lists what is wrong)" % archive.name
        )
    if seal is not None and seal.format == 1 and notes is not None:
        notes.append(FORMAT1_NOTE)


def _describe(e: Entry) -> Dict[str, Any]:
    kind = "dir" if e.is_dir else "symlink" if e.is_link else "file"
    return {
        "name": e.name,
        "size": e.size,
        "packed": e.compressed,
        "crc": "%08x" % e.crc,
        "mode": "%o" % (e.mode & 0o7777) if e.mode else None,
        "kind": kind,
        "method": {0: "stored", 8: "deflated"}.get(e.method, str(e.method)),
    }


def verify(path: str, limits: Optional[Limits] = None) -> Tuple[List[str], Dict[str, Any]]:
    """Check an archive; return (every problem found, one line each; facts checked).

    Any zip has its structure and every member's size and CRC checked. A packer archive is
    also checked against its seal's digest, which covers the whole file, and every member
    against the manifest's SHA-256 and size. A foreign archive (shiv, pex, a plain zip) is
    never called verified: it has nothing to verify against. A digest detects corruption;
    it does not tell who made the archive.
    """
    from concurrent.futures import ThreadPoolExecutor

    name = os.path.basename(path) or path
    problems: List[str] = []
    facts: Dict[str, Any] = {
        "kind": None,
        "format": None,
        "members_checked": 0,
        "digest": None,
        "notes": [],
    }
    try:
        archive = open_archive(path, limits)
    except NotCanonicalError as exc:
        facts["kind"] = "packer" if exc.strict else "zip"
        return ["%s: %s" % (name, p) for p in exc.problems], facts
    # Hashing and inflating release the GIL: the digest and the members are checked on all
    # cores at once.
    # One thread more than cores: the digest keeps one busy the whole time, and the members
    # share the rest with it.
    pool = ThreadPoolExecutor(max_workers=min(9, (os.cpu_count() or 1) + 1))
    try:
        with archive:
            _verify(archive, name, problems, facts, pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return list(dict.fromkeys(problems)), facts  # each once, in the order found


def _verify(
    archive: Archive, name: str, problems: List[str], facts: Dict[str, Any], pool: Any
) -> None:
    layout = archive.layout
    seal = layout.seal
    pending = pool.submit(archive.digest) if seal is not None else None
    facts["kind"] = kind = _kind(archive)
    facts["format"] = seal.format if seal else None
    manifest: Optional[Manifest] = None
    if kind == "packer":
        if seal is None:
            problems.append("%s: no packer seal (digest) in the zip comment" % name)
        elif seal.format == 1:
            facts["notes"].append(FORMAT1_NOTE)
        try:
            manifest = archive.manifest()
        except ArchiveError as exc:
            problems.append(str(exc))
        if manifest is not None and seal is not None and manifest.format != seal.format:
            problems.append(
                "%s: the manifest says format %d, the seal format %d"
                % (name, manifest.format, seal.format)
            )
        if manifest is not None and manifest.format > FORMAT_VERSION:  # pragma: no cover
            problems.append(
                "%s: manifest format %d is newer than this packer" % (name, manifest.format)
            )
    if manifest is not None and RUNTIME_CONFIG_NAME in layout.by_name:
        problem = _runtime_config_problem(archive, manifest)
        if problem:
            problems.append(problem)
    recorded = manifest.members if manifest is not None else {}
    files = [e for e in archive.entries if not e.is_dir]
    checks = [pool.submit(_check_member, archive, e, recorded.get(e.name)) for e in files]
    for index, entry in enumerate(files):
        facts["members_checked"] += 1
        problem = checks[index].result()
        if problem:
            problems.append(problem)
        if manifest is not None and entry.name != MANIFEST_NAME and entry.name not in recorded:
            problems.append("%s: member %r is not in the manifest" % (name, entry.name))
    present = set(layout.by_name)
    for member in sorted(set(recorded) - present):
        problems.append("%s: member %r is in the manifest but missing" % (name, member))
    if pending is not None and seal is not None:
        actual = pending.result()
        facts["digest"] = "ok" if actual == seal.digest else "mismatch"
        if actual != seal.digest:
            problems.insert(
                0, "%s: digest mismatch: recorded %s, actual %s" % (name, seal.digest, actual)
            )
    else:
        facts["digest"] = "absent"
        if kind != "packer":
            facts["notes"].append(
                "a %s archive has no digest: its CRCs were checked, it is not verified" % kind
            )


#: A runtime configuration lists distributions and native files: far below this.
_MAX_CONFIG = 64 << 20


def _runtime_config_problem(archive: Archive, manifest: Manifest) -> Optional[str]:
    """What the archive starts with must be what its manifest (and so ``info``) says."""
    entry = archive.layout.by_name[RUNTIME_CONFIG_NAME]
    if entry.size > _MAX_CONFIG:
        return "%s: %s is larger than %d bytes" % (archive.name, RUNTIME_CONFIG_NAME, _MAX_CONFIG)
    try:
        text = archive.read(entry).decode("utf-8")
        config = read_runtime_config(text, archive.name)
    except UnicodeDecodeError:
        return "%s: %s is not UTF-8" % (archive.name, RUNTIME_CONFIG_NAME)
    except ArchiveError as exc:
        return str(exc)
    if config.to_dict() != manifest.runtime.to_dict():
        return "%s: %s differs from the manifest's runtime configuration" % (
            archive.name,
            RUNTIME_CONFIG_NAME,
        )
    return None


#: Members are read in pieces this small: a larger one is a fresh mapping of memory (and a
#: page fault per page) for every read, which cost verify a third of its time.
_PIECE = 64 << 10


def _check_member(
    archive: Archive, entry: Entry, expected: Optional[Tuple[str, int]]
) -> Optional[str]:
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in archive.chunks(entry, _PIECE):
            digest.update(chunk)
            size += len(chunk)
    except ArchiveError as exc:
        return str(exc)
    if expected is None:
        return None
    if size != expected[1]:
        return "%s: member %r is %d bytes, the manifest says %d" % (
            archive.name,
            entry.name,
            size,
            expected[1],
        )
    if digest.hexdigest() != expected[0]:
        return "%s: member %r does not match its SHA-256 in the manifest" % (
            archive.name,
            entry.name,
        )
    return None


def _native_line(dist: Any, targets: List[Any]) -> str:
    notes = []
    if dist.targets:
        notes.append(", ".join(targets[i].name.split("-")[0] for i in dist.targets))
    if dist.optional:
        notes.append("optional")
    return "%s %s%s" % (dist.name, dist.version, " (%s)" % "; ".join(notes) if notes else "")
