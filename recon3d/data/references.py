"""Training references for reference-guided face super-resolution (seed 004): the same face
re-posed by recon3d's own rotation and colour-jittered, so identity is shared but pixels cannot be
copied.

faces-128 has one photo per person, so each training face ``i`` gets its reference from itself:

1. the ``i``-th face of ``split`` (the order of :func:`recon3d.data.faces.load_faces` at 128 px) is
   reconstructed (:func:`recon3d.reconstruct.reconstruct`, fast preset, 256² texture);
2. it is rotated (:func:`recon3d.edit.rotate.rotate_face`, yaw only, relit by the fitted SH at the
   new pose) to a target yaw drawn uniformly from ``yaw_range`` with ``|change| >= MIN_YAW_CHANGE``
   degrees, by ``np.random.default_rng([seed, i])``, so a face's draw does not depend on ``n``;
3. the rotated photo is re-aligned to :data:`recon3d.ops.align.TEMPLATE_68`
   (:func:`recon3d.ops.align.align_face` with the 68 landmarks of the rotated mesh projected by the
   fitted camera; when they cannot be used, the original alignment: the faces are already aligned,
   so a plain resize) at ``res``;
4. a seeded colour jitter (:data:`JITTER`, :func:`recon3d.data.augment.random_flip_jitter` without
   flip) is applied and the result stored as uint8.

A face whose reconstruction fails (no face found, a failed fit) is recorded as skipped.

On disk (:func:`build_reposed_pool`): one ``.npz`` written atomically with the keys ``images``
``(M, 3, res, res)`` uint8, ``indices`` ``(M,)`` int64 (position in the split's order), ``names``
``(M,)`` str (path relative to ``faces_dir``, :attr:`FaceSet.paths`), ``yaws`` ``(M,)`` float32 (the
target head yaw, degrees), ``yaw_deltas`` (the applied change), ``aligned`` (``"landmarks"`` or
``"original"``), ``skipped_indices``, ``skipped_names``, ``skipped_reasons`` and ``meta`` (a JSON
string of the settings). Progress is kept in the side folder ``<out>.parts/`` (one npz per chunk of
faces plus ``config.json``), so a killed run, or a later run with a larger ``n``, computes only the
faces not there yet; the folder may be deleted once the pool is written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import Recon3DError
from ..io.atomic import atomic_file, clean_stale_temps
from ..ops.align import align_face
from .degrade import same_settings

__all__ = ["ReposedPool", "build_reposed_pool", "load_reposed_pool", "repose_face", "draw_yaw", "parts_dir",
           "JITTER", "MIN_YAW_CHANGE", "SOURCE_RES", "POOL_VERSION"]

log = logging.getLogger(__name__)

#: bumped whenever what a face's entry holds changes (chunks of another version are not reused)
POOL_VERSION = 1
#: the smallest |change of yaw|, degrees
MIN_YAW_CHANGE = 10.0
#: the side at which the faces are read and reconstructed
SOURCE_RES = 128
#: colour jitter amounts (:func:`recon3d.data.augment.random_flip_jitter`, flip off)
JITTER = {"brightness": 0.15, "contrast": 0.15, "saturation": 0.15, "hue": 0.02}

_CHUNK_RE = re.compile(r"^chunk-(\d{6})-(\d{6})\.npz$")


@dataclass
class ReposedPool:
    """A pool of re-posed references.

    Attributes:
        images: ``(M, 3, res, res)`` uint8 numpy array.
        indices: ``(M,)`` int64, the position of each face in ``load_faces(faces_dir, 128, split=...)``.
        names: the path (relative to ``faces_dir``) of each face.
        yaws: ``(M,)`` float32, the target head yaw in degrees.
        yaw_deltas: ``(M,)`` float32, the applied change of yaw in degrees.
        aligned: per face ``"landmarks"`` (re-aligned by the rotated landmarks) or ``"original"``.
        skipped: ``(index, name, reason)`` of each face left out.
        meta: the settings the pool was built with.
    """

    images: np.ndarray
    indices: np.ndarray
    names: list[str]
    yaws: np.ndarray
    yaw_deltas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    aligned: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])


def parts_dir(out_path: str | os.PathLike) -> Path:
    """The side folder of a pool's partial progress: ``<out_path>.parts``."""
    p = Path(out_path)
    return p.with_name(p.name + ".parts")


