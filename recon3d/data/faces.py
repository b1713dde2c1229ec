"""Face photo sets for training image networks (GANs, restorers, refiners): a folder of photos ->
one ``(N, 3, res, res)`` uint8 tensor, cached on disk, with deterministic hash splits.

* :func:`load_faces` -> :class:`FaceSet`: every ``.jpg`` / ``.jpeg`` / ``.png`` / ``.webp`` under
  ``root`` (recursive, sorted by relative path), in split ``"train"``, ``"val"`` or ``"all"``
  (:func:`recon3d.data.splits.is_held_out` of the photo key ``<folder>/<stem>``, so a photo is in
  the same split whatever the order or the number of photos).
* Aligned folders (``align="none"``, or ``"auto"`` when every image is square and of one size, as
  ``../shared/faces-128`` is) are only resized to ``res`` (PIL Lanczos; for downscaling by 2x or
  more PIL first box-reduces, ``reducing_gap=2``).
* Other folders (``align="detect"``, or ``"auto"`` otherwise): the largest face of each photo is
  found with :func:`recon3d.detect.detect_faces`, and the similarity transform that takes its 68
  landmarks to :data:`TEMPLATE_68` is used to warp it to ``res x res``
  (:func:`align_face`). Photos without a face are skipped and counted.
* The decoded set is cached as a uint8 ``.npy`` (memory-mapped on a hit) plus a JSON of its keys
  under ``cache_dir`` (default ``$XDG_CACHE_HOME/recon3d/faces`` or ``~/.cache/recon3d/faces``),
  named by a hash of the absolute root, the selected files with their sizes and mtimes, ``res``,
  the align mode, the split and :data:`CACHE_VERSION`; both files are written atomically
  (:mod:`recon3d.io.atomic`). A hit reads no image.
* :class:`FaceBatches`: the batch of a training step, from ``(seed, step)`` alone (a permutation
  per epoch from ``torch.Generator().manual_seed(seed + epoch)``), so a resumed run sees the same
  batches.

Unreadable or corrupt images are skipped with a warning that counts them; they never stop a load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import BackendUnavailableError, Recon3DError
from ..io.atomic import atomic_file
from ..ops.align import TEMPLATE_68, align_face, similarity_transform
from .augment import to_float
from .splits import is_held_out, photo_key

__all__ = ["FaceSet", "load_faces", "FaceBatches", "list_photos", "default_cache_dir", "align_face",
           "similarity_transform", "TEMPLATE_68", "PHOTO_SUFFIXES", "CACHE_VERSION", "ALIGN_MODES", "SPLITS"]

log = logging.getLogger(__name__)

#: file name endings searched for (case-insensitive)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: bumped whenever decoding, resizing or alignment changes what a cache holds
CACHE_VERSION = 1
ALIGN_MODES = ("auto", "none", "detect")
SPLITS = ("train", "val", "all")


#: refuse larger images (width x height) before decoding (as recon3d.io.load_image does)
_MAX_PIXELS = 50_000_000


@dataclass
class FaceSet:
    """A decoded face set.

    Attributes:
        images: ``(N, 3, res, res)`` uint8 on the CPU (memory-mapped from the cache on a hit).
        keys: the photo key (``<folder>/<stem>``, the split key) of each image.
        root: the folder the photos were read from.
        res: the side of the images.
        align: the alignment used (``"none"`` or ``"detect"``; ``"auto"`` resolved).
        skipped: relative paths of the photos left out (unreadable, or no face found).
        paths: relative path (posix) of each image under ``root``.
        cache_file: the ``.npy`` the images came from or were written to (None when not cached).
    """

    images: torch.Tensor
    keys: list[str]
    root: Path
    res: int
    align: str = "none"
    skipped: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    cache_file: Path | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/recon3d/faces`` (``~/.cache/recon3d/faces`` when unset), the convention of
    :mod:`recon3d.detect.fa_backend`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "recon3d" / "faces"


def list_photos(root: str | os.PathLike) -> list[Path]:
    """Every photo under ``root`` (recursive; :data:`PHOTO_SUFFIXES`, any case), sorted by relative
    posix path; hidden files and folders (name starting with ``.``) are ignored."""
    root = Path(root)
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(PHOTO_SUFFIXES):
                p = Path(dirpath) / name
                out.append((p.relative_to(root).as_posix(), p))
    out.sort(key=lambda t: t[0])
    return [p for _, p in out]


def _fingerprint(root: Path, files: list[Path], res: int, align: str, split: str, val_percent: float) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": CACHE_VERSION, "root": str(root), "res": res, "align": align, "split": split,
                         "val_percent": val_percent}, sort_keys=True).encode())
    for p in files:
        try:
            st = p.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:  # vanished or unreadable meanwhile: decoding will skip it
            size, mtime = -1, -1
        h.update(f"\n{p.relative_to(root).as_posix()}\t{size}\t{mtime}".encode())
    return h.hexdigest()[:20]


def _open_rgb(path: Path) -> Image.Image:
    """Decode a photo to an upright RGB PIL image (EXIF orientation applied, alpha on white)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            w, h = im.size
            if w * h > _MAX_PIXELS:
                raise ValueError(f"{w}x{h} is larger than {_MAX_PIXELS} pixels")
            im.load()
            if im.getexif().get(0x0112, 1) not in (None, 1):
                im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, rgba).convert("RGB")
            return im.convert("RGB") if im.mode != "RGB" else im.copy()


