"""The ``server`` fixture: the real daemon on a free port, always stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sample_server.tests.support import Server, kill_everything, start


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start(tmp_path, "--workers", "2")
    try:
        yield running
    finally:
        kill_everything(running)
