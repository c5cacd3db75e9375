"""Native code that does not fit: said in words a user reads right, every misfit at once."""

from __future__ import annotations

import os
import sys

import pytest

from packer._runtime.environment import _native_fits
from packer._runtime.errors import ArchiveError
from packer._runtime.format import NativeDist, RuntimeConfig
from packer._runtime.tags import describe_needs

HERE = sys.version_info[:2]
OLDER = f"cp{HERE[0]}{HERE[1] - 1}"
NEWER = f"cp{HERE[0]}{HERE[1] + 1}"
NEWER_WORDS = f"CPython {HERE[0]}.{HERE[1] + 1}"
#: A platform tag that fits this machine (the tests run on Linux).
LOCAL = f"linux_{os.uname().machine}"


@pytest.mark.parametrize(
    ("tags", "words"),
    [
        (["cp310-abi3-manylinux_2_17_x86_64"], "CPython 3.10 or newer"),
        (["cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64"],
         "CPython 3.11"),
        (["cp313-cp313t-linux_x86_64"], "free-threaded CPython 3.13"),
        (["pp310-pypy310_pp73-linux_x86_64"], "PyPy 3.10"),
        (["cp39-cp39-win_amd64", "cp310-cp310-win_amd64"], "CPython 3.9 or CPython 3.10"),
    ],
)  # fmt: skip
def test_what_native_code_needs_in_words(tags: list[str], words: str) -> None:
    assert describe_needs(tags, with_platform=False) == words


def test_the_platform_is_named_when_it_is_the_reason() -> None:
    needs = describe_needs(["cp312-cp312-macosx_11_0_arm64"], with_platform=True)
    assert needs == "CPython 3.12 on macosx_11_0_arm64"


def native(name: str, tag: str, optional: bool = False) -> NativeDist:
    return NativeDist(name, "1.0", "0" * 64, f"_packer/native/{name}", [tag], optional, [name])


def test_every_misfit_is_named_in_one_line() -> None:
    config = RuntimeConfig(
        native=[
            native("fits", f"{OLDER}-abi3-{LOCAL}"),
            native("alpha", f"{NEWER}-{NEWER}-{LOCAL}"),
            native("beta", "cp39-cp39-macosx_11_0_arm64"),
            native("gamma", f"{NEWER}-{NEWER}-{LOCAL}", optional=True),
        ]
    )
    with pytest.raises(ArchiveError) as caught:
        _native_fits("/some/app.pyz", config)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"app.pyz: alpha 1.0 needs {NEWER_WORDS}, beta 1.0 needs CPython 3.9 on "
        "macosx_11_0_arm64; this is Python "
    )
    assert "fits" not in message and "gamma" not in message


def test_an_optional_misfit_is_an_import_error_saying_why() -> None:
    config = RuntimeConfig(native=[native("gamma", f"{NEWER}-{NEWER}-{LOCAL}", True)])
    usable, unusable = _native_fits("/some/app.pyz", config)
    assert usable == []
    assert unusable["gamma"].startswith(f"app.pyz: gamma 1.0 needs {NEWER_WORDS}; this is Python")