def _resize(im: Image.Image, res: int) -> np.ndarray:
    """``(3, res, res)`` uint8 of a (square) image resized with Lanczos (box pre-reduction when
    shrinking by 2x or more)."""
    if im.size != (res, res):
        gap = 2.0 if min(im.size) >= 2 * res else None
        im = im.resize((res, res), Image.LANCZOS, reducing_gap=gap)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def _header_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # unreadable: left to the decoding pass, which counts it
        return None


def _is_aligned(files: list[Path], workers: int) -> bool:
    """Whether every readable image (header only) is square and all have one size."""
    with ThreadPoolExecutor(workers) as ex:
        sizes = {s for s in ex.map(_header_size, files, chunksize=64) if s is not None}
    return len(sizes) == 1 and next(iter(sizes))[0] == next(iter(sizes))[1]


def _progress(it: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="img", smoothing=0.05)


def _decode_resized(path: Path, res: int) -> np.ndarray | str:
    try:
        return _resize(_open_rgb(path), res)
    except Exception as e:  # corrupt, truncated, not an image, too large: skipped and counted
        return f"{type(e).__name__}: {e}"


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _load_cache(npy: Path, meta_path: Path, root: Path, res: int) -> FaceSet | None:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        arr = np.load(npy, mmap_mode="c")  # copy-on-write: lazy, and writable for torch
    except (OSError, ValueError) as e:
        log.warning("load_faces(): ignoring a broken cache %s (%s)", npy, e)
        return None
    if meta.get("version") != CACHE_VERSION or arr.shape != (len(meta["keys"]), 3, res, res) or arr.dtype != np.uint8:
        log.warning("load_faces(): ignoring a cache that does not match its keys: %s", npy)
        return None
    return FaceSet(torch.from_numpy(arr), list(meta["keys"]), root, res, meta["align"], list(meta["skipped"]),
                   list(meta["paths"]), npy)


def _write_cache(fs: FaceSet, npy: Path, meta_path: Path) -> None:
    with atomic_file(npy) as fh:
        np.save(fh, np.ascontiguousarray(fs.images.numpy()))
    meta = {"version": CACHE_VERSION, "root": str(fs.root), "res": fs.res, "align": fs.align, "keys": fs.keys,
            "paths": fs.paths, "skipped": fs.skipped}
    with atomic_file(meta_path, "w") as fh:  # written last: a cache without its JSON is never read
        json.dump(meta, fh)


