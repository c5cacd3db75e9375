"""Whether a distribution's code reads its own files by path, which fails inside a zip.

``open(os.path.join(os.path.dirname(__file__), "base.yml"))``, ``os.walk`` over a template
folder next to a module, ``Path(__file__).parent.glob("*.json")``: each works in a venv and
finds nothing (or raises NotADirectoryError) when the module was imported from an archive.
The builder extracts such a distribution to the cache, as it does native code.

The decision rests on the code, never on a list of package names: a module is evidence when a
path derived from its ``__file__`` or ``__path__`` (or from a top-level package's, as in
``django.__path__[0]``) reaches a file-system call, through assignments, function returns and
names imported from another module of the same distribution. ``pkg_resources``'s
``resource_filename``, ``importlib.resources.as_file`` on the distribution's own files
(which copies them out of a zip at every run) and an egg's ``not-zip-safe`` flag count too.
Code under ``if __name__ == "__main__":`` and test modules do not: they do not run in the
application.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Evidence", "find_evidence"]

#: Calls that touch the file system when given a path (by function or method name).
_PATH_CALLS = frozenset({
    "open", "listdir", "walk", "scandir", "glob", "iglob", "exists", "isfile", "isdir",
    "getsize", "copy", "copy2", "copyfile", "copytree", "chdir", "loadtxt", "fromfile",
    "FileSystemLoader", "load", "parse", "execfile", "run_path",
})  # fmt: skip
#: Methods of a path object (pathlib) that touch the file system.
_PATH_METHODS = frozenset({
    "open", "read_text", "read_bytes", "iterdir", "glob", "rglob", "exists", "is_file",
    "is_dir", "stat",
})  # fmt: skip
#: Calls whose result is a yes or no, never a path.
_PREDICATES = frozenset({
    "exists", "isfile", "isdir", "islink", "is_file", "is_dir", "is_relative_to", "startswith",
    "endswith", "samefile", "isinstance", "hasattr", "bool", "len",
})  # fmt: skip
_OWN = frozenset({"__file__", "__path__"})
_MARKERS = ("__file__", "__path__", "resource_filename", "as_file", "resources")
_TEST_PARTS = frozenset({"test", "tests", "testing"})


@dataclass(frozen=True)
class Evidence:
    """Why a distribution must be extracted: the module that shows it, and what it does."""

    module: str
    what: str

    def __str__(self) -> str:
        return f"{self.module}: {self.what}"


def find_evidence(root: Path, files: Iterable[str]) -> Evidence | None:
    """The first module of a distribution (its *files*, relative to *root*) that reads the
    distribution's own files by path; None when none does."""
    files = sorted(files)
    for rel in files:
        if rel.endswith((".egg-info/not-zip-safe", ".dist-info/not-zip-safe")):
            return Evidence(rel.split("/")[0], "its metadata says it is not zip-safe")
    tops = frozenset(
        rel.split("/")[0].removesuffix(".py")
        for rel in files
        if not rel.split("/")[0].endswith((".dist-info", ".data", ".egg-info"))
    )
    sources = {}
    for rel in files:
        if rel.endswith(".py") and not _is_test(rel):
            try:
                sources[rel] = (root / rel).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
    exported: set[str] = set()
    trees = {}
    for rel, text in sources.items():
        if not any(marker in text for marker in _MARKERS):
            continue
        tree = _parse(text)
        if tree is None:
            continue
        trees[rel] = tree
        found = _module_evidence(tree, tops, frozenset(), exported)
        if found:
            return Evidence(rel, found)
    if not exported:
        return None
    # A path made in one module and used in another: `from .paths import DATA_DIR`.
    for rel, text in sources.items():
        if rel in trees or not any(name in text for name in exported):
            continue
        tree = _parse(text)
        found = _module_evidence(tree, tops, frozenset(exported), None) if tree else None
        if found:
            return Evidence(rel, found)
    return None


def _is_test(rel: str) -> bool:
    parts = rel.split("/")
    name = parts[-1]
    return bool(_TEST_PARTS & set(parts[:-1])) or name.startswith("test_") or name == "conftest.py"


def _parse(text: str) -> ast.Module | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    tree.body = [stmt for stmt in tree.body if not _is_main_block(stmt)]
    return tree


