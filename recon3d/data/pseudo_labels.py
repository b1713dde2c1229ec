"""Pseudo-labelled 68-point landmarks for unlabelled face photos (issue 19, lever 1).

The large-pose set of :mod:`recon3d.data.landmark_set` is synthesized from 300-W's 1,537 manually
labelled photos. ``../shared/faces-128`` has 11,850 more real people without labels. This module
labels them with recon3d's own front end and keeps only the confident ones, so their re-posed
views (:func:`recon3d.data.landmark_set.synthesize_set`) add identities, not label noise.

For each photo (:func:`pseudo_label`):

1. The photo is padded by reflection (``pad`` pixels a side). Aligned 128² crops are tight: the
   regressor's crop box (1.5 x the landmark box) and the synthesized views would otherwise be a
   third black border, a look real photos never have.
2. The landmark regressor runs on the photo and on its mirror image (2 passes each, from the box
   of the whole crop). Its label is the mean of the two, the mirrored run re-indexed.
3. Three confidence scores:
   * ``flip_nme``: the NME between the two runs (a face the network is unsure of gives two
     different answers);
   * ``fit_nme``: the NME between the label and the morphable model fitted to it (a landmark set
     no face shape explains is wrong somewhere);
   * ``yaw``: the regressor's yaw. The synthesis rotates a face away from its own pose, and a
     near-frontal source gives the cleanest views.
4. A photo is accepted when all three are under the :class:`PseudoLabelConfig` thresholds.

:func:`pseudo_label_folder` labels a folder, resumably. It writes one ``.npy`` (68 x 2, 0-based
pixels of the padded photo) per accepted photo under ``OUT/labels`` and one row per photo to
``OUT/pseudo_labels.csv``, rewritten atomically after each chunk. The padded photos themselves are
not written: :func:`recon3d.data.landmark_set.synthesize_set` pads again (``pad=``).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..conventions import IBUG68_MIRROR
from ..errors import Recon3DError
from ..io import load_image
from ..io.atomic import atomic_file
from ..ops import metrics

__all__ = ["PseudoLabelConfig", "PseudoLabel", "pad_reflect", "pseudo_label", "pseudo_label_folder",
           "read_pseudo_labels", "read_pad", "CSV_FIELDS"]

log = logging.getLogger(__name__)

CSV_FIELDS = ("stem", "accepted", "yaw", "pitch", "roll", "flip_nme", "fit_nme")


@dataclass(frozen=True)
class PseudoLabelConfig:
    """Padding and acceptance thresholds (NMEs as fractions of sqrt(w * h) of the landmark box)."""

    pad: int = 32
    max_abs_yaw: float = 30.0
    max_flip_nme: float = 0.02
    max_fit_nme: float = 0.012


@dataclass(frozen=True)
class PseudoLabel:
    """One photo's label: ``lmk (68, 2)`` pixels of the padded photo, the regressor's pose (degrees)
    and the two consistency scores; ``accepted`` applies the thresholds."""

    lmk: np.ndarray
    pose_deg: np.ndarray
    flip_nme: float
    fit_nme: float
    accepted: bool


def pad_reflect(image: np.ndarray, pad: int) -> np.ndarray:
    """``(H, W, C)`` image padded by ``pad`` pixels a side, mirrored at the border (no repeat of the
    edge pixel).

    >>> pad_reflect(np.arange(9.0).reshape(3, 3, 1), 2)[2:3, :, 0].tolist()
    [[2.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0]]
    """
    if pad <= 0:
        return image
    p = min(pad, image.shape[0] - 1, image.shape[1] - 1)
    out = np.pad(image, ((p, p), (p, p), (0, 0)), mode="reflect")
    if p < pad:  # tiny image: reflect as far as it goes, then repeat the edge
        out = np.pad(out, ((pad - p, pad - p), (pad - p, pad - p), (0, 0)), mode="edge")
    return out


def _mirror(lmk: np.ndarray, width: int) -> np.ndarray:
    m = lmk[list(IBUG68_MIRROR)].copy()
    m[:, 0] = (width - 1) - m[:, 0]
    return m


@torch.no_grad()
def pseudo_label(image: np.ndarray, regressor, model, config: PseudoLabelConfig = PseudoLabelConfig()) -> PseudoLabel:
    """Label one face photo that is a face crop (the face fills most of it; see the module doc).

    Args:
        image: ``(H, W, 3)`` float RGB in [0, 1] (unpadded).
        regressor: a :class:`~recon3d.nn.landmarks.LandmarkRegressor` (its ``flip_test`` is not used:
            both runs are made here).
        model: the morphable model for the fit-consistency score.
    """
    from ..fitting import FitConfig, default_intrinsics, fit_landmarks

    img = pad_reflect(np.asarray(image, dtype=np.float32), config.pad)
    H, W = img.shape[:2]
    p = config.pad
    box = np.array([p, p, W - p, H - p], dtype=np.float64)
    a = regressor(img, box)
    flipped = np.ascontiguousarray(img[:, ::-1])
    b = regressor(flipped, np.array([W - box[2], box[1], W - box[0], box[3]]))
    lb = _mirror(b.lmk_px.astype(np.float64), W)
    la = a.lmk_px.astype(np.float64)
    lmk = (la + lb) / 2
    pose = (a.pose_deg.astype(np.float64) + b.pose_deg.astype(np.float64) * np.array([-1.0, 1.0, -1.0])) / 2
    flip_nme = float(metrics.nme(la[None], lb[None])[0])
    K = default_intrinsics((H, W))
    fit = fit_landmarks(torch.from_numpy(lmk.astype(np.float32))[None], model=model, K=K,
                        config=FitConfig(lmk_iters=10))
    fit_nme = float(metrics.nme(fit.lmk_px[0].double().numpy()[None], lmk[None])[0])
    ok = (abs(pose[0]) <= config.max_abs_yaw and flip_nme <= config.max_flip_nme and fit_nme <= config.max_fit_nme
          and bool(np.isfinite(lmk).all()))
    return PseudoLabel(lmk=lmk.astype(np.float32), pose_deg=pose.astype(np.float32), flip_nme=flip_nme,
                       fit_nme=fit_nme, accepted=bool(ok))


def read_pseudo_labels(out: str | Path) -> dict[str, dict]:
    """The rows of ``OUT/pseudo_labels.csv`` and of every shard's ``OUT/shard*/pseudo_labels.csv``,
    by photo stem (empty when there is none yet)."""
    out = Path(out)
    rows: dict[str, dict] = {}
    for f in [out / "pseudo_labels.csv", *sorted(out.glob("shard*/pseudo_labels.csv"))]:
        if f.is_file():
            with f.open(newline="") as fh:
                rows.update({r["stem"]: r for r in csv.DictReader(fh)})
    return rows


def read_pad(out: str | Path) -> int:
    """The padding the labels under ``out`` were made with (from ``pseudo_labels_config.txt``).

    Raises:
        OSError: no labels there yet; ValueError: a config without ``pad``.
    """
    out = Path(out)
    for f in [out / "pseudo_labels_config.txt", *sorted(out.glob("shard*/pseudo_labels_config.txt"))]:
        if f.is_file():
            for line in f.read_text().splitlines():
                if line.startswith("pad="):
                    return int(line[4:])
            raise ValueError(f"{f} has no pad= line")
    raise FileNotFoundError(f"no pseudo_labels_config.txt under {out}: run python -m pipelines.pseudo_label first")


def _write_rows(out: Path, rows: dict[str, dict], config: PseudoLabelConfig) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for k in sorted(rows):
        w.writerow({f: rows[k][f] for f in CSV_FIELDS})
    with atomic_file(out / "pseudo_labels.csv", "w") as fh:
        fh.write(buf.getvalue())
    with atomic_file(out / "pseudo_labels_config.txt", "w") as fh:
        fh.write("".join(f"{k}={v}\n" for k, v in asdict(config).items()))


def pseudo_label_folder(photos: list[Path], out: str | Path, regressor, model,
                        config: PseudoLabelConfig = PseudoLabelConfig(), *, shard: tuple[int, int] = (0, 1),
                        chunk: int = 200, progress: Callable[[Iterable], Iterable] | None = None) -> dict[str, int]:
    """Label ``photos`` (those of shard ``(k, n)``: every n-th from k) not labelled yet under ``out``.

    Writes ``out/labels/<stem>.npy`` for accepted photos and a row per photo to
    ``out/pseudo_labels.csv`` (``out/shard<k>of<n>/pseudo_labels.csv`` for a shard of n > 1;
    :func:`read_pseudo_labels` merges them). Unreadable photos are logged and counted, never fatal.

    Returns:
        counts: ``done`` (this run), ``accepted`` (this run), ``failed``, ``skipped`` (labelled before).
    """
    out = Path(out)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    k, n = shard
    part = out if n == 1 else out / f"shard{k}of{n}"
    part.mkdir(parents=True, exist_ok=True)
    rows = read_pseudo_labels(part) if n > 1 else read_pseudo_labels(out)
    mine = [p for i, p in enumerate(sorted(photos)) if i % n == k]
    todo = [p for p in mine if p.stem not in rows]
    counts = {"done": 0, "accepted": 0, "failed": 0, "skipped": len(mine) - len(todo)}
    for i, p in enumerate((progress or iter)(todo)):
        try:
            img = load_image(p).image.numpy()
            lab = pseudo_label(img, regressor, model, config)
        except (Recon3DError, OSError, ValueError) as e:
            counts["failed"] += 1
            log.error("%s: %s", p, e)
            continue
        if lab.accepted:
            with atomic_file(out / "labels" / f"{p.stem}.npy") as fh:
                np.save(fh, lab.lmk)
            counts["accepted"] += 1
        rows[p.stem] = {"stem": p.stem, "accepted": int(lab.accepted), "yaw": f"{lab.pose_deg[0]:.2f}",
                        "pitch": f"{lab.pose_deg[1]:.2f}", "roll": f"{lab.pose_deg[2]:.2f}",
                        "flip_nme": f"{lab.flip_nme:.5f}", "fit_nme": f"{lab.fit_nme:.5f}"}
        counts["done"] += 1
        if (i + 1) % chunk == 0:
            _write_rows(part, rows, config)
    _write_rows(part, rows, config)
    return counts
