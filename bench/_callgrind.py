"""Counting a child process's instructions under valgrind's callgrind (the ``*_instructions.py``
benchmarks): on a shared machine the same code times 2-3 times apart from one round to the next,
while its instructions vary by about 1% (garbage collection and the order of sets of objects
follow memory addresses), so two versions compare by instructions where timings cannot."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def instructions(script: str, args: list[str]) -> int:
    """The instructions valgrind counts for ``python script *args`` (hash seed fixed)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script, *args],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1))
