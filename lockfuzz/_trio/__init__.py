"""The trio driver: real trio code run as a target.

``_driver`` (``TrioEngine``: every trio checkpoint a decision, cancellation, virtual time),
``_adapter`` (``lockfuzz.trio_target``: a trio lock object as a target in one line), ``_budget``
(``lockfuzz.trio_budget``: an acquisition's budget as a cancel scope, timed to the nanosecond) and
``_internals`` (the few trio internals the driver steers, and why). Private: the public API is
``lockfuzz``.
"""
