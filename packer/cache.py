"""The native-code cache as packer's CLI shows and prunes it (the runtime fills it)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ._runtime import cache as _cache

__all__ = ["CacheEntry", "cache_info", "cache_root", "prune"]


@dataclass(frozen=True)
class CacheEntry:
    """One cache folder: a native distribution extracted by some archive."""

    name: str
    path: Path
    size: int
    last_used: float
    complete: bool


def cache_root() -> Path:
    """Where archives extract native code (``$PACKER_CACHE``, ``$XDG_CACHE_HOME/packer``, ...)."""
    return Path(_cache.cache_root())


def cache_info(root: Path | None = None) -> list[CacheEntry]:
    """Every entry of the cache, temporary and broken ones included."""
    return [
        CacheEntry(e.name, Path(e.path), e.size, e.last_used, e.complete)
        for e in _cache.list_entries(str(root) if root else None)
    ]


def prune(
    older_than_days: float | None = None, *, remove_all: bool = False, root: Path | None = None
) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Remove entries unused for *older_than_days* (or all with *remove_all*).

    Temporary and broken entries go too. An entry a running archive holds is kept, whatever
    its age. Returns (removed, kept-because-in-use).
    """
    now = time.time()
    removed: list[CacheEntry] = []
    busy: list[CacheEntry] = []
    for raw in _cache.list_entries(str(root) if root else None):
        entry = CacheEntry(raw.name, Path(raw.path), raw.size, raw.last_used, raw.complete)
        old_enough = older_than_days is not None and now - raw.last_used >= older_than_days * 86400
        if not (remove_all or old_enough or not raw.complete):
            continue
        if _cache.remove_entry(raw):
            removed.append(entry)
        else:
            busy.append(entry)
    return removed, busy
