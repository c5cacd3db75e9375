"""Make an archive's code importable: its own files, bundled distributions, native code.

Used by the stub when an archive runs, and by :func:`mount` when another program imports
from one. Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import contextlib
import os
import sys

from . import cache
from .errors import ArchiveError
from .format import NativeDist, RuntimeConfig
from .importer import compile_into, serve_extracted
from .importer import install as install_importer
from .tags import describe_needs, describe_platform, platform_fits, tag_fits

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = ["Environment", "activate", "choose_target", "mount", "normalize_name"]


def _warn_stderr(archive: str) -> Callable[[str], None]:
    def warn(message: str) -> None:
        sys.stderr.write("%s: warning: %s\n" % (os.path.basename(archive), message))

    return warn


class Environment:
    """What activating an archive changed, so that it can be undone.

    A context manager: leaving the ``with`` block undoes it (see :func:`deactivate`).
    """

    def __init__(self, archive: str) -> None:
        self.archive = archive
        self.paths: List[str] = []
        self.finder: Optional[_MetadataFinder] = None
        self.unusable: Optional[_UnusableNative] = None

    def __enter__(self) -> Environment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        deactivate(self)


def activate(
    archive: str,
    config: RuntimeConfig,
    warn: Optional[Callable[[str], None]] = None,
    where: Optional[int] = None,
) -> Environment:
    """Put the archive's code on ``sys.path`` (at *where*, by default after the archive
    itself) and its metadata in reach of ``importlib.metadata``; extract native code first if
    it has any.

    When the archive checks itself at start (``--verify-on-start``, ``PACKER_VERIFY=1``),
    native code already in the cache is checked against the manifest too.
    """
    archive = os.path.abspath(archive)
    env = Environment(archive)
    chosen = choose_target(archive, config)
    variants = [v for v in config.variants if chosen in v.targets]
    natives, unusable = _native_fits(archive, config, chosen)
    install_importer(archive)
    sources = config.sources
    if sources is not None and os.environ.get("PACKER_COMPILE_CACHE", "") != "0":
        compile_into(archive, lambda: cache.bytecode_folder(sources))
    paths = []
    if archive not in sys.path:
        paths.append(archive)
    check = config.verify or os.environ.get("PACKER_VERIFY", "") not in ("", "0")
    extracted = cache.ensure_extracted(archive, natives, warn or _warn_stderr(archive), check)
    serve_extracted(extracted)
    paths += extracted
    if unusable:
        # First on the meta path: an installed copy elsewhere must not stand in for it.
        env.unusable = _UnusableNative(unusable)
        sys.meta_path.insert(0, env.unusable)
    site = config.site
    if site:
        paths.append(archive + "/" + site)
    paths += [archive + "/" + v.folder for v in variants]
    if where is None:
        where = sys.path.index(archive) + 1 if archive in sys.path else 0
    sys.path[where:where] = paths
    env.paths = paths
    dists = [(site, d) for d in config.dists] if site else []
    dists += [(v.folder, d) for v in variants for d in v.dists]
    if dists:
        env.finder = _MetadataFinder(archive, dists)
        # Ahead of the path finder, so the bundled version wins over one installed here,
        # as the bundled code does on sys.path.
        where = next(
            (i for i, f in enumerate(sys.meta_path) if getattr(f, "__name__", "") == "PathFinder"),
            len(sys.meta_path),
        )
        sys.meta_path.insert(where, env.finder)
    for pth in config.pth:
        env.paths += _process_pth(archive, site, pth)
    for variant in variants:
        for pth in variant.pth:
            env.paths += _process_pth(archive, variant.folder, pth)
    return env


def deactivate(env: Environment) -> None:
    """Undo :func:`activate`: paths, the metadata finder, and modules imported from them."""
    for path in env.paths:
        with contextlib.suppress(ValueError):
            sys.path.remove(path)
    for finder in (env.finder, env.unusable):
        if finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(finder)
    prefixes = (*tuple(p + os.sep for p in env.paths), env.archive + "/")
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if origin.startswith(prefixes):
            del sys.modules[name]
    for path in env.paths:
        sys.path_importer_cache.pop(path, None)


def read_config(archive: str) -> RuntimeConfig:
    """The runtime configuration the builder recorded in the archive's manifest, checked."""
    from .format import MANIFEST_NAME, open_archive

    with open_archive(archive) as opened:
        manifest = opened.manifest()
    if manifest is None:
        raise ArchiveError("%s: not a packer archive (no %s)" % (archive, MANIFEST_NAME))
    return manifest.runtime


