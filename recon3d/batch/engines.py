"""Where the items of a batch run: ``serial`` (this process), ``local`` (worker processes on this
machine) or ``ray`` (Ray actors on a cluster, or on a local one started here).

Every engine runs each item through :func:`recon3d.batch.item.execute` (the done-marker is written
by the worker, after the item's outputs), and the driver -- the process that called
:func:`recon3d.batch.run_batch` -- decides what to skip (``done``), hands items to workers one at a
time, records the results and shows progress. Workers:

* load their models once: the batch's ``setup()`` is called once per worker (``local``: in the
  spawned process before its first item; ``ray``: in the actor's constructor, so the actor holds them);
* set their own torch thread count (``EngineConfig.threads``, default 1) and, with
  ``deterministic``, torch's deterministic algorithms; the seed is set before every item, so an
  item's result does not depend on which worker ran it or what it ran before;
* read their inputs themselves from the job's path (on a cluster: a path every node sees, i.e. shared
  storage), never shipped through the driver.

A worker that dies (killed, out of memory, a crash in native code, a lost Ray node) is replaced and
the item it held is retried, at most ``retries`` more times, then recorded as failed. Ray is
imported only by the ``ray`` engine.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait
from typing import Any, Callable, Iterable

from ..errors import Recon3DError
from .item import ItemResult, execute, with_attempt
from .jobs import Job

__all__ = ["ENGINES", "EngineConfig", "EngineError", "import_ray", "run_items"]

#: The engine names (``--engine``).
ENGINES = ("serial", "local", "ray")


class EngineError(Recon3DError, RuntimeError):
    """The engine cannot run: Ray is not installed or cannot connect, or workers cannot start."""


@dataclass(frozen=True)
class EngineConfig:
    """How to run a batch.

    Attributes:
        kind: ``"serial"``, ``"local"`` or ``"ray"``.
        workers: worker processes / Ray actors (``serial``: ignored); None: one per CPU of this
            machine (``local``, a local Ray cluster) or of the cluster (``ray_address``), divided by
            the threads per worker.
        threads: torch threads per worker (default: 1 for ``local``/``ray``; ``serial`` leaves the
            process's setting alone). Results equal serial ones bit for bit only at equal thread counts.
        retries: how many times an item whose worker died is started again before it is failed.
        ray_address: an existing Ray cluster (``ray.init(address=...)``, e.g. ``auto`` or
            ``ray://head:10001``); None: start a local one (``num_cpus = workers * threads``).
        deterministic: ``torch.use_deterministic_algorithms`` in every worker.
        seed: ``torch.manual_seed(seed)`` before every item (None: leave the RNG alone).
    """

    kind: str = "serial"
    workers: int | None = 1
    threads: int | None = None
    retries: int = 2
    ray_address: str | None = None
    deterministic: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ValueError(f"EngineConfig: kind must be one of {ENGINES}, got {self.kind!r}")
        if (self.workers is not None and self.workers < 1) or (self.threads is not None and self.threads < 1) or self.retries < 0:
            raise ValueError("EngineConfig: workers and threads must be >= 1 and retries >= 0")

    @property
    def worker_threads(self) -> int:
        return self.threads or 1

    def n_workers(self, cpus: float | None = None) -> int:
        """``workers``, or one per ``cpus`` (default: this machine's) divided by the threads per worker."""
        if self.workers is not None:
            return self.workers
        return max(1, int((cpus or os.cpu_count() or 1) // self.worker_threads))


def import_ray():
    """``import ray``, or :class:`EngineError` saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise EngineError(f"--engine ray needs Ray, which is not installed ({e}); "
                          "install it with: pip install 'recon3d[ray]'") from e
    return ray


def _init_worker(target, threads: int, deterministic: bool, is_setup: bool):
    """In a worker: thread count, determinism, then the models (``setup()``); returns ``process``."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set (a reused process)
        pass
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return target() if is_setup else target


class _Feed:
    """The driver's queue: fresh jobs (lazily, from the iterator; ``done`` ones are emitted as
    skipped) and items to retry after a worker died."""

    def __init__(self, jobs: Iterable[Job], done, emit, retries: int) -> None:
        self._it = enumerate(jobs)
        self._retry: collections.deque[tuple[int, Job, int]] = collections.deque()
        self.done, self.emit, self.retries = done, emit, retries

    def next(self) -> tuple[int, Job, int] | None:
        if self._retry:
            return self._retry.popleft()
        for index, job in self._it:
            if self.done is not None and self.done(job):
                self.emit(index, job, ItemResult(name=job.name, status="skipped"))
                continue
            return index, job, 1
        return None

    def died(self, index: int, job: Job, attempt: int, why: str, roundtrip: float) -> None:
        """The worker running ``job`` died: retry it, or record it failed after ``retries`` retries."""
        if attempt <= self.retries:
            self._retry.append((index, job, attempt + 1))
        else:
            self.emit(index, job, ItemResult(name=job.name, status="failed", expected=False, attempts=attempt,
                                             roundtrip=roundtrip,
                                             error=f"worker died ({why}) on each of {attempt} attempts"))


def run_items(jobs: Iterable[Job], target: Callable, *, engine: EngineConfig, is_setup: bool, done, markers,
              emit: Callable[[int, Job, ItemResult], None]) -> None:
    """Run every job on ``engine``; ``emit(index, job, item)`` on the driver for each (any order).
    ``target``: ``setup`` (``is_setup``) or the per-item function itself (``serial`` only)."""
    feed = _Feed(jobs, done, emit, engine.retries)
    if engine.kind == "serial":
        process = target() if is_setup else target
        if engine.threads is not None:
            import torch

            torch.set_num_threads(engine.threads)
        while (nxt := feed.next()) is not None:
            index, job, attempt = nxt
            emit(index, job, execute(job, process, markers=markers, seed=engine.seed))
        return
    if not is_setup:
        raise TypeError(f"engine {engine.kind!r} needs a picklable setup(), not a process function")
    if engine.kind == "local":
        _run_local(feed, target, engine, markers, emit)
    else:
        _run_ray(feed, target, engine, markers, emit)


# -- local: worker processes ----------------------------------------------------------------------------
def _local_worker(conn, setup, threads: int, deterministic: bool, seed, markers) -> None:
    """The loop of one spawned worker: load the models, then one job at a time until ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the driver, which ends the workers
    try:
        process = _init_worker(setup, threads, deterministic, True)
    except BaseException as e:  # noqa: BLE001  (reported to the driver, which stops the batch)
        conn.send(("setup_failed", f"{e.__class__.__name__}: {e}"))
        return
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(("result", execute(job, process, markers=markers, seed=seed)))


def _why(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            pass
    return f"exit code {exitcode}"


class _Slot:
    """One worker process and the item it holds."""

    def __init__(self, ctx, setup, engine: EngineConfig, markers) -> None:
        self.conn, child = ctx.Pipe()
        env = {k: str(engine.worker_threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # inherited by the spawned process: BLAS pools sized before numpy loads
        try:
            self.proc = ctx.Process(target=_local_worker, daemon=True, name="recon3d-batch-worker",
                                    args=(child, setup, engine.worker_threads, engine.deterministic, engine.seed,
                                          markers))
            self.proc.start()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child.close()
        self.held: tuple[int, Job, int, float] | None = None

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _run_local(feed: _Feed, setup, engine: EngineConfig, markers, emit) -> None:
    ctx = multiprocessing.get_context("spawn")
    slots = [_Slot(ctx, setup, engine, markers) for _ in range(engine.n_workers())]
    exhausted = False
    try:
        while True:
            for slot in slots:
                if slot.held is None and not exhausted:
                    nxt = feed.next()
                    if nxt is None:
                        exhausted = True
                        break
                    try:
                        slot.conn.send(nxt[1])
                    except (OSError, ValueError):  # died before taking it: the wait below sees it
                        pass
                    slot.held = (*nxt, time.perf_counter())
            busy = [s for s in slots if s.held is not None]
            if not busy:  # every slot was offered work and the feed had none (retries reset `exhausted`)
                return
            ready = set(mp_wait([s.conn for s in busy] + [s.proc.sentinel for s in busy]))
            for k, slot in enumerate(slots):
                if slot.held is None or (slot.conn not in ready and slot.proc.sentinel not in ready):
                    continue
                index, job, attempt, t0 = slot.held
                msg = None
                try:
                    if slot.conn.poll():
                        msg = slot.conn.recv()
                except (EOFError, OSError):
                    msg = None
                if msg is not None and msg[0] == "setup_failed":
                    raise EngineError(f"a worker could not load its models: {msg[1]}")
                if msg is not None:
                    slot.held = None
                    emit(index, job, with_attempt(msg[1], attempts=attempt, roundtrip=time.perf_counter() - t0))
                    if slot.proc.is_alive():
                        continue
                else:
                    slot.proc.join(1.0)
                    feed.died(index, job, attempt, _why(slot.proc.exitcode), time.perf_counter() - t0)
                    slot.held = None
                    exhausted = False  # a retry may be queued
                slot.conn.close()
                slots[k] = _Slot(ctx, setup, engine, markers)  # replace the dead worker
    finally:
        for slot in slots:
            slot.stop()


# -- ray: actors --------------------------------------------------------------------------------------
class _RayWorker:
    """A Ray actor holding the loaded models (``setup()`` runs in its constructor)."""

    def __init__(self, setup, threads: int, deterministic: bool, seed, markers) -> None:
        self.process = _init_worker(setup, threads, deterministic, True)
        self.seed, self.markers = seed, markers

    def ident(self) -> str:
        from .records import worker_id

        return worker_id()

    def run(self, job: Job) -> ItemResult:
        return execute(job, self.process, markers=self.markers, seed=self.seed)


def _ray_connect(ray, engine: EngineConfig) -> bool:
    """Connect to ``engine.ray_address`` or start a local cluster; True when this call did it."""
    if ray.is_initialized():
        return False
    try:
        if engine.ray_address:
            ray.init(address=engine.ray_address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=engine.n_workers() * engine.worker_threads, include_dashboard=False,
                     log_to_driver=False)
    except Exception as e:  # ConnectionError, RuntimeError, ...: one line for the user
        where = engine.ray_address or "a local cluster"
        raise EngineError(f"cannot start Ray on {where}: {str(e).splitlines()[0] if str(e) else e!r}") from e
    return True


def _run_ray(feed: _Feed, setup, engine: EngineConfig, markers, emit) -> None:
    ray = import_ray()
    started = _ray_connect(ray, engine)
    threads = engine.worker_threads
    actor_cls = ray.remote(num_cpus=threads, max_restarts=0, max_task_retries=0)(_RayWorker)

    def new_actor():
        return actor_cls.remote(setup, threads, engine.deterministic, engine.seed, markers)

    n = engine.n_workers(ray.cluster_resources().get("CPU"))
    actors: list[Any] = [new_actor() for _ in range(n)]
    try:
        try:  # the first actor that holds its models (others may wait for a node: an autoscaling cluster)
            first, _ = ray.wait([a.ident.remote() for a in actors], num_returns=1)
            ray.get(first)
        except ray.exceptions.RayError as e:
            raise EngineError(f"Ray workers could not load their models: {str(e).strip().splitlines()[-1]}") from e
        inflight: dict[Any, tuple[int, int, Job, int, float]] = {}
        idle = list(range(len(actors)))
        exhausted = False
        while True:
            while idle and not exhausted:
                nxt = feed.next()
                if nxt is None:
                    exhausted = True
                    break
                k = idle.pop()
                index, job, attempt = nxt
                inflight[actors[k].run.remote(job)] = (k, index, job, attempt, time.perf_counter())
            if not inflight:
                return
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                k, index, job, attempt, t0 = inflight.pop(ref)
                try:
                    item = ray.get(ref)
                except ray.exceptions.RayError as e:  # the actor or its node died
                    why = e.__class__.__name__
                    feed.died(index, job, attempt, why, time.perf_counter() - t0)
                    exhausted = False
                    try:
                        ray.kill(actors[k])
                    except Exception:  # noqa: BLE001  (already gone)
                        pass
                    actors[k] = new_actor()
                else:
                    emit(index, job, with_attempt(item, attempts=attempt, roundtrip=time.perf_counter() - t0))
                idle.append(k)
    finally:
        for a in actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        if started:
            ray.shutdown()
