"""Run a per-item function over jobs and collect a report; one bad item never stops the batch.

The runner never prints: progress goes to ``progress(item, done, total)`` and everything else into
the returned :class:`BatchReport` (the pipelines print it). The items run in this process
(``engine="serial"``) or in worker processes (``"local"``) or Ray actors (``"ray"``), see
:mod:`recon3d.batch.engines`; each item runs through :func:`execute` wherever it runs.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import Recon3DError
from ..io.export import is_job_exported
from .jobs import Job, source_id

__all__ = ["Outcome", "ItemResult", "BatchReport", "run_batch", "exported", "execute"]


@dataclass(frozen=True)
class Outcome:
    """What a per-item function may return: a one-line message, the outputs it wrote and JSON-able
    data for the results index (e.g. ``pose_deg``, ``timings``)."""

    message: str = ""
    outputs: tuple[Path, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemResult:
    """One item of a :class:`BatchReport`.

    Attributes:
        name: the job's name.
        status: ``"ok"``, ``"failed"`` or ``"skipped"`` (already done, ``resume``).
        error: the failure's message (``None`` unless failed); an unexpected exception (not a
            ``Recon3DError``) reads ``"unexpected <Type>: <message>"``.
        expected: the failure was a ``Recon3DError`` (bad input), not a bug.
        traceback: the formatted traceback of a failure.
        seconds: wall time of the item.
        message: the per-item function's message.
        outputs: the paths it reported.
        data: its :attr:`Outcome.data`.
        attempts: how many times it was started (> 1 after a worker died).
        worker: ``<host>:<pid>`` of the process that ran it.
        roundtrip: seconds from handing it to a worker to receiving its result, on the driver
            (``roundtrip - seconds`` is the engine's overhead; 0 for ``serial``).
    """

    name: str
    status: str
    error: str | None = None
    expected: bool = True
    traceback: str | None = None
    seconds: float = 0.0
    message: str = ""
    outputs: tuple[Path, ...] = ()
    data: Mapping[str, Any] | None = None
    attempts: int = 1
    worker: str = ""
    roundtrip: float = 0.0


@dataclass(frozen=True)
class BatchReport:
    """The items of a batch, in job order (inputs that matched nothing first, as failures). With
    ``keep_ok=False`` (:func:`run_batch`) only failures are kept; the others are only counted."""

    items: tuple[ItemResult, ...] = field(default_factory=tuple)
    dropped_ok: int = 0
    dropped_skipped: int = 0

    @property
    def n_ok(self) -> int:
        return sum(i.status == "ok" for i in self.items) + self.dropped_ok

    @property
    def n_skipped(self) -> int:
        return sum(i.status == "skipped" for i in self.items) + self.dropped_skipped

    @property
    def failures(self) -> list[ItemResult]:
        return [i for i in self.items if i.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures


def exported(out_root: str | os.PathLike, formats: Sequence[str] = ("obj",), *,
             all_faces: bool = False) -> Callable[[Job], bool]:
    """A ``done`` test for :func:`run_batch`: the job's output is complete and was made from the
    job's own input (:func:`recon3d.io.export.is_job_exported`; ``all_faces``: every face folder
    ``<name>_face<k>`` of the job)."""
    root = Path(out_root)
    return lambda job: is_job_exported(root, job.name, formats, source=source_id(job.source), all_faces=all_faces)


def _outcome(value: Any) -> Outcome:
    if isinstance(value, Outcome):
        return value
    return Outcome(message=value or "")


def execute(job: Job, process: Callable[[Job], Outcome | str | None], *, markers=None,
            seed: int | None = None) -> ItemResult:
    """Run one item: ``process(job)``, then (on success, with ``markers``, a
    :class:`recon3d.batch.records.DoneMarkers`) its done-marker. Never raises for the item's own
    failure: a ``Recon3DError`` gives ``expected=True``, any other exception ``expected=False`` with the
    traceback. ``seed``: ``torch.manual_seed(seed)`` first, so an item's result never depends on the
    items run before it in the same process (serial = local = ray)."""
    from .records import worker_id

    t0 = time.perf_counter()
    try:
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        out = _outcome(process(job))
        if markers is not None:
            markers.write(job, out.outputs)
        return ItemResult(name=job.name, status="ok", seconds=time.perf_counter() - t0, message=out.message,
                          outputs=tuple(out.outputs), data=dict(out.data) or None, worker=worker_id())
    except Recon3DError as e:
        return ItemResult(name=job.name, status="failed", error=str(e), traceback=traceback.format_exc(),
                          seconds=time.perf_counter() - t0, worker=worker_id())
    except Exception as e:  # one bad item never stops a batch
        return ItemResult(name=job.name, status="failed", error=f"unexpected {e.__class__.__name__}: {e}",
                          expected=False, traceback=traceback.format_exc(), seconds=time.perf_counter() - t0,
                          worker=worker_id())


def run_batch(jobs: Iterable[Job], process: Callable[[Job], Outcome | str | None] | None = None, *,
              setup: Callable[[], Callable[[Job], Outcome | str | None]] | None = None,
              done: Callable[[Job], bool] | None = None, missing: Sequence[str] = (),
              progress: Callable[[ItemResult, int, int | None], None] | None = None,
              engine=None, markers=None, total: int | None = None, keep_ok: bool = True,
              on_result: Callable[[ItemResult, Job], None] | None = None) -> BatchReport:
    """Run ``process(job)`` for each job.

    Args:
        jobs: from :func:`recon3d.batch.collect_jobs` and/or :func:`recon3d.batch.iter_manifest`;
            any iterable, consumed lazily (a streamed manifest is never held in memory).
        process: the per-item function; returns an :class:`Outcome`, a message or None.
        setup: instead of ``process``: a picklable zero-argument callable that loads what the items
            need (models) and returns the per-item function; called once per worker. Required by
            the ``local`` and ``ray`` engines.
        done: ``done(job)`` marks items already finished (resume), skipped without running.
        missing: inputs that matched nothing; reported as failures ("input not found").
        progress: called after every item with ``(item, n_done, n_total)`` (``n_total``: ``total``,
            or ``len(jobs)`` when it has one, else None).
        engine: a :class:`recon3d.batch.engines.EngineConfig` (default: serial, in this process).
        markers: :class:`recon3d.batch.records.DoneMarkers`: every successful item writes its marker.
        total: the number of jobs, when ``jobs`` has no ``len``.
        keep_ok: keep the ok and skipped items in the report (False: only count them).
        on_result: called on the driver with ``(item, job)`` for every item (e.g. the results index).

    Returns:
        :class:`BatchReport`. A ``Recon3DError`` fails its item (``expected=True``); any other
        exception also fails only its item (``expected=False``, with the traceback); a worker that
        dies is replaced and its item retried ``engine.retries`` times, then recorded failed.

    Raises:
        recon3d.batch.engines.EngineError: the engine cannot run (Ray not installed, workers that
            cannot load their models).
    """
    from .engines import EngineConfig, run_items

    if (process is None) == (setup is None):
        raise TypeError("run_batch(): give exactly one of process and setup")
    engine = engine or EngineConfig()
    if total is None and hasattr(jobs, "__len__"):
        total = len(jobs)  # type: ignore[arg-type]
    items = [ItemResult(name=m, status="failed", error="input not found") for m in missing]
    kept: list[tuple[int, ItemResult]] = []
    dropped = {"ok": 0, "skipped": 0}
    n_done = 0

    def emit(index: int, job: Job, item: ItemResult) -> None:
        nonlocal n_done
        n_done += 1
        if keep_ok or item.status == "failed":
            kept.append((index, item))
        else:
            dropped[item.status] += 1
        if on_result is not None:
            on_result(item, job)
        if progress is not None:
            progress(item, n_done, total)

    run_items(jobs, process if process is not None else setup, engine=engine, is_setup=process is None,
              done=done, markers=markers, emit=emit)
    kept.sort(key=lambda pair: pair[0])
    return BatchReport(items=tuple(items + [item for _, item in kept]), dropped_ok=dropped["ok"],
                       dropped_skipped=dropped["skipped"])


def with_attempt(item: ItemResult, *, attempts: int, roundtrip: float = 0.0) -> ItemResult:
    """``item`` with the driver's bookkeeping."""
    return replace(item, attempts=attempts, roundtrip=roundtrip)
