"""Targets, in process: parsing, platform tags, the runtime's choice, the merged layout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from packer._runtime.environment import choose_target
from packer._runtime.format import (
    SITE_PACKAGES,
    VARIANTS_FOLDER,
    NativeDist,
    RuntimeConfig,
    Target,
    Variant,
)
from packer._runtime.tags import platform_fits, tag_fits
from packer.dependencies import Distribution, Staged
from packer.errors import ArchiveError, ConfigError
from packer.targets import cached_pyc_name, find_interpreter, foreign_bytecode, merge, parse_target

LINUX_X86_64 = sys.platform.startswith("linux") and os.uname().machine == "x86_64"
needs_linux = pytest.mark.skipif(not LINUX_X86_64, reason="platform tags of linux x86_64")


@pytest.mark.parametrize(
    ("spec", "python", "platform"),
    [
        ("3.12", (3, 12), None),
        ("cp313", (3, 13), None),
        ("3.10:macos-arm64", (3, 10), "macos-arm64"),
        ("3.13:windows-amd64", (3, 13), "windows-amd64"),
    ],
)
def test_target_specs(spec: str, python: tuple[int, int], platform: str | None) -> None:
    target = parse_target(spec)
    assert target.python == python
    if platform:
        assert target.platform == platform


@pytest.mark.parametrize("spec", ["", "3", "python3.12", "3.8", "2.7", "3.12:beos", "3.12:"])
def test_bad_target_specs_are_one_line(spec: str) -> None:
    with pytest.raises(ConfigError, match="--target") as info:
        parse_target(spec)
    assert "\n" not in str(info.value)


@needs_linux
@pytest.mark.parametrize(
    ("platform", "fits"),
    [
        ("any", True),
        ("linux_x86_64", True),
        ("manylinux1_x86_64", True),
        ("manylinux2014_x86_64", True),
        ("manylinux_2_17_x86_64", True),
        ("manylinux_2_99_x86_64", False),  # needs a newer glibc than any machine has
        ("manylinux_2_17_aarch64", False),
        ("musllinux_1_1_x86_64", False),  # this is glibc
        ("macosx_11_0_arm64", False),
        ("macosx_10_9_x86_64", False),
        ("win_amd64", False),
    ],
)
def test_platform_tags_fit_as_pip_decides(platform: str, fits: bool) -> None:
    assert platform_fits(platform) is fits


@needs_linux
def test_a_macos_wheel_no_longer_fits_on_linux() -> None:
    here = "cp{}{}".format(*sys.version_info[:2])
    assert tag_fits(f"{here}-{here}-manylinux_2_17_x86_64.manylinux2014_x86_64", here)
    assert not tag_fits(f"{here}-{here}-macosx_11_0_arm64", here)
    assert not tag_fits(f"{here}-abi3-win_amd64", here)


def _config(*pythons: tuple[int, int], platform: str = "manylinux_2_17_x86_64") -> RuntimeConfig:
    targets = [Target(f"cp{p[0]}{p[1]}-{platform}", p, platform) for p in pythons]
    return RuntimeConfig(targets=targets)


@needs_linux
def test_the_runtime_takes_the_target_of_this_python() -> None:
    here = sys.version_info[:2]
    config = _config((3, 9), here, (3, 99))
    assert choose_target("app.pyz", config) == 1
    assert choose_target("app.pyz", RuntimeConfig()) is None


@needs_linux
def test_no_fitting_target_is_one_line_naming_them() -> None:
    with pytest.raises(ArchiveError) as info:
        choose_target("app.pyz", _config((3, 98), (3, 99)))
    message = str(info.value)
    assert message.startswith("app.pyz: built for CPython 3.98, 3.99 on manylinux_2_17_x86_64;")
    assert "this is CPython {}.{}".format(*sys.version_info[:2]) in message
    assert "\n" not in message
    here = sys.version_info[:2]
    with pytest.raises(ArchiveError, match="on macosx_13_0_arm64; this is"):
        choose_target("app.pyz", _config(here, platform="macosx_13_0_arm64"))


def test_targets_and_variants_round_trip_and_are_checked() -> None:
    config = RuntimeConfig(
        SITE_PACKAGES,
        [("click", "8", "click-8.dist-info")],
        targets=[Target("cp310-x", (3, 10), "x"), Target("cp312-x", (3, 12), "x")],
        variants=[Variant(f"{VARIANTS_FOLDER}/eg-1-abc", [("eg", "1", "eg-1.dist-info")], [0])],
        native=[NativeDist("m", "1", "0" * 64, "_packer/native/m-1-a/", ("t",), targets=[1])],
        sources="ab" * 32,
    )
    again = RuntimeConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()
    bad = [
        ("targets", [{"name": "x", "python": ["3", 10], "platform": "x"}]),
        ("variants", [{"folder": "../escape", "dists": [], "targets": [0]}]),
        ("variants", [{"folder": f"{VARIANTS_FOLDER}/a/b", "dists": [], "targets": [0]}]),
        ("variants", [{"folder": f"{VARIANTS_FOLDER}/a", "dists": [], "targets": [7]}]),
        ("variants", [{"folder": f"{VARIANTS_FOLDER}/a", "dists": [], "targets": []}]),
        ("sources", "../../escape"),  # it names a cache folder
        ("sources", "AB" * 32),
        ("sources", 12),
    ]
    for key, value in bad:
        broken = config.to_dict()
        broken[key] = value
        with pytest.raises(ArchiveError) as info:
            RuntimeConfig.from_dict(broken)
        assert "\n" not in str(info.value)


def _staged(root: Path, files: dict[str, dict[str, str]]) -> Staged:
    """A staging folder holding distributions {dist-info name: {file: text}}."""
    dists = []
    for info, contents in files.items():
        name, version = info.removesuffix(".dist-info").split("-")
        for rel, text in contents.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        dists.append(Distribution(name, version, info, sorted(contents)))
    return Staged(root, dists, [])


def test_merge_shares_what_every_target_has_alike(tmp_path: Path) -> None:
    targets = [parse_target("3.10"), parse_target("3.12")]
    same = {"click-8.dist-info": {"click/__init__.py": "x = 1\n"}}
    first = _staged(tmp_path / "a", {**same, "eg-1.dist-info": {"eg.py": "backport\n"},
                                     "m-1.dist-info": {"m/_m.cpython-310.so": "elf"}})  # fmt: skip
    second = _staged(tmp_path / "b", {**same, "m-1.dist-info": {"m/_m.cpython-312.so": "elf"}})
    merged = merge(targets, [first, second])
    by = {(d.name, d.targets): d for d in merged.distributions}
    assert by[("click", ())].prefix == SITE_PACKAGES
    assert by[("eg", (0,))].prefix.startswith(VARIANTS_FOLDER + "/eg-1-")
    native = [d for d in merged.distributions if d.name == "m"]
    assert sorted(d.targets for d in native) == [(0,), (1,)]
    assert len({d.prefix for d in native}) == 2 and merged.targets == tuple(targets)


def test_bytecode_for_another_installed_python(tmp_path: Path) -> None:
    other = next(
        (
            v
            for v in [(3, 12), (3, 13), (3, 10)]
            if v != sys.version_info[:2] and find_interpreter(v)
        ),
        None,
    )
    assert other is not None, "the tests need a second CPython (pyenv's 3.10, 3.12 or 3.13)"
    source = tmp_path / "mod.py"
    source.write_text("VALUE = {'a', 'b', 'c'}\n")
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    targets = [parse_target(f"{other[0]}.{other[1]}"), parse_target("3.99")]
    members, warnings = foreign_bytecode(
        [("pkg/mod.py", source, ()), ("pkg/broken.py", broken, ())], targets, tmp_path / "w", 2
    )
    name = cached_pyc_name("pkg/mod.py", other)
    assert name == f"pkg/__pycache__/mod.cpython-{other[0]}{other[1]}.pyc"
    assert [m[0] for m in members] == [name]  # the broken one is left to its source
    assert warnings == [
        "CPython 3.99: packer cannot make that Python's bytecode reproducible, so that "
        "target's modules are stored without it and compile at each start"
    ]
    data = members[0][1].read_bytes()
    assert data[4:8] == (1).to_bytes(4, "little") and len(data) > 16


def test_a_target_python_not_installed_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HOME", "PYENV_ROOT", "PATH"):
        monkeypatch.setenv(name, str(tmp_path))
    source = tmp_path / "mod.py"
    source.write_text("VALUE = 1\n")
    members, warnings = foreign_bytecode(
        [("mod.py", source, ())], [parse_target("3.9")], tmp_path / "w", 1
    )
    assert members == []
    assert warnings == [
        "no CPython 3.9 on this machine: that target's modules are stored without bytecode "
        "and compile at each start"
    ]
