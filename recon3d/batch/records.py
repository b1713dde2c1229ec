"""What a batch leaves next to its outputs: a done-marker per finished item and the JSONL results index.

* ``OUT/.done/<name>.json`` (:class:`DoneMarkers`) is written atomically by the worker *after* the
  item's outputs are in place (each output itself is written atomically), so a marker means the
  item is complete. ``--resume`` skips an item only when its marker exists, records the item's own
  input and every output it lists still exists. An item re-executed after a worker died between its
  outputs and its marker rewrites the same outputs under the same names (the atomic rename: the last
  writer wins), so re-execution is idempotent: never a lost or a duplicated output.
* ``OUT/index.jsonl`` (:class:`ResultsIndex`, the default ``--index``) gets one JSON line per item of
  every run, appended by the driver: name, input, status, error, attempts, worker, timings, pose,
  outputs. A later run appends; the last line of a name is its current state.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterable

from .._version import __version__
from ..io.atomic import atomic_file, clean_stale_temps
from .jobs import Job, source_id

__all__ = ["DONE_DIR", "INDEX_NAME", "DoneMarkers", "ResultsIndex", "read_index", "worker_id"]

#: The folder of the done-markers inside ``--out``.
DONE_DIR = ".done"
#: The default results index file inside ``--out``.
INDEX_NAME = "index.jsonl"


def worker_id() -> str:
    """``<host>:<pid>`` of this process (recorded per item in the index)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


class DoneMarkers:
    """The done-markers of the items written into ``out_root`` (picklable: only a path)."""

    def __init__(self, out_root: str | os.PathLike) -> None:
        self.out_root = Path(out_root)
        self.root = self.out_root / DONE_DIR

    def __repr__(self) -> str:
        return f"DoneMarkers({str(self.out_root)!r})"

    def path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def write(self, job: Job, outputs: Iterable[os.PathLike | str] = ()) -> Path:
        """Mark ``job`` done (atomically), listing its outputs (relative to ``out_root``)."""
        record = {"name": job.name, "source": source_id(job.source),
                  "outputs": [_rel(Path(p), self.out_root) for p in outputs],
                  "worker": worker_id(), "finished": time.time(), "recon3d": __version__}
        with atomic_file(self.path(job.name), "w") as f:
            f.write(json.dumps(record))
        return self.path(job.name)

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            record = json.loads(self.path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def is_done(self, job: Job) -> bool:
        """The marker of ``job`` exists, records the job's own input and all of its outputs exist."""
        record = self.read(job.name)
        if record is None or record.get("source") != source_id(job.source):
            return False
        outputs = record.get("outputs")
        if not isinstance(outputs, list):
            return False
        return all(isinstance(o, str) and (self.out_root / o).exists() for o in outputs)

    def clean(self) -> list[Path]:
        """Remove the temporary marker files of killed runs."""
        return clean_stale_temps(self.root)


class ResultsIndex:
    """Appends one JSON line per item to ``path`` (opened in append mode: concurrent runs into one
    ``--out`` interleave whole lines). Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike, *, run: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run = run or f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, item: Any, source: Any = None) -> None:
        """Append the row of an :class:`recon3d.batch.ItemResult` (``source``: the job's input)."""
        data = dict(item.data or {})
        row = {"run": self.run, "time": round(time.time(), 3), "name": item.name,
               "source": source_id(source) if source is not None else None, "status": item.status,
               "error": item.error, "expected": item.expected if item.status == "failed" else None,
               "attempts": item.attempts, "worker": item.worker or None, "seconds": round(item.seconds, 4),
               "roundtrip": round(item.roundtrip, 4), "pose_deg": data.pop("pose_deg", None),
               "timings": data.pop("timings", None), "outputs": [str(p) for p in item.outputs]}
        row.update(data)
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ResultsIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_index(path: str | os.PathLike, *, run: str | None = None) -> list[dict[str, Any]]:
    """The rows of a results index (only those of ``run`` when given); a torn last line is skipped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if run is None or row.get("run") == run:
                rows.append(row)
    return rows
