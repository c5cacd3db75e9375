"""Compare two archives: members added, removed and changed (by content hash), and the
manifest fields and interpreter lines that differ. Reads both as zips; runs neither."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any

from ._runtime.layout import MANIFEST_NAME
from ._runtime.toolbox import Limits, open_zip
from .errors import ArchiveError

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
        if key == "members":
            continue
        if left_manifest.get(key) != right_manifest.get(key):
            fields[f"manifest.{key}"] = (left_manifest.get(key), right_manifest.get(key))
    return ArchiveDiff(added, removed, changed, fields)


def _load(path: str, limits: Limits | None) -> tuple[dict[str, str], dict[str, Any], str | None]:
    import json

    name = os.path.basename(path)
    hashes: dict[str, str] = {}
    manifest: dict[str, Any] = {}
    with open_zip(path, limits) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            try:
                data = zf.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise ArchiveError(f"{name}: member {info.filename!r} is damaged: {exc}") from None
            if info.filename == MANIFEST_NAME:
                try:
                    loaded = json.loads(data.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    loaded = {}
                manifest = loaded if isinstance(loaded, dict) else {}
                continue
            hashes[info.filename] = hashlib.sha256(data).hexdigest()
    with open(path, "rb") as fp:
        head = fp.read(512)
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace") if head[:2] == b"#!" else None
    return hashes, manifest, line
