"""Shared test setup: the Hypothesis profiles, and ``support`` importable from every test folder."""

from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

# CI: derandomized and bounded, so a run never flakes; "deep" for long local or tox runs.
settings.register_profile(
    "ci", derandomize=True, max_examples=30, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep", max_examples=2000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("LOCKFUZZ_PROFILE", "ci"))
