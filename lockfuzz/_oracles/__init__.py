"""The oracles, one property per module (DESIGN.md, "Oracles (exact meaning)").

``default_oracles()`` makes a fresh set for one run. Hang and livelock are not event oracles:
the engine raises them (``hang.hang_violation``, ``livelock.livelock_violation``) when it finds
no context to run or runs out of steps.
"""

from __future__ import annotations

from ._base import Oracle
from .bounded_waiting import BoundedWaiting
from .bystander import InnocentBystander
from .edeadlk_complete import EdeadlkComplete
from .edeadlk_sound import EdeadlkSound
from .etimedout import EtimedoutAttribution
from .fairness import FairnessOracle
from .final_state import FinalState
from .mutual_exclusion import MutualExclusion
from .ownership import Ownership
from .preference import PreferenceOracle

__all__ = [
    "BoundedWaiting", "EdeadlkComplete", "EdeadlkSound", "EtimedoutAttribution", "FairnessOracle",
    "FinalState", "InnocentBystander", "MutualExclusion", "Oracle", "Ownership", "PreferenceOracle",
    "default_oracles",
]  # fmt: skip

ORACLE_NAMES = (
    "mutual-exclusion", "ownership", "final-state", "bounded-waiting", "fairness", "hang",
    "livelock", "edeadlk-sound", "edeadlk-complete", "etimedout", "innocent-bystander",
)  # fmt: skip


def default_oracles() -> list[Oracle]:
    return [
        Ownership(), MutualExclusion(), FinalState(), EdeadlkSound(), InnocentBystander(),
        EdeadlkComplete(), EtimedoutAttribution(), BoundedWaiting(), FairnessOracle(), PreferenceOracle(),
    ]
