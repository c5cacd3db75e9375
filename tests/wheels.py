"""Make small wheels in the tests, so bundling can be tested with known contents offline."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from helpers import packer_cli, write_tree

#: A wheel to make: name, version, files, entry_points.txt ("" for none).
Spec = tuple[str, str, dict[str, str], str]


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str], *,
               entry_points: str = "", tag: str = "py3-none-any") -> Path:  # fmt: skip
    """Write ``name-version-tag.whl`` holding *files* plus valid metadata; return its path."""
    info = f"{name}-{version}.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    contents[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: packer-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    )
    if entry_points:
        contents[f"{info}/entry_points.txt"] = entry_points
    record = []
    for path, text in contents.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in contents.items():
            zf.writestr(path, text)
    return wheel


GREET_FILES = {
    "greet/__init__.py": (
        "from importlib.resources import files\n\n"
        "def hello():\n    return 'hello from greet'\n\n"
        "def data():\n    return files('greet').joinpath('data.txt').read_text().strip()\n"
    ),
    "greet/data.txt": "greet data\n",
    "greet/cli.py": (
        "import sys\nimport greet\n\n"
        "def main():\n    print('greet-tool', greet.hello(), sys.argv[1:])\n    return 0\n"
    ),
    "greet.pth": "greet_extras\n",
    "greet_extras/greet_extra_mod.py": "VALUE = 'from a .pth path'\n",
}
GREET_ENTRY_POINTS = (
    "[console_scripts]\ngreet-tool = greet.cli:main\n\n[greet.plugins]\nloud = greet:hello\n"
)


#: A distribution with native code, as the build tells it: an extension module's file name.
FASTC: Spec = ("fastc", "1.0", {"fastc/__init__.py": "", "fastc/_speed.so": "x"}, "")


def build_offline(root: Path, app: dict[str, str], wheels: Iterable[Spec],
                  *options: str | os.PathLike[str], out: str = "app.pyz") -> Path:  # fmt: skip
    """Build ``root/out`` from the tree *app* (written to ``root/src``), bundling each of
    *wheels* (made in ``root/wheels``, found there with no index); *options* go to
    ``packer build`` too. The build must succeed."""
    folder = root / "wheels"
    folder.mkdir(exist_ok=True)
    bundled: list[str | os.PathLike[str]] = []
    for name, version, files, entry_points in wheels:
        make_wheel(folder, name, version, files, entry_points=entry_points)
        bundled += ["--with", name]
    src = write_tree(root / "src", app)
    target = root / out
    proc = packer_cli("build", src, "-o", target, *options, *bundled, "--no-index",
                      "--find-links", folder, "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return target