def mount(archive: str) -> Environment:
    """Make *archive*'s code, bundled distributions and native code importable here.

    Takes effect at once and stays; used as a context manager (``with mount(p):``) it is
    undone on exit, and the modules imported from the archive are forgotten.
    """
    return activate(archive, read_config(archive))


def choose_target(archive: str, config: RuntimeConfig) -> Optional[int]:
    """The target of a multi-target archive this interpreter runs: the first listed whose
    Python is this one and whose platform fits here. None for a single-target archive;
    ArchiveError, in one line, when none fits."""
    if not config.targets:
        return None
    here = sys.version_info[:2]
    if sys.implementation.name == "cpython":
        for index, target in enumerate(config.targets):
            if target.python == here and platform_fits(target.platform):
                return index
    by_platform: Dict[str, List[str]] = {}
    for target in config.targets:
        by_platform.setdefault(target.platform, []).append("%d.%d" % target.python)
    built = "; ".join(
        "CPython %s on %s" % (", ".join(versions), platform)
        for platform, versions in by_platform.items()
    )
    name = "CPython" if sys.implementation.name == "cpython" else sys.implementation.name
    raise ArchiveError(
        "%s: built for %s; this is %s %s on %s (%s)"
        % (
            os.path.basename(archive),
            built,
            name,
            sys.version.split()[0],
            describe_platform(),
            sys.executable,
        )
    )


def _native_fits(
    archive: str, config: RuntimeConfig, chosen: Optional[int] = None
) -> Tuple[List[NativeDist], Dict[str, str]]:
    """The native distributions this interpreter can load (of the *chosen* target's), and
    why the others cannot, by the top-level names they provide. Any that is not optional and
    does not fit refuses the archive: ArchiveError, one line naming every such one."""
    usable: List[NativeDist] = []
    unusable: Dict[str, str] = {}
    refused: List[str] = []
    refused_elsewhere = False
    here = "cp%d%d" % sys.version_info[:2]
    name = os.path.basename(archive)
    for dist in config.native:
        if dist.targets and chosen not in dist.targets:
            continue
        tags = dist.tags
        if not tags or any(tag_fits(tag, here) for tag in tags):
            usable.append(dist)
            continue
        platforms = {t.split("-")[2] for t in tags if t.count("-") == 2}
        elsewhere = not any(platform_fits(p) for ps in platforms for p in ps.split("."))
        need = "%s %s needs %s" % (dist.name, dist.version, describe_needs(tags, elsewhere))
        if not dist.optional:
            refused.append(need)
            refused_elsewhere = refused_elsewhere or elsewhere
            continue
        reason = "%s: %s; %s" % (name, need, _this_python(elsewhere))
        for top in dist.top:
            unusable[top] = reason
    if refused:
        this = _this_python(refused_elsewhere)
        raise ArchiveError("%s: %s; %s" % (name, ", ".join(refused), this))
    return usable, unusable


def _this_python(with_platform: bool) -> str:
    return "this is Python %s%s (%s)" % (
        sys.version.split()[0],
        " on " + describe_platform() if with_platform else "",
        sys.executable,
    )


class _UnusableNative:
    """Answers imports of an optional native distribution that this interpreter cannot load
    with an ImportError saying why, so that the application can fall back."""

    def __init__(self, reasons: Dict[str, str]) -> None:
        self.reasons = reasons

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        reason = self.reasons.get(fullname.partition(".")[0])
        if reason is not None:
            raise ModuleNotFoundError(reason, name=fullname)

    def invalidate_caches(self) -> None:
        pass


def _process_pth(archive: str, site: Optional[str], name: str) -> List[str]:
    """Honour a bundled ``.pth`` file as ``site`` would: import lines run, others are paths.

    Returns the paths it added to ``sys.path``.
    """
    import zipfile

    added: List[str] = []
    if not site:
        return added
    try:
        with zipfile.ZipFile(archive) as zf:
            text = zf.read("%s/%s" % (site, name)).decode("utf-8")
    except (KeyError, OSError, zipfile.BadZipFile, UnicodeDecodeError):
        return added
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("import ", "import\t")):
            exec(line)  # what site.addpackage does with such lines
            continue
        path = archive + "/" + site + "/" + line.rstrip("/")
        if path not in sys.path:
            sys.path.append(path)
            added.append(path)
    return added


