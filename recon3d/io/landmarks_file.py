"""Read user-supplied 68-point iBUG landmarks from ``.pts``, ``.txt`` or ``.npy`` files.

Formats (all return ``(68, 2)`` float32, 0-based pixel centres, x right, y down):

* ``.pts`` -- 300-W format: ``version: 1`` / ``n_points: 68`` / ``{`` / 68 lines ``x y`` / ``}``.
  300-W coordinates are **1-based**; they are shifted with
  :func:`recon3d.conventions.pts_one_based_to_zero_based`.
* ``.txt`` -- 68 lines ``x y`` (whitespace or comma separated; ``#`` comments and blank lines
  ignored), already **0-based** (recon3d's convention, the same as the landmarks recon3d writes).
* ``.npy`` -- a numeric array of shape ``(68, 2)`` (or ``(68, 3)``; the third column is dropped),
  **0-based**.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from ..conventions import pts_one_based_to_zero_based
from ..errors import Recon3DError

__all__ = [
    "LandmarkFileError",
    "load_landmarks",
    "read_pts",
    "read_txt_landmarks",
    "read_npy_landmarks",
    "N_LANDMARKS",
    "check_landmarks",
]

#: Number of iBUG landmarks every reader expects.
N_LANDMARKS = 68


class LandmarkFileError(Recon3DError, ValueError):
    """A landmark file is missing, malformed or has the wrong number of points."""


def _check_points(xy: np.ndarray, path: Path, n: int) -> torch.Tensor:
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise LandmarkFileError(f"{path}: expected ({n}, 2) landmark coordinates, got shape {xy.shape}")
    if xy.shape[0] != n:
        raise LandmarkFileError(f"{path}: expected {n} landmarks, found {xy.shape[0]}")
    if not np.isfinite(xy).all():
        raise LandmarkFileError(f"{path}: landmark coordinates contain NaN or Inf")
    return torch.from_numpy(np.ascontiguousarray(xy, dtype=np.float32))


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise LandmarkFileError(f"{path}: landmark file not found")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise LandmarkFileError(f"{path}: not a text landmark file ({e})") from e


_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _parse_xy_lines(lines: list[tuple[int, str]], path: Path) -> np.ndarray:
    pts = []
    for lineno, line in lines:
        toks = line.replace(",", " ").split()
        if len(toks) != 2 or not all(_NUM.match(t) for t in toks):
            raise LandmarkFileError(f"{path}:{lineno}: expected two numbers 'x y', got {line.strip()!r}")
        pts.append((float(toks[0]), float(toks[1])))
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def read_pts(path: str | os.PathLike, *, n: int = N_LANDMARKS) -> torch.Tensor:
    """Read a 300-W ``.pts`` file and return 0-based ``(n, 2)`` float32 pixel coordinates.

    Raises:
        LandmarkFileError: missing file, missing ``{``/``}``, a bad line, or a point count that
            differs from ``n_points`` or ``n``.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    n_declared = None
    start = end = None
    for i, line in enumerate(lines):
        s = line.strip()
        if s.lower().startswith("n_points"):
            m = re.match(r"n_points\s*:\s*(\d+)\s*$", s, re.IGNORECASE)
            if not m:
                raise LandmarkFileError(f"{path}:{i + 1}: bad n_points line {s!r}")
            n_declared = int(m.group(1))
        elif s == "{" and start is None:
            start = i + 1
        elif s == "}" and start is not None:
            end = i
            break
    if start is None or end is None:
        raise LandmarkFileError(f"{path}: not a .pts file (expected a '{{' ... '}}' block of 'x y' lines)")
    body = [(i + 1, lines[i]) for i in range(start, end) if lines[i].strip()]
    xy = _parse_xy_lines(body, path)
    if n_declared is not None and n_declared != xy.shape[0]:
        raise LandmarkFileError(f"{path}: header says n_points: {n_declared} but {xy.shape[0]} points follow")
    return pts_one_based_to_zero_based(_check_points(xy, path, n))


def read_txt_landmarks(path: str | os.PathLike, *, n: int = N_LANDMARKS) -> torch.Tensor:
    """Read ``n`` lines of ``x y`` (0-based pixel coordinates) from a text file.

    Raises:
        LandmarkFileError: missing file, a line that is not two numbers, or a wrong count.
    """
    path = Path(path)
    text = _read_text(path)
    body = []
    for i, line in enumerate(text.splitlines()):
        s = line.split("#", 1)[0].strip()
        if s:
            body.append((i + 1, s))
    return _check_points(_parse_xy_lines(body, path), path, n)


