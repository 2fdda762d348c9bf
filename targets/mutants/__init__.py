"""Known-broken locks: each a small change to a correct target, each caught by an oracle.

``MUTANTS`` maps a name (as ``lockfuzz fuzz NAME`` takes it) to an import path.
"""

MUTANTS: dict[str, str] = {}