def normalize_name(name: str) -> str:
    """PEP 503 normalisation (runs of -_. become -), without importing re at start-up."""
    out: List[str] = []
    for char in name.lower():
        if char in "-_.":
            if not out or out[-1] != "-":
                out.append("-")
        else:
            out.append(char)
    return "".join(out)


class _MetadataFinder:
    """Lets ``importlib.metadata`` see distributions bundled in the archive.

    Its path-based finder cannot look inside a folder of a zip file, only at a zip's top.
    Metadata files are read with the archive's importer (one ``pread`` each); a file a
    distribution lists (``files()``) is a ``zipfile.Path`` on one shared, lazily opened zip.
    """

    def __init__(self, archive: str, dists: List[Tuple[str, Tuple[str, str, str]]]) -> None:
        self.archive = archive
        self.dists = [(normalize_name(d[0]), folder, d[2]) for folder, d in dists]
        self._root: Any = None
        self._found: Optional[List[Any]] = None

    def find_spec(self, *args: Any, **kwargs: Any) -> None:
        return None  # finds distributions only, never modules

    def root(self) -> Any:
        """The archive as a ``zipfile.Path``, its table of contents read once."""
        if self._root is None:
            import zipfile

            self._root = zipfile.Path(self.archive)
        return self._root

    def find_distributions(self, context: Any = None) -> Iterator[Any]:
        if self._found is None:
            from importlib.metadata import Distribution

            self._found = [_bundled(Distribution, self, *d) for d in self.dists]
            _hide_from_path_finder(self.archive, sorted({d[1] for d in self.dists}))
        wanted = getattr(context, "name", None)
        wanted = normalize_name(wanted) if wanted else None
        for dist in self._found:
            if wanted is None or dist.normalized == wanted:
                yield dist

    def invalidate_caches(self) -> None:
        pass


def _hide_from_path_finder(archive: str, folders: List[str]) -> None:
    """Spare importlib.metadata's own path finder a search of the archive's paths.

    It would read the whole zip's table of contents with zipfile (tens of milliseconds for a
    large archive) for each of them, to find what this finder already serves. Its per-path
    object is cached (``FastPath``, Python 3.10+), so one told it has no children is asked no
    more. The archive's top is left to it when the project itself put a ``.dist-info`` there.
    """
    try:
        from importlib.metadata import FastPath  # type: ignore[attr-defined]
    except ImportError:
        return
    from .importer import toc_names

    roots = [archive + "/" + folder for folder in folders]
    if not any(name.partition("/")[0].endswith(".dist-info") for name in toc_names(archive)):
        roots.append(archive)
    for root in roots:
        try:
            fast = FastPath(root)
            if fast is FastPath(root):  # cached: the hint holds for later searches
                fast.children = list
        except Exception:  # a private class of the standard library: never fail for it
            return


_BUNDLED: List[Any] = []


def _bundled(base: Any, finder: _MetadataFinder, normalized: str, folder: str, info: str) -> Any:
    """A bundled distribution, on importlib.metadata's Distribution (imported when asked)."""
    if not _BUNDLED:

        class BundledDistribution(base):  # type: ignore[misc]
            def __init__(self, finder: _MetadataFinder, normalized: str, at: str) -> None:
                self.finder = finder
                self.normalized = normalized
                self.at = at

            def read_text(self, filename: str) -> Optional[str]:
                from .importer import read_member

                try:
                    data = read_member(self.finder.archive, self.at + filename)
                except (KeyError, OSError):
                    return None
                return data.decode("utf-8")

            def locate_file(self, path: Any) -> Any:
                folder = self.at.rsplit("/", 2)[0]
                return self.finder.root().joinpath(folder + "/" + str(path))

            @property
            def _normalized_name(self) -> str:  # what distributions() tells copies apart by
                return self.normalized.replace("-", "_")

        _BUNDLED.append(BundledDistribution)
    return _BUNDLED[0](finder, normalized, "%s/%s/" % (folder, info))
