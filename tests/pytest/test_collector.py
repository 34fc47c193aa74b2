"""The collector pause around bulk IR construction restores the collector's
state, also when the block fails."""

from __future__ import annotations

import gc

import pytest

from cimflow.collector import paused_collector


def test_the_collector_is_paused_inside_and_restored_after() -> None:
    assert gc.isenabled()
    with paused_collector():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_restored_after_an_error() -> None:
    with pytest.raises(ValueError, match="bad"), paused_collector():
        raise ValueError("bad")
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with paused_collector():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
