"""lockfuzz: property-based fuzzing of lock implementations."""

from ._campaign import CampaignReport, Found, fuzz
from ._capabilities import Capabilities, Detection, Fairness, Sharing, Timeouts
from ._check import LockfuzzFailure, check
from ._engine import Context, DecisionSource, Engine, RunResult, Schedule, Settings, run
from ._errors import InvalidArgument, LockfuzzError, LockfuzzWarning, ProgramError, ReplayError, Violation
from ._events import Trace
from ._failure_file import Failure, ReplayOutcome, load_failure, replay, write_failure
from ._minimise import Minimised, minimise
from ._machine import Cell, Machine
from ._program import CpuProgram, Handler, Lock, OnError, Program, Unlock, Work
from ._properties import Acquisition, PropertyError, RunRecord
from ._report import perfetto, timeline
from ._status import Level, Mark, Status
from ._target import Target, resolve_target, target_path
from ._trio_adapter import trio_target

__version__ = "0.1.0"

__all__ = [
    "Acquisition", "CampaignReport", "Capabilities", "Cell", "Context", "CpuProgram", "DecisionSource", "Detection",
    "Engine", "Failure", "Fairness", "Found", "Handler", "InvalidArgument", "Level", "Lock",
    "LockfuzzError", "LockfuzzFailure", "LockfuzzWarning", "Machine", "Mark", "Minimised", "OnError", "Program",
    "ProgramError", "PropertyError", "ReplayError", "ReplayOutcome", "RunRecord", "RunResult", "Schedule", "Settings",
    "Sharing", "Status", "Target", "Timeouts", "Trace",
    "Unlock", "Violation", "Work", "__version__", "check", "fuzz", "load_failure", "minimise",
    "perfetto", "replay", "resolve_target", "run", "target_path", "timeline", "trio_target", "write_failure",
]  # fmt: skip
