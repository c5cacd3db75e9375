"""Entry points: parse ``pkg.mod:func`` / ``pkg.mod`` and check them against the archive's files."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from .errors import EntryPointError

__all__ = ["INTERPRETER", "EntryPoint", "parse_entry"]

CALLABLE = "callable"
MODULE = "module"
#: No entry point: the archive is a Python in its own environment (--interpreter).
INTERPRETER = "interpreter"


@dataclass(frozen=True)
class EntryPoint:
    """What the stub starts: ``callable`` (``mod:attr``, exit status from its return) or
    ``module`` (run as ``python -m mod`` would)."""

    kind: str
    value: str

    @property
    def module(self) -> str:
        return self.value.partition(":")[0]

    @property
    def attr(self) -> str:
        return self.value.partition(":")[2]

    def check(self, read_member: Callable[[str], bytes | None], where: str) -> None:
        """Raise EntryPointError unless the entry point's module (and attribute) is there.

        *read_member* returns a member's bytes by archive name, or None when it is absent.
        The attribute check reads the module's source statically; it never imports it, and it
        gives up (accepts) where the source could define names dynamically.
        """
        parts = self.module.split(".")
        base = "/".join(parts)
        candidates = [f"{base}.py", f"{base}/__init__.py"]
        found = next((name for name in candidates if read_member(name) is not None), None)
        if found is None:
            raise EntryPointError(
                f"entry point {self.value!r}: module {self.module!r} is not in {where}"
            )
        if self.kind == MODULE:
            if found.endswith("/__init__.py") and read_member(f"{base}/__main__.py") is None:
                raise EntryPointError(
                    f"entry point {self.value!r}: package {self.module!r} has no __main__.py, "
                    "so it cannot be run as a module; name a function with 'module:function'"
                )
            return
        source = read_member(found)
        assert source is not None
        top = self.attr.split(".")[0]
        if not _may_define(source, top):
            raise EntryPointError(
                f"entry point {self.value!r}: {found} does not define {top!r} at module level"
            )


_IDENT_ERROR = "entry point {spec!r}: expected 'package.module:function' or 'package.module'"


def parse_entry(spec: str) -> EntryPoint:
    """Parse an entry-point spec; raise EntryPointError when it is malformed."""
    text = spec.strip()
    module, colon, attr = text.partition(":")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise EntryPointError(_IDENT_ERROR.format(spec=spec))
    if colon:
        if not attr or not all(part.isidentifier() for part in attr.split(".")):
            raise EntryPointError(_IDENT_ERROR.format(spec=spec))
        return EntryPoint(CALLABLE, f"{module}:{attr}")
    return EntryPoint(MODULE, module)


def _may_define(source: bytes, name: str) -> bool:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        # Cannot tell; running it will show the syntax error.
        return True
    return any(_binds(node, name) for node in _module_level(tree.body))


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run at import time, looking inside if/try/with/for/while but not defs."""
    found: list[ast.stmt] = []
    for node in body:
        found.append(node)
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list) and not isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                stmts = [n.body if isinstance(n, ast.ExceptHandler) else [n] for n in inner]
                found.extend(_module_level([s for group in stmts for s in group]))
    return found


def _binds(node: ast.stmt, name: str) -> bool:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name in (name, "__getattr__")
    if isinstance(node, ast.Import | ast.ImportFrom):
        return any(
            alias.name == "*" or (alias.asname or alias.name.split(".")[0]) == name
            for alias in node.names
        )
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.For | ast.With):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.For):
            targets = [node.target]
        elif isinstance(node, ast.With):
            targets = [item.optional_vars for item in node.items if item.optional_vars]
        else:
            targets = [node.target]
        return any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t))
    return False
