"""One item of a batch: what its function returns (:class:`Outcome`), its result (:class:`ItemResult`)
and :func:`execute`, which runs it the same way in every engine (serial, worker process, Ray actor)."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import Recon3DError
from .jobs import Job

__all__ = ["Outcome", "ItemResult", "execute", "with_attempt"]


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


def with_attempt(item: ItemResult, *, attempts: int, roundtrip: float = 0.0) -> ItemResult:
    """``item`` with the driver's bookkeeping."""
    return replace(item, attempts=attempts, roundtrip=roundtrip)
