"""Shards on a Dask distributed cluster (``--dask ADDRESS``, ``--dask local``): the optional
``dask`` extra (``pip install 'lockfuzz[dask]'``).

Everything a cluster does is Dask's own: ``Client.submit`` puts each shard on the cluster (the
scheduler places and balances them, retries them on a worker that died), ``as_completed`` hands
them back as they finish, ``LocalCluster`` starts a scheduler and worker processes on this
machine, and progress travels as Dask events (``Worker.log_event`` on the worker,
``Client.subscribe_topic`` here). Nothing here schedules anything.

Limits, as Dask has them: a shard that is already running when the campaign stops (its
``--max-failures`` reached, or Ctrl-C) runs to its end on a remote worker, its result dropped
(Dask does not interrupt a running task; ``--dask local`` closes its own cluster, which ends
them). Every worker needs lockfuzz and the target importable by the same path: install both in
the workers' environment.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from typing import Any

from .._model._errors import InvalidArgument
from ._shards import ShardResult, ShardSpec, run_shard
from ._workers import ShardCampaign

__all__ = ["check_address", "close", "connect", "run_dask"]

#: Seconds to wait for a remote scheduler before saying it cannot be reached.
CONNECT_TIMEOUT = 10.0

#: Seconds to wait for the client, then ``--dask local``'s cluster, to close. Dask's synchronous
#: close can wait forever on Python 3.11: a cancellation meant for one of the cluster's own
#: tasks reaches the close coroutine, and the thread waiting on it is never woken (the hang of
#: dask/distributed#8394). Seen here with distributed 2026.8 in about half of the ``--dask
#: local`` runs under ``coverage run``, after the workers had already stopped. The campaign's
#: report is complete before the close starts, so a close that does not finish costs this many
#: seconds, never the report.
CLOSE_TIMEOUT = 10.0

_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|inproc|ucx)://[^\s/:]+(:\d{1,5})?/?$")


def check_address(text: str) -> str:
    """``local`` or a scheduler address (``tcp://HOST:8786``); else ``InvalidArgument``."""
    if text == "local" or _ADDRESS.match(text):
        return text
    raise InvalidArgument(
        f"--dask {text!r}: expected 'local' or a Dask scheduler address such as tcp://HOST:8786"
    )


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise InvalidArgument(
            "--dask needs Dask distributed, which is not installed: pip install 'lockfuzz[dask]'"
        ) from None
    return distributed


def connect(address: str, workers: int, timeout: float | None = None) -> tuple[Any, Any]:
    """A client of the cluster at ``address`` (and the cluster, for ``local``: ``workers``
    worker processes of one thread each)."""
    distributed = _distributed()
    check_address(address)
    if address == "local":
        import logging

        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",  # any free port
            silence_logs=logging.CRITICAL,  # its workers say what goes wrong by raising in the shard
        )
        return distributed.Client(cluster), cluster
    timeout = timeout if timeout is not None else CONNECT_TIMEOUT
    _probe(address, timeout)
    try:
        return distributed.Client(address, timeout=timeout), None
    except (OSError, TimeoutError) as exc:
        raise _unreachable(address, exc) from None


def _unreachable(address: str, exc: BaseException) -> InvalidArgument:
    return InvalidArgument(f"--dask {address}: cannot reach a Dask scheduler there ({exc})")


def _probe(address: str, timeout: float) -> None:
    """Refuse a ``tcp://HOST:PORT`` where nothing listens before Dask tries it: a Dask client
    whose connection failed left its event-loop thread behind, which once kept the process from
    exiting (seen in CI under coverage: the command line waited past 120 s after printing its
    error). A plain socket connects or fails within ``timeout`` and leaves nothing running."""
    m = re.match(r"^tcp://([^\s/:]+):(\d{1,5})/?$", address)
    if m is None:
        return  # other protocols, or Dask's default port: Dask's own connection says
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout).close()
    except OSError as exc:
        raise _unreachable(address, exc) from None


def close(client: Any, cluster: Any, timeout: float = CLOSE_TIMEOUT) -> None:
    """Close the client, then the cluster ``connect`` started (if any), each within ``timeout``.

    A close that does not finish in time is left behind (see ``CLOSE_TIMEOUT``): the cluster's
    workers are its daemonic child processes, which end with this process at the latest. Its
    status is then set to closed, so that Dask's own exit hook does not wait for it again."""
    try:
        client.close(timeout=timeout)
    except TimeoutError:  # pragma: no cover - Dask's hang, not met on every run
        pass
    if cluster is None:
        return
    try:
        cluster.close(timeout=timeout)
    except TimeoutError:
        from distributed.core import Status

        cluster.status = Status.closed  # Dask's exit hook closes every cluster not marked closed


def cluster_threads(client: Any) -> int:
    """The worker threads of the cluster now (the default number of shards is four per thread)."""
    info = client.scheduler_info()
    return sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()) or 1


def _dask_shard(spec: ShardSpec, topic: str) -> ShardResult:  # pragma: no cover - runs on a Dask worker
    """A shard on a Dask worker, its progress sent as Dask events."""
    import warnings

    from distributed import get_worker
    from hypothesis.errors import HypothesisDeprecationWarning

    # Hypothesis warns when the global ``random`` changed while it drew an example; on a Dask
    # worker, the worker's own threads use it. Campaigns draw from their own seeded generators
    # only (the shard's result is the same as in any process: tests/fast/test_scale_cli.py).
    warnings.filterwarnings("ignore", "Do not use the `random` module inside strategies",
                            HypothesisDeprecationWarning)
    worker = get_worker()

    def progress(runs: int, signatures: list[tuple[str, str]]) -> None:
        worker.log_event(topic, {"shard": spec.index, "runs": runs, "found": [list(s) for s in signatures]})

    return run_shard(spec, progress)


def run_dask(campaign: ShardCampaign, client: Any) -> None:
    """The shards on the cluster, merged as they finish."""
    distributed = _distributed()
    topic = f"lockfuzz-progress-{uuid.uuid4().hex}"

    def on_event(event: Any) -> None:
        _, msg = event
        campaign.on_progress(int(msg["shard"]), int(msg["runs"]), msg["found"])

    client.subscribe_topic(topic, on_event)
    futures = [client.submit(_dask_shard, spec, topic, pure=False, key=f"lockfuzz-shard-{spec.label}-{topic[-8:]}")
               for spec in campaign.specs]
    finished = distributed.as_completed(futures)
    try:
        while not finished.is_empty():
            if not finished.has_ready():
                campaign.tick()
                time.sleep(0.05)
                continue
            for future in finished.next_batch(block=False):
                if campaign.on_result(future.result()):
                    return
    finally:
        client.cancel(futures)
        try:
            client.unsubscribe_topic(topic)
        except Exception:  # noqa: BLE001 # pragma: no cover - a client already closing
            pass