def _check_yaw_range(yaw_range) -> tuple[float, float]:
    lo, hi = (float(v) for v in yaw_range)
    if not (math.isfinite(lo) and math.isfinite(hi)) or not -90 <= lo < hi <= 90:
        raise ValueError(f"build_reposed_pool(): yaw_range must be (lo, hi) with -90 <= lo < hi <= 90, got {yaw_range!r}")
    if hi - lo <= 2 * MIN_YAW_CHANGE:
        raise ValueError(f"build_reposed_pool(): yaw_range must be wider than {2 * MIN_YAW_CHANGE:g} degrees "
                         f"(a change of at least {MIN_YAW_CHANGE:g} must always be possible), got {yaw_range!r}")
    return lo, hi


def draw_yaw(yaw0: float, u: float, yaw_range: tuple[float, float]) -> float:
    """The target yaw for the uniform draw ``u`` in [0, 1): uniform over ``yaw_range`` without
    ``(yaw0 - MIN_YAW_CHANGE, yaw0 + MIN_YAW_CHANGE)`` (non-empty when the range is wider than
    ``2 * MIN_YAW_CHANGE``); the change is also kept within +-90 degrees.

    >>> draw_yaw(0.0, 0.0, (-35.0, 35.0)), draw_yaw(0.0, 0.999999, (-35.0, 35.0)) > 34.9
    (-35.0, True)
    >>> draw_yaw(30.0, 0.99, (-35.0, 35.0)) <= 20.0
    True
    """
    lo, hi = yaw_range
    lo, hi = max(lo, yaw0 - 90.0), min(hi, yaw0 + 90.0)
    parts = [(lo, min(hi, yaw0 - MIN_YAW_CHANGE)), (max(lo, yaw0 + MIN_YAW_CHANGE), hi)]
    parts = [(a, b) for a, b in parts if b > a]
    if not parts:  # |yaw0| beyond 90 + range: the largest allowed change towards the range
        return float(np.clip(yaw0, lo, hi))
    total = sum(b - a for a, b in parts)
    x = u * total
    for a, b in parts:
        if x < b - a:
            return float(a + x)
        x -= b - a
    return float(parts[-1][1])


def _jitter(u8: np.ndarray, gen_seed: int) -> np.ndarray:
    from .augment import random_flip_jitter, to_uint8

    g = torch.Generator().manual_seed(gen_seed)
    x = random_flip_jitter(torch.from_numpy(u8)[None], g, flip_p=0.0, **JITTER)
    return to_uint8(x)[0].numpy()


