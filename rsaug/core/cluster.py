"""Dask distributed execution of work units: the connection to a scheduler and the one way stages run work on it.

``rsaug tile`` and ``rsaug synthesize`` run their work units (tile rows, batches of generator inputs) in their own
process or thread pool by default. Given a scheduler (``--scheduler``) they spread the same units over a Dask
cluster instead::

    --scheduler tcp://10.0.0.5:8786   # a running scheduler (`dask scheduler`, workers: `dask worker ADDRESS`)
    --scheduler local:4               # a distributed.LocalCluster of 4 worker processes on this machine

Results travel as files on a filesystem every worker and the client see at the same paths; through the scheduler
go only the units' descriptions and small per-unit results (class counts, timings), never pixels. A unit a dead
worker was running is re-run by Dask on another worker (every file is written atomically, so a unit is
idempotent); when the client dies, the command's ``--resume`` continues from the files already written.

:func:`connect` opens the client (an unreachable address is a one-line :class:`InputError`),
:func:`check_paths` checks that every worker sees the run's inputs and output before anything is written, and
:class:`DaskMap` runs a function over units with a bounded number of tasks in flight, in unit order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsaug.core.errors import InputError, RsaugError, option, portable_call

LOCAL_PREFIX = "local:"
#: Seconds to wait for a scheduler before the address counts as unreachable.
CONNECT_TIMEOUT_S = 10
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ws|wss|ucx)://[^\s/]+$|^[A-Za-z0-9_.\-]+:\d+$")


@dataclass(frozen=True)
class SchedulerSpec:
    """Where work runs: a scheduler address, or a local cluster of ``workers`` processes.

    Attributes:
        address: ``tcp://host:port`` (or ``host:port``) of a running scheduler; ``None`` for a local cluster.
        workers: Worker processes of the local cluster (``address is None``).
    """

    address: str | None
    workers: int = 0

    def __str__(self) -> str:
        return self.address if self.address is not None else f"{LOCAL_PREFIX}{self.workers}"


def parse_scheduler(text: str) -> SchedulerSpec:
    """Parse a ``--scheduler`` value: ``local:N`` (N >= 1) or a scheduler address.

    Raises:
        InputError: For anything else (one line naming the option).
    """
    t = text.strip()
    if t.startswith(LOCAL_PREFIX):
        n = t[len(LOCAL_PREFIX) :]
        if not n.isdigit() or int(n) < 1:
            raise InputError(None, f"{option('scheduler')} {text!r}: local:N needs N >= 1 worker processes")
        return SchedulerSpec(None, int(n))
    if not _ADDRESS.match(t):
        raise InputError(
            None, f"{option('scheduler')} {text!r} is neither a scheduler address (tcp://host:port) nor local:N"
        )
    return SchedulerSpec(t if "://" in t else f"tcp://{t}")


@contextmanager
def connect(spec: SchedulerSpec | str) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec``, closed (and a local cluster shut down) on exit.

    A local cluster has ``spec.workers`` worker processes of one thread each (the units are CPU-bound and the
    workers hold process-wide GDAL and torch state) and no dashboard.

    Raises:
        InputError: If the scheduler does not answer within :data:`CONNECT_TIMEOUT_S` seconds.
    """
    import distributed  # heavy (about a second): only when a scheduler is asked for

    spec = parse_scheduler(spec) if isinstance(spec, str) else spec
    cluster = None
    try:
        if spec.address is None:
            with warnings.catch_warnings():  # another cluster's HTTP port in use: this one takes another port
                warnings.filterwarnings("ignore", message=".*already in use", category=UserWarning)
                cluster = distributed.LocalCluster(
                    n_workers=spec.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(spec.address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise InputError(None, f"cannot reach the Dask scheduler at {spec}: {_one_line(exc)}") from None
    except RuntimeError as exc:  # a LocalCluster that cannot start its workers
        if cluster is not None:
            cluster.close()
        raise RsaugError(None, f"cannot start the Dask cluster {spec}: {_one_line(exc)}") from None
    try:
        if not client.scheduler_info().get("workers"):
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except TimeoutError:
                raise InputError(
                    None, f"the Dask scheduler at {spec} has no workers (none joined in {CONNECT_TIMEOUT_S} s)"
                ) from None
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def cluster_or_none(
    scheduler: SchedulerSpec | str | None, paths: Sequence[tuple[str | os.PathLike[str], str]] = ()
) -> Iterator[Any]:
    """:func:`connect` then :func:`check_paths` for ``paths`` when ``scheduler`` is given; else ``None`` (the
    caller's own pool runs the work)."""
    if scheduler is None:
        yield None
        return
    with connect(scheduler) as client:
        check_paths(client, paths)
        yield client


def output_probe(out: str | os.PathLike[str]) -> tuple[Path, str]:
    """The ``(path, kind)`` workers must see to write into ``out``: ``out`` itself when it exists, else its
    nearest existing ancestor (the missing folders are created by the client)."""
    p = Path(out).resolve()
    while not p.exists() and p.parent != p:
        p = p.parent
    return p, "writable-dir"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _probe(paths: Sequence[tuple[str, str]]) -> list[str]:
    """On a worker: the paths (of ``(path, kind)``) this worker cannot use; kind is ``file``, ``dir`` or
    ``writable-dir``."""
    bad = []
    for p, kind in paths:
        ok = {
            "file": os.path.isfile,
            "dir": os.path.isdir,
            "writable-dir": lambda q: os.path.isdir(q) and os.access(q, os.W_OK),
        }[kind](p)
        if not ok:
            bad.append(p)
    return bad


def check_paths(client: Any, paths: Sequence[tuple[str | os.PathLike[str], str]]) -> None:
    """Check that every worker of ``client`` sees ``paths`` (``(path, kind)`` with kind ``file``, ``dir`` or
    ``writable-dir``) at the same absolute paths as this process.

    Raises:
        InputError: Naming the first path a worker cannot use and the worker, e.g. when the workers run on other
            hosts without the shared filesystem.
    """
    todo = [(str(Path(p).resolve()), kind) for p, kind in paths]
    results = client.run(_probe, todo)
    for worker, bad in sorted(results.items()):
        if bad:
            what = {"file": "file", "dir": "directory", "writable-dir": "writable directory"}[dict(todo)[bad[0]]]
            raise InputError(
                bad[0],
                f"Dask worker {worker} cannot see this {what} (workers must share the client's filesystem at "
                "the same paths)",
            )


def total_threads(client: Any) -> int:
    """Worker threads of the cluster (at least 1)."""
    return max(1, sum(int(w.get("nthreads", 1)) for w in client.scheduler_info().get("workers", {}).values()))


class DaskMap:
    """Runs ``func(unit, *args)`` for every unit on a Dask cluster; results come back in unit order.

    ``args`` are sent to the workers once (scattered and broadcast) instead of with every task. At most
    ``in_flight`` tasks (default: 4 per worker thread) are submitted at a time, so an error stops the run after
    the tasks already running, and the scheduler never holds the whole run.

    Args:
        client: A ``distributed.Client``.
        name: Prefix of the task keys (visible in the Dask dashboard).
        args: Extra positional arguments of every call (e.g. the run's state).
        in_flight: Tasks submitted at once.
    """

    def __init__(self, client: Any, name: str, args: Sequence[Any] = (), in_flight: int | None = None) -> None:
        self.client = client
        self.name = name
        # each argument scattered inside a list: a dict scattered alone would be stored under its own keys
        # ("out", "scenes"...), shared with every other run on the scheduler
        self.args = [client.scatter([a], broadcast=True, hash=False)[0] for a in args]
        self.in_flight = in_flight or 4 * total_threads(client)

    def map(
        self,
        func: Callable[..., Any],
        units: Sequence[Any],
        on_result: Callable[[Any, Any], None] | None = None,
        after_submit: Callable[[], None] | None = None,
    ) -> list[Any]:
        """``[func(u, *args) for u in units]`` on the cluster; ``on_result(unit, result)`` runs here as each
        finishes (progress bars); ``after_submit()`` runs here once, after the first tasks are queued (work of the
        client that can overlap the cluster's; while it runs, no result is collected and no further task is
        submitted, so at most ``in_flight`` tasks overlap it).

        Raises:
            RsaugError: The first :class:`~rsaug.core.errors.RsaugError` a task raised (re-raised here as the
                same one-line error), or a one-line error for the cluster's own failures (a unit whose workers
                kept dying, a lost scheduler, a worker without rsaug); raised once the tasks that were running
                have finished (those not started are cancelled). On ``KeyboardInterrupt`` every task is
                cancelled and nothing is waited for.
            Exception: Any other error of a task, as raised there, or of ``after_submit`` (as raised, after the
                same cancelling and waiting).
        """
        import uuid

        from distributed import as_completed, wait

        results: list[Any] = [None] * len(units)
        run_id = uuid.uuid4().hex[:8]
        pending = iter(range(len(units)))
        index: dict[str, int] = {}
        submitted: list[Any] = []

        def submit(i: int) -> Any:
            fut = self.client.submit(
                portable_call, func, units[i], *self.args, key=f"{self.name}-{run_id}-{i}", pure=False
            )
            index[fut.key] = i
            submitted.append(fut)
            return fut

        queue = as_completed([submit(i) for _, i in zip(range(self.in_flight), pending)])
        client_side = False  # an error of after_submit is the client's own: never reported as the cluster's
        try:
            if after_submit is not None:
                client_side = True
                after_submit()
                client_side = False
            for fut in queue:
                i = index[fut.key]
                results[i] = fut.result()  # re-raises a task's error
                fut.release()
                if on_result is not None:
                    on_result(units[i], results[i])
                nxt = next(pending, None)
                if nxt is not None:
                    queue.add(submit(nxt))
        except KeyboardInterrupt:
            queue.clear()
            self.client.cancel([f for f in submitted if not f.done()])
            raise
        except BaseException as exc:
            # cancel what has not started; let the running tasks finish before the caller cleans up (a running
            # task cannot be stopped, and it would write its files into a directory the caller may empty)
            queue.clear()
            open_futs = [f for f in submitted if not f.done()]
            running = {k for keys in self.client.processing().values() for k in keys}
            self.client.cancel([f for f in open_futs if f.key not in running])
            with suppress(TimeoutError):
                wait([f for f in open_futs if f.key in running], timeout=600)
            failure = None if client_side else _cluster_failure(exc)
            if failure is not None:
                raise RsaugError(None, failure) from None
            raise
        return results


def _cluster_failure(exc: BaseException) -> str | None:
    """A one-line description of a failure of the cluster itself (not of a work unit's input), else ``None``."""
    import concurrent.futures

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    if isinstance(exc, KilledWorker):
        return (
            f"Dask workers kept dying while running {exc.task!r} (out of memory, or killed); the files written so "
            "far are complete: rerun with --resume"
        )
    if isinstance(exc, (CommClosedError, concurrent.futures.CancelledError, asyncio.CancelledError)):
        return f"lost the Dask scheduler or the run's tasks ({type(exc).__name__}); rerun with --resume"
    if isinstance(exc, ModuleNotFoundError):
        return f"a Dask worker cannot import {exc.name!r}: install rsaug on every worker"
    return None
