"""Pausing Python's cyclic garbage collector around bulk IR construction.

Lowering a large model builds 10^5 operations, each a small cycle of
objects (op, results, uses) that stays alive; the collector's full passes
over them grow with the module and found nothing to free. They are paused
while a module is built and run once afterwards as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Generator
from contextlib import contextmanager


@contextmanager
def paused_collector() -> Generator[None]:
    """Disable the cyclic collector inside the block (restored after it,
    also on error; reference counting still frees acyclic garbage)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
