"""Sharded campaigns on this machine's cores (``--workers N``) and the driver shared with Dask.

The shards (``_shards.run_shard``) run in a process pool of the ``spawn`` context (a fresh
interpreter per worker: no state inherited from the parent, the same as on any other machine),
``multiprocessing.Pool`` because it can ``terminate()`` its workers: a campaign that stops early
or is interrupted ends every worker at once. Workers ignore SIGINT (Ctrl-C reaches the whole
process group): the parent alone decides, terminates the pool and lets ``KeyboardInterrupt`` go
on. What the workers found is already in the failure folder: each shard writes a failure the
moment it sees it, as a single campaign does.

``ShardCampaign`` is the part every runner shares (this pool, one process in a row, Dask): it
takes shard results in whatever order they finish, writes the failures of shards that could not
write them (remote ones), keeps one progress line for all shards, says when to stop, and makes
the merged report (``_shards.Merger``: the same whichever shard finished first).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._reports._failure_file import Failure, write_failure
from ._shards import Merger, ShardResult, ShardSpec, run_shard, settle

__all__ = ["ShardCampaign", "available_cores", "run_pool", "run_serial"]


def available_cores() -> int:
    """The cores this process may run on (``--workers auto``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        return os.cpu_count() or 1


@dataclass
class Snapshot:
    """What the progress line shows: every shard's runs so far, and the distinct failures."""

    runs: int
    seconds: float
    found: list[tuple[str, str]] = field(default_factory=list)

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


class ShardCampaign:
    def __init__(self, specs: Sequence[ShardSpec], *, max_failures: int, failure_dir: Path | None,
                 progress: Callable[[Any], None] | None = None) -> None:
        self.specs = list(specs)
        self.merger = Merger(len(self.specs), max_failures)
        self.failure_dir = failure_dir
        self.progress = progress
        self.live: dict[int, tuple[int, list[tuple[str, str]]]] = {}  # shard -> (runs, signatures)
        self.started = time.perf_counter()
        self.next_progress = 0.0

    def on_progress(self, index: int, runs: int, signatures: Sequence[Sequence[str]]) -> None:
        if index not in self.merger.results:
            self.live[index] = (runs, [(str(s[0]), str(s[1])) for s in signatures])

    def on_result(self, result: ShardResult) -> bool:
        """Take a finished shard; True when the campaign should stop."""
        self.live.pop(result.index, None)
        if self.failure_dir is not None:
            for f in result.found:
                if f["path"] is None:  # a shard on another machine: its findings are written here
                    f["path"] = str(write_failure(Failure.from_json(f["failure"]), self.failure_dir))
        self.merger.add(result)
        self.tick()
        return self.merger.stop

    def snapshot(self) -> Snapshot:
        runs = sum(r.runs for r in self.merger.results.values()) + sum(n for n, _ in self.live.values())
        sigs = {s for r in self.merger.results.values() for s in r.signatures()}
        sigs.update(s for _, ss in self.live.values() for s in ss)
        return Snapshot(runs, time.perf_counter() - self.started, sorted(sigs))

    def tick(self) -> None:
        """Show the progress line, at most twice a second."""
        if self.progress is None:
            return
        now = time.perf_counter()
        if now >= self.next_progress:
            self.next_progress = now + 0.5
            self.progress(self.snapshot())

    def report(self) -> Any:
        if self.progress is not None:  # the last word, as a single campaign's
            self.progress(self.snapshot())
        report = self.merger.report(seconds=time.perf_counter() - self.started)
        settle(report, self.merger.counted(), self.failure_dir)
        return report


def run_serial(campaign: ShardCampaign) -> None:
    """The shards one after another in this process (``--workers 1 --shards M``)."""
    for spec in campaign.specs:
        def progress(runs: int, signatures: list[tuple[str, str]], index: int = spec.index) -> None:
            campaign.on_progress(index, runs, signatures)
            campaign.tick()

        if campaign.on_result(run_shard(spec, progress)):
            return


# -- the process pool ------------------------------------------------------------------------------
_progress_queue: Any = None


def _init_worker(progress_queue: Any) -> None:  # pragma: no cover - runs in a worker process
    global _progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _progress_queue = progress_queue


def _pool_shard(spec: ShardSpec) -> ShardResult:  # pragma: no cover - runs in a worker process
    q = _progress_queue
    q.put(("start", spec.index, os.getpid()))

    def progress(runs: int, signatures: list[tuple[str, str]]) -> None:
        q.put(("progress", spec.index, runs, [list(s) for s in signatures]))

    return run_shard(spec, progress)


def run_pool(campaign: ShardCampaign, workers: int) -> None:
    """The shards on ``workers`` processes, results taken as they finish.

    ``multiprocessing.Pool`` replaces a worker that dies (killed, out of memory, a target that
    calls ``os._exit``) and never says so: each worker says which shard it starts, and a shard
    whose worker is gone before its result came back fails the campaign instead of waiting for it.
    """
    ctx = multiprocessing.get_context("spawn")
    progress_queue = ctx.SimpleQueue()  # put() writes at once: a worker that dies next has said it
    done: queue.SimpleQueue[Any] = queue.SimpleQueue()
    pool = _start_pool(ctx, min(workers, len(campaign.specs)), progress_queue)
    running: dict[int, int] = {}  # shard -> pid of the worker running it
    try:
        for spec in campaign.specs:  # in shard order: the first shards finish first
            pool.apply_async(_pool_shard, (spec,), callback=done.put, error_callback=done.put)
        pending = len(campaign.specs)
        while pending:
            _drain(progress_queue, campaign, running)
            try:
                item = done.get(timeout=0.1)
            except queue.Empty:
                _check_alive(campaign, running, done)
                campaign.tick()
                continue
            pending -= 1
            if isinstance(item, BaseException):
                raise item  # a bug in lockfuzz or the target, with the worker's traceback as its cause
            running.pop(item.index, None)
            if campaign.on_result(item):
                return
    finally:
        pool.terminate()
        pool.join()
        progress_queue.close()


def _start_pool(ctx: Any, processes: int, progress_queue: Any) -> Any:
    """The pool, its workers started with SIGINT ignored from their first instruction (the
    disposition survives exec, and Python keeps an ignored SIGINT ignored): a Ctrl-C while a
    worker is still importing cannot kill it half-started. This process ignores SIGINT only
    while it starts them, and only from the main thread (the only one that may set handlers)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        return ctx.Pool(processes, initializer=_init_worker, initargs=(progress_queue,))
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _drain(progress_queue: Any, campaign: ShardCampaign, running: dict[int, int]) -> None:
    while not progress_queue.empty():  # this process is its only reader
        message = progress_queue.get()
        if message[0] == "start":
            if message[1] not in campaign.merger.results:  # (a start may arrive after the result)
                running[message[1]] = message[2]
        else:
            campaign.on_progress(*message[1:])


def _check_alive(campaign: ShardCampaign, running: dict[int, int], done: queue.SimpleQueue[Any]) -> None:
    for index, pid in list(running.items()):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            if not done.empty():  # its result may have come in meanwhile: take it first
                return
            spec = campaign.specs[index]
            raise RuntimeError(
                f"the worker process running shard {spec.label} (pid {pid}) died before the shard finished: "
                f"killed, out of memory, or the target ended the process; 'lockfuzz fuzz --shard {spec.label}' "
                "runs that shard alone"
            ) from None


def fuzz_sharded(*, shards: int | None, workers: int, dask: str | None, failure_dir: Path | None,
                 max_failures: int, progress: Callable[[Any], None] | None = None,
                 **spec: Any) -> tuple[Any, int]:
    """A campaign as shards (``plan``): on ``workers`` processes here, or on the Dask cluster at
    ``dask`` (``local``: a ``LocalCluster`` of ``workers`` processes). The number of shards is
    ``shards``, else one per worker (here) or four per worker thread of the cluster (Dask), at
    most one per run. Returns the merged report and the number of shards."""
    from ._shards import plan

    client = cluster = None
    try:
        if dask is not None:
            from ._dask import cluster_threads, connect

            client, cluster = connect(dask, workers)
            count = shards or min(spec["runs"], 4 * cluster_threads(client))
        else:
            count = shards or min(spec["runs"], workers)
        remote = dask is not None and dask != "local"  # a remote worker's folders are not ours
        where = None if failure_dir is None or remote else str(failure_dir)
        campaign = ShardCampaign(plan(count, failure_dir=where, max_failures=max_failures, **spec),
                                 max_failures=max_failures, failure_dir=failure_dir, progress=progress)
        if client is not None:
            from ._dask import run_dask

            run_dask(campaign, client)
        elif workers > 1 and count > 1:
            run_pool(campaign, workers)
        else:
            run_serial(campaign)
    finally:
        if client is not None:
            from ._dask import close

            close(client, cluster)  # the cluster's workers stop: none of them writes in the folder any more
    return campaign.report(), count
