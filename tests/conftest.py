"""Fixtures shared by the tests, and which tests a plain ``pytest`` runs; the helpers
themselves are in helpers.py.

A plain ``pytest`` in a checkout runs the quick, offline part of the suite. Tests that reach
PyPI (through the fixtures that fetch wheels or build app.pyz) are marked ``network``, long
ones ``slow``; ``pytest --all`` (the README's test command, and CI) runs everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    REPO,
    QuickStart,
    port_is_free,
    readme_env,
    readme_section,
    sh_blocks,
    write_tree,
)

#: Fixtures that fetch from PyPI: any test that uses one needs the network.
_NETWORK_FIXTURES = frozenset({"quick_start", "wheelhouse"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all",
        action="store_true",
        help="run the whole suite, network and slow tests included (CI does)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _NETWORK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)
    if config.getoption("--all") or config.getoption("-m"):
        return
    kept, left = [], []
    for item in items:
        quick = item.get_closest_marker("slow") is None
        offline = item.get_closest_marker("network") is None
        (kept if quick and offline else left).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """Build a source tree under tmp_path from a dict of file contents."""

    def make(files: dict[str, str | bytes], name: str = "src") -> Path:
        return write_tree(tmp_path / name, files)

    return make


@pytest.fixture(scope="session")
def quick_start(tmp_path_factory: pytest.TempPathFactory) -> QuickStart:
    """The first Quick start command, run word for word once per session: build.py builds
    app.pyz, which starts the server in the foreground; it is then stopped with Ctrl-C.

    It runs in a scratch folder linking to build.py and examples/, so app.pyz (build.py
    writes it to the current folder) does not land in the checkout.
    """
    folder = tmp_path_factory.mktemp("checkout")
    (folder / "build.py").symlink_to(REPO / "build.py")
    (folder / "examples").symlink_to(REPO / "examples")
    command = sh_blocks(readme_section("Quick start"))[0]
    if not port_is_free(9002):
        command += " --port 0"  # the default port is taken here; the command is the same
    stdout = folder.parent / f"{folder.name}.stdout"
    with stdout.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", command], cwd=folder, env=readme_env(folder), text=True,
            stdout=out, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
    err: list[str] = []
    serving = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            if "listening on" in line:
                serving.set()
        serving.set()  # ended without serving: its output says why

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        # The build fetches pinned wheels on a fresh machine (minutes at worst); then the
        # server logs that it is listening.
        serving.wait(timeout=600)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
    return QuickStart(folder, command, proc.returncode, stdout.read_text(), "".join(err))