def _is_main_block(stmt: ast.stmt) -> bool:
    test = getattr(stmt, "test", None) if isinstance(stmt, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def _used(node: ast.AST, tops: frozenset[str]) -> set[str]:
    """The names an expression's value can carry: ``NAME``, ``.ATTR`` for attributes
    (``self.ATTR``), ``()NAME`` for each function or method it calls, and ``__file__`` for a
    top-level package's ``pkg.__file__`` or ``pkg.__path__``. A condition is not the value:
    the test of ``a if test else b``, a comparison, and a call that answers yes or no
    (``p.is_relative_to(...)``) carry no path."""
    found: set[str] = set()
    stack = [node]
    while stack:
        sub = stack.pop()
        if isinstance(sub, ast.Compare):
            continue
        if isinstance(sub, ast.IfExp):
            stack += [sub.body, sub.orelse]
            continue
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add("." + sub.attr)
            base = sub.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if sub.attr in _OWN and isinstance(base, ast.Name) and base.id in tops:
                found.add("__file__")
        elif isinstance(sub, ast.Call):
            func = sub.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in _PREDICATES:
                continue
            if name:
                found.add("()" + name)
        stack.extend(ast.iter_child_nodes(sub))
    return found


def _module_evidence(
    tree: ast.Module, tops: frozenset[str], imported: frozenset[str], exported: set[str] | None
) -> str | None:
    tainted = set(_OWN)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            tainted.update(a.asname or a.name for a in node.names if a.name in imported)
    flows: list[tuple[set[str], set[str]]] = []  # (names assigned, names read)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is None:
                continue
            assigned = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            assigned |= {
                "." + n.attr for t in targets for n in ast.walk(t) if isinstance(n, ast.Attribute)
            }
            flows.append((assigned, _used(node.value, tops)))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            returned: set[str] = set()
            for sub in ast.walk(node):
                if isinstance(sub, ast.Return) and sub.value is not None:
                    returned |= _used(sub.value, tops)
            flows.append(({"()" + node.name}, returned))
        elif isinstance(node, ast.For):
            flows.append((_names_in(node.target), _used(node.iter, tops)))
        elif isinstance(node, ast.With):
            for item in node.items:
                if item.optional_vars is not None:
                    flows.append((_names_in(item.optional_vars), _used(item.context_expr, tops)))
    changed = True
    while changed:
        changed = False
        for assigned, read in flows:
            if read & tainted and not assigned <= tainted:
                tainted |= assigned
                changed = True
    if exported is not None:
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign):
                exported.update(
                    t.id for t in stmt.targets if isinstance(t, ast.Name) and t.id in tainted
                )
    copied = _copied_out(tree, tops)
    if copied:
        return copied
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "resource_filename":
            return "pkg_resources.resource_filename()"
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        args = [*node.args, *(k.value for k in node.keywords)]
        read = set().union(*(_used(a, tops) for a in args)) if args else set()
        given = bool(read & tainted)
        if isinstance(func, ast.Name) and func.id in _PATH_CALLS and given:
            return f"{func.id}() on a path made from __file__ or __path__"
        if isinstance(func, ast.Attribute):
            if func.attr in _PATH_CALLS and given:
                return f"{_dotted(func)}() on a path made from __file__ or __path__"
            if func.attr in _PATH_METHODS and _used(func.value, tops) & tainted:
                return f".{func.attr}() on a path made from __file__ or __path__"
    return None


_RESOURCES = frozenset({"importlib.resources", "importlib_resources"})
#: importlib.resources functions that give a real file for a resource: inside a zip they copy
#: it to a temporary file, at every run.
_AS_FILE = frozenset({"as_file", "path"})


def _copied_out(tree: ast.Module, tops: frozenset[str]) -> str | None:
    """``importlib.resources.as_file()`` (or the older ``path()``) in a module that asks
    ``files()`` for its own package's resources, as certifi does for its CA bundle: it works
    from a zip, by copying the file out each time; extracted, the file is simply there."""
    local = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in _RESOURCES
        for alias in node.names
    }
    modules = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name in _RESOURCES
    } | {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "importlib"
        for alias in node.names
        if alias.name == "resources"
    }
    copies = own = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            name = local.get(func.id)
        elif isinstance(func, ast.Attribute) and _dotted(func).rpartition(".")[0] in modules:
            name = func.attr
        else:
            continue
        if name in _AS_FILE:
            copies = "as_file" if "as_file" in (copies, name) else name
            if name == "path" and node.args and _names_own(node.args[0], tops):
                own = True
        elif name == "files" and node.args and _names_own(node.args[0], tops):
            own = True
    if copies and own:
        return f"importlib.resources.{copies}(), which copies a resource out of a zip at each run"
    return None


def _names_own(node: ast.expr, tops: frozenset[str]) -> bool:
    """Whether *node* names this module's package: ``__name__``, ``__package__``, or a string
    whose first part is one of the distribution's top-level names."""
    if isinstance(node, ast.Name):
        return node.id in ("__name__", "__package__")
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split(".")[0] in tops
    return False


def _names_in(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def _dotted(node: ast.Attribute) -> str:
    parts = [node.attr]
    base = node.value
    while isinstance(base, ast.Attribute):
        parts.append(base.attr)
        base = base.value
    if isinstance(base, ast.Name):
        parts.append(base.id)
    return ".".join(reversed(parts))
