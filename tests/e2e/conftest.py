"""Fixtures of the end-to-end tests: the bundled emulator (build/emulator.json)."""

from __future__ import annotations

import pytest

from infra import emulator


@pytest.fixture(scope="module")
def running_emulator():
    """The bundled emulator (build/emulator.json), started for the module unless one runs; stopped if started."""
    info, started = emulator.start()
    yield info
    if started:
        emulator.stop()
