"""The engine: one run of a program under a schedule.

``_run`` (``Engine``: its hot loop and decision point; ``run``), ``_schedules`` (decision
sources, ``Schedule``, ``Settings``), ``_context`` (``Context``, ``RunResult``), ``_waiting``
(blocking, waking, deadlines), ``_spinning`` (a loop that changes nothing is a wait),
``_final_check`` (after the run, a fresh context takes every lock), ``_machine`` (the simulated CPUs,
cells and virtual clock), ``_interpreter`` (a context's line of operations, and how a target is
called), ``_events`` (what a run records: the trace), ``_watchdog`` (a step that never yields).
Private: the public API is ``lockfuzz``.
"""
