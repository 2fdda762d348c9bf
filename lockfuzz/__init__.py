"""lockfuzz: property-based fuzzing of lock implementations."""

from ._capabilities import Capabilities, Detection, Fairness, Timeouts
from ._engine import Context, DecisionSource, Engine, RunResult, Schedule, Settings, run
from ._errors import InvalidArgument, LockfuzzError, ProgramError, ReplayError, Violation
from ._events import Trace
from ._machine import Cell, Machine
from ._program import CpuProgram, Handler, Lock, OnError, Program, Unlock, Work
from ._status import Level, Status
from ._target import Target, resolve_target, target_path

__version__ = "0.1.0"

__all__ = [
    "Capabilities", "Cell", "Context", "CpuProgram", "DecisionSource", "Detection", "Engine",
    "Fairness", "Handler", "InvalidArgument", "Level", "Lock", "LockfuzzError", "Machine",
    "OnError", "Program", "ProgramError", "ReplayError", "RunResult", "Schedule", "Settings",
    "Status", "Target", "Timeouts", "Trace", "Unlock", "Violation", "Work", "__version__",
    "resolve_target", "run", "target_path",
]  # fmt: skip