def load_faces(root: str | os.PathLike, res: int, *, split: str = "train", val_percent: float = 5.0,
               cache_dir: str | os.PathLike | None = None, align: str = "auto", limit: int | None = None,
               progress: bool = True) -> FaceSet:
    """Load the face photos under ``root`` as ``(N, 3, res, res)`` uint8, cached.

    Args:
        root: a folder of photos (searched recursively, sorted by relative path).
        res: output side in pixels.
        split: ``"train"`` (photos not held out), ``"val"`` (held out) or ``"all"``; a photo is held
            out when ``is_held_out(photo_key(path, "/"), val_percent)``.
        val_percent: percent of photos held out for validation.
        cache_dir: where the cache files go (default :func:`default_cache_dir`); ``False`` is not
            accepted: the cache is what makes the second call fast.
        align: ``"none"`` (already aligned: resize only), ``"detect"`` (detect and warp to
            :data:`TEMPLATE_68`) or ``"auto"`` (``"none"`` when every image is square and of one
            size, else ``"detect"``).
        limit: keep only the first ``limit`` photos of the split (before decoding).
        progress: show a tqdm bar while decoding.

    Returns:
        A :class:`FaceSet`; on a cache hit its images are memory-mapped and no image is read.

    Raises:
        Recon3DError: ``root`` is not a folder, or it holds no photo of the split, or none could be
            read.
        ValueError: bad ``split``, ``align``, ``res`` or ``limit``.
    """
    if split not in SPLITS:
        raise ValueError(f"load_faces(): split must be one of {SPLITS}, got {split!r}")
    if align not in ALIGN_MODES:
        raise ValueError(f"load_faces(): align must be one of {ALIGN_MODES}, got {align!r}")
    if int(res) != res or res < 8:
        raise ValueError(f"load_faces(): res must be an integer >= 8, got {res!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"load_faces(): limit must be >= 1 or None, got {limit!r}")
    res = int(res)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise Recon3DError(f"load_faces(): {root}: not a folder")
    t0 = time.perf_counter()
    files = list_photos(root)
    if split != "all":
        want_val = split == "val"
        files = [p for p in files if is_held_out(photo_key(p, "/"), val_percent) == want_val]
    if limit is not None:
        files = files[:limit]
    if not files:
        raise Recon3DError(f"load_faces(): no photo ({'/'.join(PHOTO_SUFFIXES)}) of split {split!r} under {root}")

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    tag = _fingerprint(root, files, res, align, split, val_percent)
    npy, meta_path = cache / f"faces-{res}-{tag}.npy", cache / f"faces-{res}-{tag}.json"
    if npy.is_file() and meta_path.is_file():
        fs = _load_cache(npy, meta_path, root, res)
        if fs is not None:
            log.info("load_faces(): %d images from the cache %s in %.2f s", len(fs), npy, time.perf_counter() - t0)
            return fs

    workers = _workers()
    mode = align
    if mode == "auto":
        mode = "none" if _is_aligned(files, workers) else "detect"
    if mode == "none":
        ex = ThreadPoolExecutor(workers)
        stream: Iterable = ex.map(lambda p: _decode_resized(p, res), files)
        desc = f"faces {root.name} {res}px"
    else:
        ex, stream, desc = None, (_detect_one(p, res) for p in files), f"detect+align {res}px"  # one thread: dlib
    buf = np.empty((len(files), 3, res, res), np.uint8)  # filled in place: no second copy of the set
    errors: dict[int, str] = {}
    try:
        for i, r in enumerate(_progress(stream, len(files), desc, progress)):
            if isinstance(r, str):
                errors[i] = r
            else:
                buf[i] = r
    finally:
        if ex is not None:
            ex.shutdown(cancel_futures=True)

    rel = [p.relative_to(root).as_posix() for p in files]
    ok = [i for i in range(len(files)) if i not in errors]
    skipped = [rel[i] for i in sorted(errors)]
    if skipped:
        reasons = [f"{rel[i]} ({errors[i]})" for i in sorted(errors)]
        faceless = sum(1 for r in errors.values() if r == _NO_FACE)
        why = f"{len(skipped) - faceless} unreadable" + (f", {faceless} without a face" if mode == "detect" else "")
        log.warning("load_faces(): skipped %d of %d photos under %s (%s), e.g. %s", len(skipped), len(files), root,
                    why, "; ".join(reasons[:3]))
        warnings.warn(f"load_faces(): skipped {len(skipped)} of {len(files)} photos under {root} ({why}); "
                      f"first: {reasons[0]}", stacklevel=2)
    if not ok:
        raise Recon3DError(f"load_faces(): none of the {len(files)} photos under {root} could be used")
    images = buf[ok] if errors else buf
    fs = FaceSet(torch.from_numpy(images), [photo_key(files[i], "/") for i in ok], root, res, mode, skipped,
                 [rel[i] for i in ok], npy)
    try:
        _write_cache(fs, npy, meta_path)
    except OSError as e:
        log.warning("load_faces(): could not write the cache %s (%s); the next call decodes again", npy, e)
        fs.cache_file = None
    log.info("load_faces(): %d images (%s) decoded in %.2f s", len(fs), mode, time.perf_counter() - t0)
    return fs


def _largest_face_landmarks(u8: np.ndarray) -> np.ndarray | None:
    """``(68, 2)`` landmarks of the largest face (recon3d's default dlib chain), or None."""
    from ..detect import detect_faces

    dets = detect_faces(u8)
    return dets[0].lmk_px.numpy() if dets else None


_NO_FACE = "no face found"


def _detect_one(path: Path, res: int) -> np.ndarray | str:
    try:
        pil = _open_rgb(path)
    except Exception as e:  # unreadable: skipped and counted
        return f"{type(e).__name__}: {e}"
    try:
        lmk = _largest_face_landmarks(np.asarray(pil))
        if lmk is None:
            return _NO_FACE
        return align_face(pil, lmk, res)
    except BackendUnavailableError:  # no detector at all: not a problem of this photo
        raise
    except Exception as e:  # a degenerate detection or an odd image: skipped and counted
        return f"{type(e).__name__}: {e}"


class FaceBatches:
    """Training batches of a :class:`FaceSet`, a pure function of ``(seed, step)``.

    Epoch ``e`` uses the permutation ``torch.randperm(N, generator=torch.Generator().manual_seed(seed + e))``
    and is ``steps_per_epoch = max(1, N // batch_size)`` batches long (the last partial batch is
    dropped; a set smaller than a batch is repeated). ``batch(step)`` is the batch of global step
    ``step`` as float in ``[-1, 1]``, so a resumed run sees exactly the batches it would have seen.

    >>> fs = FaceSet(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 8, 8), [], Path("."), 8)
    >>> fb = FaceBatches(fs, 4, seed=0)
    >>> fb.steps_per_epoch, tuple(fb.batch(3).shape), bool((fb.indices(5) == FaceBatches(fs, 4, 0).indices(5)).all())
    (2, (4, 3, 8, 8), True)
    """

    def __init__(self, faceset: FaceSet, batch_size: int, seed: int, *, device: str | torch.device = "cpu"):
        if batch_size < 1:
            raise ValueError(f"FaceBatches(): batch_size must be >= 1, got {batch_size}")
        if len(faceset) == 0:
            raise ValueError("FaceBatches(): the face set is empty")
        self.faceset, self.batch_size, self.seed = faceset, int(batch_size), int(seed)
        self.device = torch.device(device)
        n = len(faceset)
        self.steps_per_epoch = max(1, n // self.batch_size)
        self._perm: tuple[int, torch.Tensor] | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            n = len(self.faceset)
            g = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(n, generator=g)
            if n < self.batch_size:  # tiny set: repeat the permutation to fill one batch
                perm = perm.repeat(-(-self.batch_size // n))
            self._perm = (epoch, perm)
        return self._perm[1]

    def indices(self, step: int) -> torch.Tensor:
        """The image indices of global step ``step`` (``(batch_size,)`` int64)."""
        if step < 0:
            raise ValueError(f"FaceBatches.indices(): step must be >= 0, got {step}")
        epoch, k = divmod(int(step), self.steps_per_epoch)
        return self._permutation(epoch)[k * self.batch_size:(k + 1) * self.batch_size]

    def batch(self, step: int) -> torch.Tensor:
        """``(batch_size, 3, res, res)`` float32 in ``[-1, 1]`` on ``device`` for global step ``step``."""
        x = self.faceset.images[self.indices(step)]
        return to_float(x.to(self.device, non_blocking=True))
