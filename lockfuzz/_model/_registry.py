"""Bundled target names, and third-party targets found through an entry-point group.

A package can offer targets to ``lockfuzz fuzz NAME`` by declaring, in its pyproject.toml::

    [project.entry-points."lockfuzz.targets"]
    mylock = "mypackage.locks:MyLock"
"""

from __future__ import annotations

from importlib.metadata import entry_points

__all__ = ["bundled_targets", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "lockfuzz.targets"

#: Correct targets shipped with lockfuzz (name -> import path).
BUNDLED = {
    "rqspinlock": "lockfuzz.targets.rqspinlock:RqSpinlock",
    "resilient_tas": "lockfuzz.targets.resilient_tas:ResilientTasLock",
    "tas": "lockfuzz.targets.tas:TasLock",
    "ticket": "lockfuzz.targets.ticket:TicketLock",
    "ttas": "lockfuzz.targets.ttas:TtasLock",
    "mcs": "lockfuzz.targets.mcs:McsLock",
    "qspinlock": "lockfuzz.targets.qspinlock:QSpinlock",
    # Shared and counted locks (#12): readers and writers, and semaphores of n permits.
    "qrwlock": "lockfuzz.targets.qrwlock:QRWLock",
    # Textbook algorithms over cells, written as their papers write them (plain loops).
    "peterson": "lockfuzz.targets.peterson:PetersonLock",
    "bakery": "lockfuzz.targets.bakery:BakeryLock",
    # Known broken on purpose (the kernel selftests' arena lock leaves its queue dirty when a
    # waiter gives up): shipped for the zoo, and as a real defect for lockfuzz to find.
    "arena_spinlock": "lockfuzz.targets.arena_spinlock:ArenaSpinlock",
    "ww_wait_die": "lockfuzz.targets.ww_mutex:WaitDieMutex",
    "ww_wound_wait": "lockfuzz.targets.ww_mutex:WoundWaitMutex",
    # Real trio code, run on the trio driver (each trio checkpoint is a decision).
    "trio_lock": "lockfuzz.targets.trio_locks:TrioLock",
    "trio_strict_fifo_lock": "lockfuzz.targets.trio_locks:TrioStrictFIFOLock",
    "trio_semaphore": "lockfuzz.targets.trio_locks:TrioSemaphore",
    "trio_capacity_limiter": "lockfuzz.targets.trio_locks:TrioCapacityLimiter",
    "trio_rwlock": "lockfuzz.targets.trio_locks:TrioRWLock",
    "anyio_lock": "lockfuzz.targets.trio_locks:AnyioLock",
}


def bundled_targets(*, mutants: bool = True) -> dict[str, str]:
    """Every target name ``resolve_target`` knows: bundled, mutants, then entry points."""
    names = dict(BUNDLED)
    if mutants:
        from lockfuzz.targets.mutants import MUTANTS

        names.update(MUTANTS)
    eps = entry_points()
    # Python 3.10+ has select(); 3.9 returns a dict of groups.
    group = eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else eps.get(ENTRY_POINT_GROUP, ())
    for ep in group:
        names.setdefault(ep.name, ep.value)
    return names
