"""Fixtures for tests/e2e: the emulator as `gpufleet` runs it (build/emulator.json), started once per module."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def running_emulator():
    """The emulator the CLI finds (started here, and stopped afterwards, if none was running)."""
    from infra import emulator

    info, started = emulator.start()
    yield info
    if started:
        emulator.stop()
