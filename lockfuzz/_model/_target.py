"""The target protocol: what a user writes to put a lock under test.

A target is a class constructed once per run with the machine (and its own parameters). It
allocates its cells in ``__init__`` and implements two coroutines over them::

    class Spinlock(lockfuzz.Target):
        capabilities = lockfuzz.Capabilities()

        def __init__(self, machine):
            self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

        async def acquire(self, ctx, lock, budget_ns):
            while await self.words[lock].xchg(1):
                await self.words[lock].wait_until(lambda v: v == 0)
            return lockfuzz.Status.OK

        async def release(self, ctx, lock):
            await self.words[lock].store(0)

Only lockfuzz cell operations (and ``machine.sleep_until``) may be awaited: each is one step.
``check()`` may return a list of broken invariants, run once every program has finished.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any, ClassVar

from ._capabilities import Capabilities
from ._errors import InvalidArgument
from ._status import Status

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Context
    from .._engine._machine import Machine

__all__ = ["Target", "resolve_target", "target_path"]


class Target:
    """Base class of lock targets (subclassing is optional: the protocol is duck-typed)."""

    #: What the target promises; the oracles hold it to exactly this.
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: Modules the target imports only when it runs (optional dependencies, such as ``anyio``):
    #: one that is not installed is a usage error when the target is named, not a finding.
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:  # pragma: no cover
        raise NotImplementedError

    async def release(self, ctx: Context, lock: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def check(self) -> list[str]:
        """Invariants of the idle lock, checked after every program has unwound."""
        return []


def target_path(cls: type) -> str:
    """The import path ``package.module:Class`` that ``resolve_target`` turns back into ``cls``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_target(spec: str | type) -> type:
    """A target class from a bundled name (``rqspinlock``), an import path
    (``package.module:Class``) or the class itself."""
    if isinstance(spec, type):
        _check_target_class(spec, repr(spec))
        return spec
    if not isinstance(spec, str) or not spec:
        raise InvalidArgument(f"target={spec!r}: expected a bundled target name or 'package.module:Class'")
    if ":" not in spec:
        from ._registry import bundled_targets

        bundled = bundled_targets()
        if spec not in bundled:
            raise InvalidArgument(
                f"unknown target {spec!r}: expected one of {', '.join(sorted(bundled))} "
                "or an import path 'package.module:Class'" + _path_hint(spec)
            )
        spec = bundled[spec]
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgument(
            f"target {spec!r}: cannot import module {module_name!r} ({exc})" + _path_hint(module_name)
        ) from None
    except Exception as exc:  # the user's module itself is broken: say so, keep going
        raise InvalidArgument(
            f"target {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise InvalidArgument(f"target {spec!r}: module {module_name!r} has no attribute {attr!r}")
    _check_target_class(obj, spec)
    return obj  # type: ignore[no-any-return]


def _path_hint(spec: str) -> str:
    """For a file path given where an import path belongs (``./mylock.py``): the form to write."""
    if not (spec.endswith(".py") or "/" in spec or "\\" in spec):
        return ""
    module = spec.replace("\\", "/").rpartition("/")[2].removesuffix(".py")
    return (f"; {spec} looks like a file: name the class in it as module:Class, e.g. '{module}:MyLock', "
            "from the file's directory")


def _check_target_class(obj: object, spec: str) -> None:
    if not isinstance(obj, type) or not callable(getattr(obj, "acquire", None)) or not callable(
        getattr(obj, "release", None)
    ):
        raise InvalidArgument(f"target {spec}: expected a class with async acquire() and release(), got {obj!r}")
    caps = getattr(obj, "capabilities", None)
    if not isinstance(caps, Capabilities):
        raise InvalidArgument(f"target {spec}: capabilities={caps!r}, expected a lockfuzz.Capabilities")
    for module in getattr(obj, "requires", ()):
        if importlib.util.find_spec(module) is None:
            raise InvalidArgument(
                f"target {spec} needs the module {module!r}, which is not installed here: pip install {module}"
            )
