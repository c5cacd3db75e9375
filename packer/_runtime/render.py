"""Text for the read-only tools: what info, list and verify print, the same from packer and
from an archive's own tools (``PACKER_TOOLS=1``).

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Dict, List, Sequence

__all__ = [
    "DIGEST_NOTE",
    "TOOLS_NOTE",
    "human_size",
    "info_lines",
    "list_lines",
    "printable",
    "verify_lines",
]

DIGEST_NOTE = (
    "note: a digest detects corruption; only a signature checked against a key you trust "
    "says who made an archive"
)
TOOLS_NOTE = (
    "note: these tools are the archive's own code, so they cannot vouch for it; "
    "check it with an installed packer: packer verify ARCHIVE --key KEY.pub"
)


def printable(value: Any) -> str:
    """*value* as text safe for a terminal: control characters and escape sequences, which
    an archive's names and manifest may hold, are shown escaped (``\\x1b``)."""
    text = "%s" % (value,)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def human_size(n: int) -> str:
    """A byte count for people: 512 B, 3.4 KiB, 12.0 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return "%d %s" % (value, unit) if unit == "B" else "%.1f %s" % (value, unit)
        value /= 1024
    return "%d B" % n


def info_lines(data: Dict[str, Any]) -> List[str]:
    """``info`` as text: one ``key: value`` line per fact."""
    digest = data.get("digest") or {}
    lines = [
        "archive: %s" % data["path"],
        "format: %s" % (data.get("format") or "-"),
        "kind: %s" % data["kind"],
        "interpreter: %s" % (data.get("interpreter") or "(no shebang)"),
        "entry point: %s" % (data.get("entry_point") or "-"),
        "requires-python: %s" % (data.get("requires_python") or "-"),
    ]
    if data["kind"] == "packer":
        lines += [
            "packer version: %s" % data.get("packer_version"),
            "build id: %s" % data.get("build_id"),
            "created: %s" % (data.get("created") or "(not recorded)"),
        ]
    elif data.get("build_id") or data.get("created"):
        lines.append("build id: %s" % (data.get("build_id") or "-"))
        lines.append("created: %s" % (data.get("created") or "-"))
    lines += [
        "members: %d" % data["members"]
        + (
            " (zip records: %d; packs: %s)" % (data["zip_records"], ", ".join(data["packs"]))
            if data.get("packs")
            else ""
        ),
        "size: %s stored, %s packed"
        % (human_size(data["stored_size"]), human_size(data["packed_size"])),
        "digest: %s" % digest.get("status", "absent"),
        "signature: %s" % data.get("signature", "absent"),
    ]
    dists = data.get("distributions") or []
    if dists:
        shown = [
            "%s %s%s" % (d["name"], d.get("version") or "", " (native)" if d.get("native") else "")
            for d in dists
        ]
        lines.append("distributions: %s" % ", ".join(s.strip() for s in shown))
    else:
        lines.append("distributions: -")
    lines.append("native: %s" % (", ".join(data.get("native") or []) or "-"))
    for line in data.get("extracted") or []:
        lines.append("extracted: %s" % line)
    if data.get("targets"):
        lines.append("targets: %s" % ", ".join(data["targets"]))
    if data.get("lock"):
        lock = data["lock"]
        lines.append("lock: sha256 %s, %d pins: %s" % (
            lock["sha256"][:16], len(lock["pins"]), ", ".join(lock["pins"]) or "-"))  # fmt: skip
    lines += ["note: %s" % note for note in data.get("notes") or []]
    return [printable(line) for line in lines]


def list_lines(rows: Sequence[Dict[str, Any]], long: bool = False, tree: bool = False) -> List[str]:
    """``list`` as text: names; with *long* sizes, modes and methods; with *tree* indented,
    with every folder shown (archives hold folder entries only where they are needed)."""
    lines = []
    shown = set()
    for row in rows:
        name = row["name"]
        if tree:
            parts = name.rstrip("/").split("/")
            for depth in range(len(parts) - 1):
                folder = "/".join(parts[: depth + 1]) + "/"
                if folder not in shown:
                    shown.add(folder)
                    lines.append("  " * depth + parts[depth] + "/")
            if row["kind"] == "dir":
                if name in shown:
                    continue
                shown.add(name)
            label = parts[-1] + ("/" if row["kind"] == "dir" else "")
            name = "  " * (len(parts) - 1) + label
        if long:
            lines.append(
                "%s %10d %10d %-8s %s"
                % ((row["mode"] or "-").rjust(4), row["size"], row["packed"], row["method"], name)
            )
        else:
            lines.append(name)
    return [printable(line) for line in lines]


def verify_lines(problems: Sequence[str], facts: Dict[str, Any], path: str) -> List[str]:
    if problems:
        lines = list(problems)
        lines.append(
            "%s: FAILED, %d problem%s" % (path, len(problems), "" if len(problems) == 1 else "s")
        )
    elif facts.get("digest") == "ok":
        signature = ", signature %s" % facts["signature"] if facts.get("signature") else ""
        lines = [
            "%s: OK (%s archive, format %s, %d members checked, digest %s%s)"
            % (path, facts["kind"], facts.get("format"), facts["members_checked"],
               facts["digest"], signature)
        ]  # fmt: skip
    else:
        lines = [
            "%s: readable, not verified (%s archive, %d members' CRCs checked, no digest)"
            % (path, facts["kind"], facts["members_checked"])
        ]
    lines += ["note: %s" % note for note in facts.get("notes") or []]
    lines.append(DIGEST_NOTE)
    return [printable(line) for line in lines]
