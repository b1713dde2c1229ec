"""Run a per-item function over jobs and collect a report; one bad item never stops the batch.

The runner never prints: progress goes to ``progress(item, done, total)`` and everything else into
the returned :class:`BatchReport` (the pipelines print it).
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import Recon3DError
from ..io.export import is_job_exported
from .jobs import Job, source_id

__all__ = ["Outcome", "ItemResult", "BatchReport", "run_batch", "exported"]


@dataclass(frozen=True)
class Outcome:
    """What a per-item function may return: a one-line message and the outputs it wrote."""

    message: str = ""
    outputs: tuple[Path, ...] = ()


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
    """

    name: str
    status: str
    error: str | None = None
    expected: bool = True
    traceback: str | None = None
    seconds: float = 0.0
    message: str = ""
    outputs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class BatchReport:
    """The items of a batch, in job order (inputs that matched nothing first, as failures)."""

    items: tuple[ItemResult, ...] = field(default_factory=tuple)

    @property
    def n_ok(self) -> int:
        return sum(i.status == "ok" for i in self.items)

    @property
    def n_skipped(self) -> int:
        return sum(i.status == "skipped" for i in self.items)

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


def run_batch(jobs: Sequence[Job], process: Callable[[Job], Outcome | str | None], *,
              done: Callable[[Job], bool] | None = None, missing: Sequence[str] = (),
              progress: Callable[[ItemResult, int, int], None] | None = None) -> BatchReport:
    """Run ``process(job)`` for each job.

    Args:
        jobs: from :func:`recon3d.batch.collect_jobs`.
        process: the per-item function; returns an :class:`Outcome`, a message or None.
        done: ``done(job)`` marks items already finished (resume), skipped without running.
        missing: inputs that matched nothing; reported as failures ("input not found").
        progress: called after every item with ``(item, n_done, n_total)``.

    Returns:
        :class:`BatchReport`. A ``Recon3DError`` fails its item (``expected=True``); any other
        exception also fails only its item (``expected=False``, with the traceback).
    """
    items = [ItemResult(name=m, status="failed", error="input not found") for m in missing]
    total = len(jobs)
    for k, job in enumerate(jobs):
        t0 = time.perf_counter()
        if done is not None and done(job):
            item = ItemResult(name=job.name, status="skipped")
        else:
            try:
                out = _outcome(process(job))
                item = ItemResult(name=job.name, status="ok", seconds=time.perf_counter() - t0, message=out.message,
                                  outputs=tuple(out.outputs))
            except Recon3DError as e:
                item = ItemResult(name=job.name, status="failed", error=str(e), traceback=traceback.format_exc(),
                                  seconds=time.perf_counter() - t0)
            except Exception as e:  # one bad item never stops a batch
                item = ItemResult(name=job.name, status="failed", error=f"unexpected {e.__class__.__name__}: {e}",
                                  expected=False, traceback=traceback.format_exc(), seconds=time.perf_counter() - t0)
        items.append(item)
        if progress is not None:
            progress(item, k + 1, total)
    return BatchReport(items=tuple(items))
