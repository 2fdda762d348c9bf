"""The engine: one run of a program under a schedule.

``_run`` (``Engine``, its hot loop, ``Settings``, ``run``), ``_machine`` (the simulated CPUs,
cells and virtual clock), ``_interpreter`` (a context's line of operations, and how a target is
called), ``_events`` (what a run records: the trace), ``_watchdog`` (a step that never yields).
Private: the public API is ``lockfuzz``.
"""
