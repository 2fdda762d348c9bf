"""``lockfuzz.check``: one program, many schedules, inside a test the user writes with Hypothesis.

For users who want the plain Hypothesis way rather than a campaign::

    from hypothesis import given, settings
    from lockfuzz.strategies import programs

    @settings(deadline=None)  # one check runs many schedules: its time varies with the program
    @given(programs(max_cpus=2))
    def test_my_lock(program):
        lockfuzz.check(MyLock, program)

Without ``deadline=None``, an example that happens to run past Hypothesis's default deadline
fails as ``DeadlineExceeded``, passes when replayed, and the test reports a ``FlakyFailure``
instead of the lock's bug.

Hypothesis draws and shrinks the program; ``check`` tries ``runs`` schedules of the search
strategy on it (seeded from the program, so the same program always gets the same schedules)
and raises ``LockfuzzFailure`` at the first violation.

The failure's message carries the *minimised* schedule and its timeline, but it is worked out
only when the message is read: while Hypothesis shrinks, ``check`` fails many times over on
programs that are thrown away, and minimising each would cost more than the whole search.
Hypothesis tells failures apart by exception type and where they were raised, never by their
text, so a lazy message changes nothing in how it shrinks.
"""

from __future__ import annotations

import textwrap
from typing import Any

from hypothesis import reject
from hypothesis.control import currently_in_test_context

from .._engine._run import Engine, RunResult, Settings
from .._model._errors import InvalidArgument, ProgramError
from .._model._program import Program
from .._search import DEFAULT_STRATEGY, derive_seed, get_strategy
from .._model._target import resolve_target

__all__ = ["LockfuzzFailure", "check"]


class LockfuzzFailure(AssertionError):
    """A lock target broke a promise on a program: the message shows the minimal case.

    ``program``, ``schedule`` and ``result`` are the run as found; ``minimised`` (computed on
    first use) has the smallest program and schedule that fail the same way, and ``failure`` is
    it as a ``Failure`` that ``lockfuzz.write_failure`` saves as a replayable file.
    """

    def __init__(self, target_cls: type, params: dict[str, Any], program: Program, result: RunResult,
                 settings: Settings) -> None:
        assert result.violation is not None
        super().__init__(str(result.violation))
        self.target_cls = target_cls
        self.params = params
        self.program = program
        self.result = result
        self.schedule = list(result.decisions)
        self.settings = settings
        self.violation = result.violation
        self._minimised: Any = None
        self._text: str | None = None

    @property
    def minimised(self) -> Any:
        if self._minimised is None:
            from ._minimise import minimise

            self._minimised = minimise(self.target_cls, self.program, self.schedule, self.violation.signature,
                                       params=self.params, settings=self.settings)
        return self._minimised

    @property
    def failure(self) -> Any:
        from .._reports._failure_file import Failure

        m = self.minimised
        return Failure.from_run(self.target_cls, self.params, m.program, m.result, self.settings,
                                schedule=m.decisions, minimal=m.proven_minimal, program_minimal=m.program_minimal,
                                found_by={"check": True})

    def __str__(self) -> str:
        if self._text is None:
            self._text = _describe(self)
        return self._text


def _describe(exc: LockfuzzFailure) -> str:
    from .._reports._report import minimality, timeline, violation_text
    from .._model._target import target_path

    try:
        m = exc.minimised
        program, decisions, result, covers = m.program, m.decisions, m.result, m.covers
    except ValueError:  # the found schedule did not replay (a nondeterministic target): show it as found
        program, decisions, result = exc.program, exc.schedule, exc.result
        covers = minimality(False, None, 0)
    preemptions = sum(1 for d in decisions if d)
    lines = [
        f"{target_path(exc.target_cls)} {violation_text(result.violation)}",
        "",
        "program" + (" (minimised)" if program != exc.program else "") + ":",
        *("  " + line for line in program.describe().splitlines()),
        "",
        *textwrap.wrap(covers, 120, subsequent_indent="  ", break_on_hyphens=False),
        f"schedule: {len(decisions)} decisions, {preemptions} preemptions: {decisions}",
        timeline(result.trace, result.violation),
    ]
    return "\n".join(lines)


def check(
    target: Any,
    program: Program,
    *,
    runs: int = 50,
    strategy: Any = DEFAULT_STRATEGY,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> None:
    """Run ``program`` against ``target`` under up to ``runs`` schedules of ``strategy``.

    Returns None if no schedule breaks a promise; raises ``LockfuzzFailure`` (an
    ``AssertionError``) at the first violation. A program that misuses a lock or deadlocks a
    target that promised neither timeouts nor detection is the program's fault, never the
    target's: inside a Hypothesis test it is rejected (``hypothesis.reject()``), elsewhere it
    raises ``ProgramError``.
    """
    target_cls = resolve_target(target)
    if not isinstance(program, Program):
        raise InvalidArgument(f"program={program!r}: expected a lockfuzz.Program (from lockfuzz.strategies.programs())")
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise InvalidArgument(f"runs={runs!r}: expected an int >= 1")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidArgument(f"seed={seed!r}: expected an int")
    if settings is not None and not isinstance(settings, Settings):
        raise InvalidArgument(f"settings={settings!r}: expected a lockfuzz.Settings")
    settings = settings or Settings()
    params = dict(params or {})
    search = get_strategy(strategy).search(program, derive_seed(seed, program.to_json()))
    try:
        source = next(search)
        for _ in range(runs):
            try:
                result = Engine(target_cls, program, source, settings, params=params).run()
            except ProgramError:
                # Inside a Hypothesis test, a program unfit for this target (one that deadlocks a
                # lock which promised neither timeouts nor detection) is filtered out, as the
                # campaign does; ``programs_for(target)`` draws only fit ones.
                if currently_in_test_context():
                    reject()
                raise
            if result.violation is not None:
                raise LockfuzzFailure(target_cls, params, program, result, settings)
            source = search.send(result)
    except StopIteration:  # the strategy has tried every schedule it has (exhaustive search)
        pass
    finally:
        search.close()
