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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_file

__all__ = ["ChunkStore", "ChunkedSamples", "check_build_args", "build_photo_chunks", "load_chunked", "open_build_folder"]

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


@dataclass
class ChunkedSamples:
    """Merged samples of a chunked cache (:meth:`ChunkStore.read`): ``items`` ``(M,)`` sorted item numbers,
    ``arrays`` ``{field: (M, ...)}``, ``skipped`` ``{item: reason}``, ``meta`` the folder's ``config.json``."""

    items: np.ndarray
    arrays: dict[str, np.ndarray]
    skipped: dict[int, str]
    meta: dict

    def __len__(self) -> int:
        return int(self.items.shape[0])


def load_chunked(out_dir: str | Path, fields, what: str, verb: str, cls=ChunkedSamples):
    """Merge the chunks of a sample folder into ``cls`` (a :class:`ChunkedSamples`); ``fields(meta)`` gives the
    store's fields from its ``config.json``.

    Raises:
        Recon3DError: no ``config.json`` (``what``: the folder's kind; ``verb``: the pipeline that builds one) or
            no sample yet.
    """
    import json

    from ..errors import Recon3DError

    out = Path(out_dir).expanduser()
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise Recon3DError(f"{out}: not a {what} folder (no config.json; build one with pipelines.{verb})")
    meta = json.loads(cfg_path.read_text())
    items, arrays, skipped = ChunkStore(out, fields(meta)).read()
    if not len(items):
        raise Recon3DError(f"{out}: the {what} folder holds no sample yet")
    return cls(items=items, arrays=arrays, skipped=skipped, meta=meta)


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


def open_build_folder(where: str, out_dir: str | Path, config: dict, other: str = "") -> Path:
    """Open a resumable build's folder: refuse one holding progress with other settings than ``config`` (``other``
    names what else may differ), create it, clear stale temporary files and record ``config.json``.

    Raises:
        Recon3DError: the folder holds progress made with other settings.
    """
    import json

    from ..errors import Recon3DError
    from ..io.atomic import clean_stale_temps
    from .degrade import same_settings

    out = Path(out_dir).expanduser()
    cfg_path = out / "config.json"
    if not same_settings(cfg_path, config):
        raise Recon3DError(f"{where}: {out} holds progress made with other settings{' ' + other if other else ''}; "
                           "delete it or use the same settings")
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out)
    if not cfg_path.is_file():
        with atomic_file(cfg_path, "w") as fh:
            json.dump(config, fh, indent=1, sort_keys=True)
    return out


def build_photo_chunks(where: str, photos: list, out_dir: str | Path, config: dict, store_fields: dict,
                       kinds: tuple[str, ...], sample_fn, *, n: int | None, chunk: int, shard: tuple[int, int],
                       desc: str, progress: bool = True, setup=None) -> int:
    """The resumable photo loop shared by the sample builders: ``len(kinds)`` items per photo (item
    ``len(kinds) * photo + kind``), computed by ``sample_fn(photo_array, photo_index, state)`` as
    ``{kind: arrays or the reason it was skipped}``; ``setup()`` (when given) builds ``state`` once, only when
    there is work. ``config`` is kept in ``out_dir/config.json`` and must match a folder's earlier progress.

    Returns:
        The number of photos this call processed.

    Raises:
        Recon3DError: the folder holds progress made with other settings.
        ValueError: bad ``n``, ``chunk`` or ``shard``, or no photos.
    """

    from tqdm import tqdm

    from ..errors import Recon3DError
    from ..io.image import load_image

    k, m = check_build_args(where, n, chunk, shard)
    photos = [Path(p) for p in photos][: n if n is not None else None]
    if not photos:
        raise ValueError(f"{where}: no photos")
    out = open_build_folder(where, out_dir, config, "(or another photo list)")
    store = ChunkStore(out, store_fields, compress=True)
    ok, sk = store.index()
    done = {i // len(kinds) for i in ok | sk}
    todo = [i for i in range(len(photos)) if i % m == k and i not in done]
    state = setup() if todo and setup is not None else None
    bar = tqdm(total=len(todo), desc=desc, unit="photo", disable=not progress)
    try:
        for a in range(0, len(todo), chunk):
            results: dict[int, dict | str] = {}
            for i in todo[a:a + chunk]:
                try:
                    samples = sample_fn(load_image(photos[i]).image, i, state)
                except Recon3DError as e:  # an unreadable photo: recorded, never fatal
                    samples = {kk: f"{type(e).__name__}: {e}" for kk in kinds}
                for j, kind in enumerate(kinds):
                    results[len(kinds) * i + j] = samples[kind]
                bar.update(1)
            store.write(results)
    finally:
        bar.close()
    return len(todo)
