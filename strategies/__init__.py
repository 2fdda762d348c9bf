"""Hypothesis strategies for lockfuzz (installed as ``lockfuzz.strategies``).

In Hypothesis's own style: functions named by plural nouns, keyword-only arguments with
defaults, ``min_*``/``max_*`` bounds, and a clear ``InvalidArgument`` that shows a bad value.
Programs are drawn as lists (of CPUs, of critical sections, of nested sections), so the
shrinker reaches smaller programs by deleting list elements: fewer CPUs, fewer sections,
shallower nesting, no interrupts, shorter work and budgets.
"""

from ._programs import (
    budgets, budgets_for, capabilities_for, interrupts_for, programs, programs_for, programs_like, schedules,
)
from ._scenarios import detection_scenarios

__all__ = [
    "budgets", "budgets_for", "capabilities_for", "detection_scenarios", "interrupts_for", "programs", "programs_for",
    "programs_like", "schedules",
]
