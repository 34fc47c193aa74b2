"""Hypothesis runs derandomized: the suite draws the same examples on every
run, so a result on one machine is the result on every machine (CI too).
``HYPOTHESIS_PROFILE=explore`` draws fresh random examples each run, to look
for new failures."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
