"""Run a per-item function over jobs and collect a report; one bad item never stops the batch.

The runner never prints: progress goes to ``progress(item, done, total)`` and everything else into
the returned :class:`BatchReport` (the pipelines print it). The items run in this process
(``engine="serial"``) or in worker processes (``"local"``) or Ray actors (``"ray"``), see
:mod:`recon3d.batch.engines`; each item runs through :func:`recon3d.batch.item.execute` wherever it runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..io.export import is_job_exported
from .engines import EngineConfig, run_items
from .item import ItemResult, Outcome, execute
from .jobs import Job, source_id

__all__ = ["Outcome", "ItemResult", "BatchReport", "run_batch", "exported", "execute"]


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
