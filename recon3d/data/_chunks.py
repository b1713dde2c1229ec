"""Resumable caches kept as chunk files: one ``chunk-AAAAAA-BBBBBB.npz`` per group of items ``A..B-1``.

Shared by the de-occlusion render cache (:mod:`recon3d.data.deocclusion`) and the rotation pair cache
(:mod:`recon3d.data.rotation_pairs`). A chunk holds, for its computed items, ``indices`` and one stacked
array per field, and for the items it gave up on ``skipped_indices`` / ``skipped_reasons``. Chunks are
written atomically (a killed run leaves whole chunks or none); an unreadable chunk is ignored with a warning,
so its items are computed again.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_file

__all__ = ["ChunkStore", "check_build_args"]

log = logging.getLogger(__name__)

_CHUNK_RE = re.compile(r"^chunk-(\d{6})-(\d{6})\.npz$")


def check_build_args(where: str, n: int | None, chunk: int, shard: tuple[int, int]) -> tuple[int, int]:
    """Validate a resumable build's ``n`` (None or >= 1), ``chunk`` (>= 1) and ``shard`` ``(k, m)``
    (``0 <= k < m``); returns the shard.

    Raises:
        ValueError: naming ``where`` and the bad argument.
    """
    if n is not None and (int(n) != n or n < 1):
        raise ValueError(f"{where}: n must be an integer >= 1, got {n!r}")
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"{where}: chunk must be an integer >= 1, got {chunk!r}")
    k, m = shard
    if not 0 <= k < m:
        raise ValueError(f"{where}: shard must be (k, m) with 0 <= k < m, got {shard!r}")
    return int(k), int(m)


class ChunkStore:
    """The chunk files of one cache folder.

    Args:
        folder: the cache folder.
        fields: ``{name: (shape, dtype)}`` of one item's arrays (the shapes give empty chunks their shape).
        compress: write ``np.savez_compressed`` chunks.
    """

    def __init__(self, folder: str | Path, fields: dict[str, tuple[tuple[int, ...], type]], *, compress: bool = False):
        self.folder = Path(folder).expanduser()
        self.fields = dict(fields)
        self.compress = compress

    def chunks(self) -> list[Path]:
        """The chunk files, sorted by name."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if _CHUNK_RE.match(p.name))

    def _index(self, path: Path) -> tuple[list[int], list[int]]:
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["indices"].tolist(), z["skipped_indices"].tolist()
        except (OSError, ValueError, KeyError) as e:
            log.warning("%s: ignoring an unreadable chunk %s (%s)", self.folder, path.name, e)
            return [], []

    def index(self) -> tuple[set[int], set[int]]:
        """``(computed items, skipped items)``, read from the chunks' index arrays only (no images)."""
        ok: set[int] = set()
        skipped: set[int] = set()
        for p in self.chunks():
            a, b = self._index(p)
            ok.update(a)
            skipped.update(b)
        return ok, skipped - ok

    def write(self, results: dict[int, dict | str]) -> Path:
        """Write one chunk: ``results[i]`` is a dict with every field, or the reason item ``i`` was skipped."""
        ok = sorted(i for i, r in results.items() if not isinstance(r, str))
        sk = sorted(i for i, r in results.items() if isinstance(r, str))
        arrays = {"indices": np.asarray(ok, np.int64),
                  "skipped_indices": np.asarray(sk, np.int64),
                  "skipped_reasons": np.asarray([results[i] for i in sk], dtype=str)}
        for name, (shape, dtype) in self.fields.items():
            arrays[name] = (np.stack([np.asarray(results[i][name], dtype) for i in ok]) if ok
                            else np.zeros((0, *shape), dtype))
        keys = sorted(results)
        path = self.folder / f"chunk-{keys[0]:06d}-{keys[-1] + 1:06d}.npz"
        with atomic_file(path) as fh:
            (np.savez_compressed if self.compress else np.savez)(fh, **arrays)
        return path

    def read(self) -> tuple[np.ndarray, dict[str, np.ndarray], dict[int, str]]:
        """``(indices (M,), {field: (M, ...)}, {skipped index: reason})``, items sorted by index (an item in two
        chunks counts once: the later chunk's copy)."""
        rows: dict[int, tuple[int, int]] = {}
        loaded: list[dict[str, np.ndarray]] = []
        skipped: dict[int, str] = {}
        for p in self.chunks():
            try:
                with np.load(p, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in ("indices", "skipped_indices", "skipped_reasons", *self.fields)}
            except (OSError, ValueError, KeyError) as e:
                log.warning("%s: ignoring an unreadable chunk %s (%s)", self.folder, p.name, e)
                continue
            loaded.append(arrays)
            for j, i in enumerate(arrays["indices"].tolist()):
                rows[int(i)] = (len(loaded) - 1, j)
            for i, r in zip(arrays["skipped_indices"].tolist(), arrays["skipped_reasons"].tolist(), strict=True):
                skipped[int(i)] = str(r)
        order = sorted(rows)
        out = {name: (np.stack([loaded[rows[i][0]][name][rows[i][1]] for i in order]) if order
                      else np.zeros((0, *shape), dtype))
               for name, (shape, dtype) in self.fields.items()}
        return np.asarray(order, np.int64), out, {i: r for i, r in skipped.items() if i not in rows}