def read_npy_landmarks(path: str | os.PathLike, *, n: int = N_LANDMARKS) -> torch.Tensor:
    """Read an ``.npy`` array ``(n, 2)`` or ``(n, 3)`` of 0-based pixel coordinates.

    Raises:
        LandmarkFileError: missing file, not a numeric ``.npy`` array, or a wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise LandmarkFileError(f"{path}: landmark file not found")
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:
        raise LandmarkFileError(f"{path}: not a valid .npy array ({type(e).__name__}: {e})") from e
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "iuf":
        raise LandmarkFileError(f"{path}: expected a real numeric array, got dtype {getattr(a, 'dtype', type(a))}")
    if a.ndim == 2 and a.shape[1] == 3:
        a = a[:, :2]
    return _check_points(a.astype(np.float64), path, n)


def load_landmarks(path: str | os.PathLike, *, n: int = N_LANDMARKS) -> torch.Tensor:
    """Read landmarks, choosing the reader from the suffix (``.pts``, ``.txt``, ``.npy``).

    Returns:
        ``(n, 2)`` float32, 0-based pixel centres (x right, y down).

    Raises:
        LandmarkFileError: unknown suffix or a bad file (see the individual readers).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".pts":
        return read_pts(path, n=n)
    if ext == ".txt":
        return read_txt_landmarks(path, n=n)
    if ext == ".npy":
        return read_npy_landmarks(path, n=n)
    raise LandmarkFileError(
        f"{path}: unknown landmark file type {ext!r}; expected .pts (1-based), .txt or .npy (0-based)"
    )


#: How far (fraction of the image side) a landmark may lie outside the image (a chin cut off by the
#: frame); farther points, or more than half of the points outside, are refused.
OUTSIDE_MARGIN = 0.25
#: Refuse landmarks whose best affine fit to the model's frontal landmark layout leaves more than this
#: relative RMS residual: 300-W faces <= 0.4, AFLW2000-3D profiles <= 0.65, shuffled order >= 0.9.
ORDER_RESIDUAL = 0.8


def check_landmarks(lmk, image_size: tuple[int, int], *, template=None, where: str = "landmarks") -> torch.Tensor:
    """Validate user landmarks for an image of ``image_size`` = ``(H, W)`` and return them as
    ``(68, 2)`` float32.

    Refused (:class:`LandmarkFileError`, the message says what is wrong): not a real numeric
    ``(68, 2)`` array (complex, object, strings), NaN/Inf, points far outside the image (beyond
    :data:`OUTSIDE_MARGIN` of its size, or more than half of them outside), a degenerate layout
    (all points on one spot or one line), and -- with ``template``, the model's ``(68, 2)`` frontal
    landmark layout -- points not in the iBUG-68 order (:data:`ORDER_RESIDUAL`).
    """
    if isinstance(lmk, torch.Tensor):
        if lmk.is_complex():
            raise LandmarkFileError(f"{where}: landmarks must be real numbers, got a complex tensor")
        a = lmk.detach().cpu().numpy()
    else:
        try:
            a = np.asarray(lmk)
        except Exception as e:
            raise LandmarkFileError(f"{where}: not a numeric array ({type(e).__name__}: {e})") from None
    if a.dtype.kind not in "iuf":
        raise LandmarkFileError(f"{where}: landmarks must be real numbers, got dtype {a.dtype}")
    if a.shape != (N_LANDMARKS, 2):
        raise LandmarkFileError(f"{where}: landmarks must be ({N_LANDMARKS}, 2) pixels, got shape {a.shape}")
    xy = a.astype(np.float64)
    if not np.isfinite(xy).all():
        raise LandmarkFileError(f"{where}: landmark coordinates contain NaN or Inf")
    H, W = image_size
    lo = np.array([-OUTSIDE_MARGIN * W, -OUTSIDE_MARGIN * H])
    hi = np.array([(1 + OUTSIDE_MARGIN) * W, (1 + OUTSIDE_MARGIN) * H])
    inside = ((xy >= -0.5) & (xy <= np.array([W - 0.5, H - 0.5]))).all(1)
    if ((xy < lo) | (xy > hi)).any() or inside.sum() < N_LANDMARKS / 2:
        raise LandmarkFileError(
            f"{where}: landmarks lie outside the {W}x{H} image (x in [{xy[:, 0].min():.4g}, {xy[:, 0].max():.4g}], "
            f"y in [{xy[:, 1].min():.4g}, {xy[:, 1].max():.4g}]); expected 0-based pixel coordinates of this image")
    c = xy - xy.mean(0)
    sv = np.linalg.svd(c, compute_uv=False)
    if sv[0] < 1e-6 or sv[1] / sv[0] < 0.05 or np.sqrt((c ** 2).sum(1).mean()) < 2.0:
        raise LandmarkFileError(f"{where}: degenerate landmarks (all on one spot or one line; spread "
                                f"{np.sqrt((c ** 2).sum(1).mean()):.3g} px)")
    if template is not None:
        t = np.asarray(template, dtype=np.float64).reshape(N_LANDMARKS, 2)
        A = np.c_[t, np.ones(N_LANDMARKS)]
        sol, *_ = np.linalg.lstsq(A, xy, rcond=None)
        rel = float(np.sqrt(((xy - A @ sol) ** 2).sum(1).mean() / (c ** 2).sum(1).mean()))
        if rel > ORDER_RESIDUAL:
            raise LandmarkFileError(
                f"{where}: the 68 points do not look like a face in iBUG-68 order (relative misfit {rel:.2f} "
                f"> {ORDER_RESIDUAL}); check the point order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, "
                "mouth 48-67)")
    return torch.from_numpy(np.ascontiguousarray(xy, dtype=np.float32))
