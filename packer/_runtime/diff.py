"""Compare two archives: members added, removed and changed (by content hash), and the
manifest fields and interpreter lines that differ. Reads both as zips; runs neither.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from .format import MANIFEST_NAME, Limits, open_archive
from .inspection import refuse_damaged

__all__ = ["ArchiveDiff", "diff"]


@dataclass(frozen=True)
class ArchiveDiff:
    """What differs between archive *a* and archive *b*."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed or self.fields)

    def as_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "fields": {k: {"a": a, "b": b} for k, (a, b) in self.fields.items()},
        }

    def lines(self) -> list[str]:
        out = [f"+ {n}" for n in self.added] + [f"- {n}" for n in self.removed]
        out += [f"~ {n}" for n in self.changed]
        out += [f"{k}: {a!r} -> {b!r}" for k, (a, b) in self.fields.items()]
        return out


def diff(
    a: str | os.PathLike[str], b: str | os.PathLike[str], limits: Limits | None = None
) -> ArchiveDiff:
    """Compare archives *a* and *b* member by member and field by field."""
    left, left_manifest, left_line = _load(str(a), limits)
    right, right_manifest, right_line = _load(str(b), limits)
    added = tuple(sorted(set(right) - set(left)))
    removed = tuple(sorted(set(left) - set(right)))
    changed = tuple(sorted(n for n in set(left) & set(right) if left[n] != right[n]))
    fields: dict[str, tuple[Any, Any]] = {}
    if left_line != right_line:
        fields["interpreter line"] = (left_line, right_line)
    for key in sorted(set(left_manifest) | set(right_manifest)):
        if left_manifest.get(key) != right_manifest.get(key):
            fields[f"manifest.{key}"] = (left_manifest.get(key), right_manifest.get(key))
    return ArchiveDiff(added, removed, changed, fields)


def _load(path: str, limits: Limits | None) -> tuple[dict[str, str], dict[str, Any], str | None]:
    """Each member's SHA-256 (streamed), the manifest's fields but its member list, and the
    interpreter line."""
    hashes: dict[str, str] = {}
    with open_archive(path, limits) as archive:
        refuse_damaged(archive)
        manifest = archive.manifest() if archive.layout.strict else None
        fields = manifest.body() if manifest is not None else {}
        fields.pop("members", None)
        if manifest is not None:
            fields["build_id"] = manifest.build_id
        for entry in archive.entries:
            if entry.is_dir or entry.name == MANIFEST_NAME:
                continue
            digest = hashlib.sha256()
            for chunk in archive.chunks(entry):
                digest.update(chunk)
            hashes[entry.name] = digest.hexdigest()
        return hashes, fields, archive.layout.interpreter