def repose_face(image: np.ndarray, index: int, *, seed: int = 0, res: int = 64,
                yaw_range: tuple[float, float] = (-35.0, 35.0), jitter: bool = True) -> dict:
    """Re-pose one aligned face (steps 1-4 of the module docstring).

    Args:
        image: ``(3, H, W)`` uint8, an aligned face (as :attr:`FaceSet.images` holds).
        index: the face's position in its split: with ``seed`` it seeds the draws.
        seed, res, yaw_range, jitter: see :func:`build_reposed_pool`.

    Returns:
        ``{"image": (3, res, res) uint8, "yaw": target yaw, "yaw_delta": change, "aligned": how}``.

    Raises:
        Recon3DError: the face could not be reconstructed (e.g. ``NoFaceError``).
    """
    from ..edit.rotate import rotate_face
    from ..ops.anchors import project_to_pixels
    from ..reconstruct import ReconstructConfig, reconstruct

    lo_hi = _check_yaw_range(yaw_range)
    rng = np.random.default_rng([int(seed), int(index)])
    u, gen_seed = float(rng.random()), int(rng.integers(0, 2**62))
    hwc = np.ascontiguousarray(np.asarray(image, np.uint8).transpose(1, 2, 0))
    rec = reconstruct(hwc, config=ReconstructConfig(fast=True, texture_size=256))
    yaw0 = float(rec.pose_deg["yaw"])
    yaw = draw_yaw(yaw0, u, lo_hi)
    rot = rotate_face(rec, yaw_deg=yaw - yaw0)
    rotated = (rot.image.detach().cpu().clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    how = "landmarks"
    try:
        with torch.no_grad():
            lmk3 = rec.model.landmarks(rot.verts_cam[None].to(rec.model.device, torch.float32))[0]
            lmk_px = project_to_pixels(rec.fit.camera.K[0].to(lmk3), lmk3)
        if not np.isfinite(lmk_px).all():
            raise ValueError("non-finite landmarks")
        out = align_face(rotated, lmk_px, res)
    except (ValueError, np.linalg.LinAlgError) as e:  # fall back to the original (identity) alignment
        log.debug("repose_face(): face %d: rotated landmarks unusable (%s); original alignment", index, e)
        from PIL import Image

        how = "original"
        out = np.asarray(Image.fromarray(rotated).resize((res, res), Image.LANCZOS), np.uint8).transpose(2, 0, 1)
    if jitter:
        out = _jitter(np.ascontiguousarray(out), gen_seed)
    return {"image": np.ascontiguousarray(out, np.uint8), "yaw": yaw, "yaw_delta": yaw - yaw0, "aligned": how}


def _read_chunk(path: Path) -> dict[int, dict] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[int, dict] = {}
            for j, i in enumerate(z["indices"].tolist()):
                out[i] = {"image": z["images"][j], "yaw": float(z["yaws"][j]), "yaw_delta": float(z["yaw_deltas"][j]),
                          "aligned": str(z["aligned"][j])}
            for i, reason in zip(z["skipped_indices"].tolist(), z["skipped_reasons"].tolist(), strict=True):
                out[i] = {"skipped": str(reason)}
            return out
    except (OSError, ValueError, KeyError) as e:
        log.warning("build_reposed_pool(): ignoring an unreadable chunk %s (%s)", path, e)
        return None


def _write_chunk(path: Path, results: dict[int, dict], res: int) -> None:
    ok = sorted(i for i, r in results.items() if "skipped" not in r)
    sk = sorted(i for i, r in results.items() if "skipped" in r)
    arrays = {
        "images": np.stack([results[i]["image"] for i in ok]) if ok else np.zeros((0, 3, res, res), np.uint8),
        "indices": np.asarray(ok, np.int64), "yaws": np.asarray([results[i]["yaw"] for i in ok], np.float32),
        "yaw_deltas": np.asarray([results[i]["yaw_delta"] for i in ok], np.float32),
        "aligned": np.asarray([results[i]["aligned"] for i in ok], dtype=str),
        "skipped_indices": np.asarray(sk, np.int64),
        "skipped_reasons": np.asarray([results[i]["skipped"] for i in sk], dtype=str),
    }
    with atomic_file(path) as fh:
        np.savez(fh, **arrays)


def _pool_arrays(results: dict[int, dict], names: list[str], res: int, meta: dict) -> dict[str, np.ndarray]:
    ok = [i for i in range(len(names)) if "skipped" not in results[i]]
    sk = [i for i in range(len(names)) if "skipped" in results[i]]
    return {
        "images": np.stack([results[i]["image"] for i in ok]) if ok else np.zeros((0, 3, res, res), np.uint8),
        "indices": np.asarray(ok, np.int64), "names": np.asarray([names[i] for i in ok], dtype=str),
        "yaws": np.asarray([results[i]["yaw"] for i in ok], np.float32),
        "yaw_deltas": np.asarray([results[i]["yaw_delta"] for i in ok], np.float32),
        "aligned": np.asarray([results[i]["aligned"] for i in ok], dtype=str),
        "skipped_indices": np.asarray(sk, np.int64), "skipped_names": np.asarray([names[i] for i in sk], dtype=str),
        "skipped_reasons": np.asarray([results[i]["skipped"] for i in sk], dtype=str),
        "meta": np.asarray(json.dumps(meta, sort_keys=True)),
    }


def build_reposed_pool(faces_dir: str | os.PathLike, out_path: str | os.PathLike, *, n: int, res: int = 64,
                       seed: int = 0, yaw_range: tuple[float, float] = (-35.0, 35.0), split: str = "train",
                       val_percent: float = 5.0, chunk: int = 25, jitter: bool = True,
                       cache_dir: str | os.PathLike | None = None, progress: bool = True) -> ReposedPool:
    """Re-pose the first ``n`` faces of ``split`` of ``faces_dir`` and write the pool to ``out_path``.

    Args:
        faces_dir: a folder of aligned faces (read with ``load_faces(faces_dir, 128, split=split)``).
        out_path: the ``.npz`` to write (atomically; keys in the module docstring).
        n: how many faces (the first ``n`` of the split; fewer when the split is smaller).
        res: side of the stored references.
        seed: with the face's index, seeds its target yaw and its colour jitter.
        yaw_range: ``(lo, hi)`` target head yaw in degrees (wider than ``2 * MIN_YAW_CHANGE``).
        split, val_percent, cache_dir: as :func:`recon3d.data.faces.load_faces`.
        chunk: faces per progress file in :func:`parts_dir` (``out_path.parts/``).
        jitter: apply the colour jitter :data:`JITTER`.
        progress: show a tqdm bar.

    Returns:
        The :class:`ReposedPool` written.

    Raises:
        Recon3DError: the side folder holds progress made with other settings, or no face is readable.
        ValueError: bad ``n``, ``res``, ``seed``, ``chunk`` or ``yaw_range``.
    """
    from .faces import load_faces

    if int(n) != n or n < 1:
        raise ValueError(f"build_reposed_pool(): n must be an integer >= 1, got {n!r}")
    if int(res) != res or res < 8:
        raise ValueError(f"build_reposed_pool(): res must be an integer >= 8, got {res!r}")
    if int(seed) != seed or not 0 <= seed < 2**63:
        raise ValueError(f"build_reposed_pool(): seed must be an integer in [0, 2**63), got {seed!r}")
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"build_reposed_pool(): chunk must be an integer >= 1, got {chunk!r}")
    lo, hi = _check_yaw_range(yaw_range)
    n, res, seed, chunk = int(n), int(res), int(seed), int(chunk)
    src = Path(faces_dir).expanduser().resolve()
    out = Path(out_path).expanduser()
    config = {"version": POOL_VERSION, "source": str(src), "source_res": SOURCE_RES, "res": res, "seed": seed,
              "yaw_range": [lo, hi], "min_yaw_change": MIN_YAW_CHANGE, "split": split,
              "val_percent": float(val_percent), "jitter": JITTER if jitter else None}
    config = json.loads(json.dumps(config))
    parts = parts_dir(out)
    cfg_path = parts / "config.json"
    if not same_settings(cfg_path, config):
        raise Recon3DError(f"build_reposed_pool(): {parts} holds progress made with other settings; delete it "
                           "or use the same settings")
    fs = load_faces(src, SOURCE_RES, split=split, val_percent=val_percent, cache_dir=cache_dir, limit=n,
                    progress=False)
    m = len(fs)
    parts.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(parts)
    with atomic_file(cfg_path, "w") as fh:
        json.dump(config, fh, indent=1, sort_keys=True)

    results: dict[int, dict] = {}
    for p in sorted(parts.iterdir()):
        if _CHUNK_RE.match(p.name):
            got = _read_chunk(p)
            if got:
                results.update({i: r for i, r in got.items() if i < m})
    todo = [i for i in range(m) if i not in results]
    if len(todo) < m:
        log.info("build_reposed_pool(): %d of %d faces already in %s", m - len(todo), m, parts)
    from tqdm import tqdm

    bar = tqdm(total=m, initial=m - len(todo), desc=f"re-pose {res}px", unit="face", disable=not progress)
    try:
        for k in range(0, len(todo), chunk):
            group = todo[k:k + chunk]
            done: dict[int, dict] = {}
            for i in group:
                try:
                    done[i] = repose_face(fs.images[i].numpy(), i, seed=seed, res=res, yaw_range=(lo, hi),
                                          jitter=jitter)
                except Recon3DError as e:  # no face, a failed fit: recorded, never fatal
                    log.warning("build_reposed_pool(): skipped %s (%s: %s)", fs.paths[i], type(e).__name__, e)
                    done[i] = {"skipped": f"{type(e).__name__}: {e}"}
                bar.update(1)
            _write_chunk(parts / f"chunk-{group[0]:06d}-{group[-1] + 1:06d}.npz", done, res)
            results.update(done)
    finally:
        bar.close()

    meta = dict(config, n=n, n_faces=m)
    arrays = _pool_arrays(results, list(fs.paths[:m]), res, meta)
    with atomic_file(out) as fh:
        np.savez(fh, **arrays)
    pool = _pool_from_arrays(arrays)
    if pool.skipped:
        log.warning("build_reposed_pool(): %d of %d faces skipped (reconstruction failed)", len(pool.skipped), m)
    return pool


def _pool_from_arrays(z) -> ReposedPool:
    return ReposedPool(
        images=np.asarray(z["images"]), indices=np.asarray(z["indices"]), names=[str(s) for s in z["names"]],
        yaws=np.asarray(z["yaws"]), yaw_deltas=np.asarray(z["yaw_deltas"]), aligned=[str(s) for s in z["aligned"]],
        skipped=[(int(i), str(nm), str(r)) for i, nm, r in zip(z["skipped_indices"], z["skipped_names"],
                                                               z["skipped_reasons"], strict=True)],
        meta=json.loads(str(z["meta"])),
    )


def load_reposed_pool(path: str | os.PathLike) -> ReposedPool:
    """Read a pool written by :func:`build_reposed_pool`.

    Raises:
        Recon3DError: ``path`` is missing, unreadable or not a pool.
    """
    try:
        with np.load(Path(path).expanduser(), allow_pickle=False) as z:
            return _pool_from_arrays(z)
    except (OSError, ValueError, KeyError) as e:
        raise Recon3DError(f"load_reposed_pool(): {path}: not a readable pool ({e})") from None
