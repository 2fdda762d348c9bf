"""lockfuzz: property-based fuzzing of lock implementations."""

from ._campaigns._campaign import CampaignReport, Found, fuzz
from ._model._capabilities import Capabilities, Detection, Fairness, Sharing, Timeouts
from ._campaigns._check import LockfuzzFailure, check
from ._engine._run import Context, DecisionSource, Engine, RunResult, Schedule, Settings, run
from ._model._errors import InvalidArgument, LockfuzzError, LockfuzzWarning, ProgramError, ReplayError, Violation
from ._engine._events import Trace
from ._reports._failure_file import Failure, ReplayOutcome, load_failure, replay, write_failure
from ._campaigns._minimise import Minimised, minimise
from ._engine._machine import Cell, Machine
from ._model._program import CpuProgram, Handler, Lock, OnError, Program, Unlock, Work
from ._oracles._properties import Acquisition, PropertyError, RunRecord
from ._reports._report import perfetto, timeline
from ._model._status import Level, Mark, Status
from ._model._target import Target, resolve_target, target_path
from ._trio._adapter import trio_target
from ._trio._budget import trio_budget

__version__ = "0.1.0"

__all__ = [
    "Acquisition", "CampaignReport", "Capabilities", "Cell", "Context", "CpuProgram", "DecisionSource", "Detection",
    "Engine", "Failure", "Fairness", "Found", "Handler", "InvalidArgument", "Level", "Lock",
    "LockfuzzError", "LockfuzzFailure", "LockfuzzWarning", "Machine", "Mark", "Minimised", "OnError", "Program",
    "ProgramError", "PropertyError", "ReplayError", "ReplayOutcome", "RunRecord", "RunResult", "Schedule", "Settings",
    "Sharing", "Status", "Target", "Timeouts", "Trace",
    "Unlock", "Violation", "Work", "__version__", "check", "fuzz", "load_failure", "minimise",
    "perfetto", "replay", "resolve_target", "run", "target_path", "timeline", "trio_budget", "trio_target",
    "write_failure",
]  # fmt: skip
