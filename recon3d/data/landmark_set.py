"""The synthesized large-pose landmark set on disk: writing it (one ``.npz`` per source photo under
``ROOT/samples``, ``ROOT/train.txt`` / ``ROOT/val.txt`` with the photo keys of each split), reading
it back and augmenting batches of it for training.

Sample files hold ``images (N, S, S, 3)`` uint8, ``lmk (N, 68, 2)``, ``lmk_z (N, 68)``,
``pose_deg (N, 3)``, ``box (N, 4)`` float32 and ``source_pose_deg (3,)``
(see :class:`recon3d.data.poses.SynthViews`); files are written atomically, so a set can be read
while synthesis still runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..conventions import IBUG68_MIRROR
from ..errors import Recon3DError
from ..io import load_image, load_landmarks
from ..io.atomic import atomic_file
from ..nn.landmarks import INPUT_SIZE, STORED_SIZE, normalise
from .poses import SynthViews, sample_poses, synthesize_views
from .pseudo_labels import pad_reflect
from .splits import hash32, is_held_out, photo_key

__all__ = ["annotated_images", "pseudo_labelled_images", "image_files", "synthesize_set", "save_views", "contact_sheet", "SampleSet", "load_samples",
           "augment_batch", "IMAGE_SUFFIXES"]

log = logging.getLogger(__name__)

#: photo files next to which a 300-W ``.pts`` file is looked for
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_FLIP = torch.tensor(IBUG68_MIRROR, dtype=torch.long)


def image_files(folder: str | Path) -> list[Path]:
    """The photos (:data:`IMAGE_SUFFIXES`) in ``folder``, sorted by name; ``[]`` if it is not a folder."""
    p = Path(folder)
    return sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else []


def annotated_images(dirs: Iterable[str | Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``(image, .pts)`` pairs in the folders (sorted by image name), and the inputs that gave none."""
    out, missing = [], []
    for d in dirs:
        if not Path(d).is_dir():
            missing.append(f"{d} (not a folder)")
            continue
        got = [(img, img.with_suffix(".pts")) for img in image_files(d) if img.with_suffix(".pts").is_file()]
        if not got:
            missing.append(f"{d} (no image with a .pts file)")
        out += got
    return out, missing


def pseudo_labelled_images(dirs: Iterable[str | Path], labels: str | Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``(image, LABELS/labels/<stem>.npy)`` pairs for the photos of ``dirs`` that
    :mod:`recon3d.data.pseudo_labels` accepted, and the inputs that gave none."""
    lab = Path(labels) / "labels"
    out, missing = [], []
    for d in dirs:
        got = [(img, lab / f"{img.stem}.npy") for img in image_files(d) if (lab / f"{img.stem}.npy").is_file()]
        if not got:
            missing.append(f"{d} (no photo with a pseudo-label in {labels})")
        out += got
    return out, missing


def save_views(path: Path, views: SynthViews) -> None:
    """Write one photo's views as a compressed ``.npz``, atomically (temporary file + rename)."""
    with atomic_file(path) as fh:  # follows the umask
        np.savez_compressed(fh, images=views.images, lmk=views.lmk, lmk_z=views.lmk_z, pose_deg=views.pose_deg,
                            box=views.box, source_pose_deg=views.source_pose_deg)


def synthesize_set(items: list[tuple[Path, Path]], out: Path, model, *, views: int = 24, size: int = 128,
                   max_yaw: float = 90.0, val_percent: float = 10.0, shard: tuple[int, int] = (0, 1), seed: int = 0,
                   progress: Callable[[Iterable], Iterable] | None = None, pad: int = 0) -> list[tuple[str, str]]:
    """Synthesize the views of every photo of shard ``shard = (k, n)`` (every n-th from k) that has
    no sample file yet, and (re)write the split lists for all ``items``.

    ``items`` pair each photo with its landmark file (any :func:`recon3d.io.load_landmarks` format).
    ``pad > 0`` pads the photo by reflection first
    (:func:`recon3d.data.pseudo_labels.pad_reflect`; the landmarks must then be in the padded
    photo's pixels, as :mod:`recon3d.data.pseudo_labels` writes them): tight face crops get
    plausible surroundings instead of a black border.

    Each photo gets ``views`` re-posed crops (:func:`~recon3d.data.poses.sample_poses` up to
    ``max_yaw``) plus its own pose, seeded by the hash of ``seed`` and its key. A photo whose key
    hashes into ``val_percent`` is held out (``val.txt``). ``progress`` wraps the iterable of
    photos to do (e.g. ``tqdm``).

    Returns:
        ``(photo, error)`` for the photos that failed.
    """
    k, n = shard
    samples = out / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    keys = [photo_key(i) for i, _ in items]
    (out / "val.txt").write_text("".join(f"{key}\n" for key in keys if is_held_out(key, val_percent)))
    (out / "train.txt").write_text("".join(f"{key}\n" for key in keys if not is_held_out(key, val_percent)))
    mine = [(i, it) for i, it in enumerate(items) if i % n == k]
    todo = [(i, it) for i, it in mine if not (samples / f"{keys[i]}.npz").exists()]
    log.info("%d photos in this shard, %d already done", len(mine), len(mine) - len(todo))
    failures = []
    for i, (img_path, pts) in (progress or iter)(todo):
        key = keys[i]
        s = hash32(f"{seed}:{key}")
        try:
            img = load_image(img_path).image.numpy()
            if pad > 0:
                img = pad_reflect(img, pad)
            lmk = load_landmarks(pts).numpy()
            poses = sample_poses(np.random.default_rng(s), views, max_yaw=max_yaw)
            v = synthesize_views(img, lmk, model, poses, size=size, seed=s, include_source=True)
        except (Recon3DError, OSError, ValueError) as e:
            failures.append((str(img_path), str(e)))
            log.error("%s: %s", img_path, e)
            continue
        save_views(samples / f"{key}.npz", v)
    return failures


def contact_sheet(sample_dir: Path, out: Path, n: int = 48, cols: int = 8, seed: int = 0) -> None:
    """A grid of ``n`` random samples with their landmarks (green) and yaw written below."""
    from PIL import Image, ImageDraw

    files = sorted(sample_dir.glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no samples in {sample_dir}")
    rng = np.random.default_rng(seed)
    tiles = []
    for f in rng.choice(files, size=min(n, len(files)), replace=False):
        z = np.load(f)
        k = int(rng.integers(len(z["images"])))
        im = Image.fromarray(z["images"][k])
        d = ImageDraw.Draw(im)
        for x, y in z["lmk"][k]:
            d.ellipse([x - 1, y - 1, x + 1, y + 1], fill=(0, 255, 0))
        d.text((2, 2), f"yaw {z['pose_deg'][k][0]:+.0f}", fill=(255, 255, 0))
        tiles.append(np.asarray(im))
    s = tiles[0].shape[0]
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.zeros((rows * s, cols * s, 3), np.uint8)
    for i, t in enumerate(tiles):
        sheet[(i // cols) * s:(i // cols + 1) * s, (i % cols) * s:(i % cols + 1) * s] = t
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)


@dataclass
class SampleSet:
    """Samples in memory: ``images (N, S, S, 3)`` uint8, ``lmk (N, 68, 2)``, ``lmk_z (N, 68)``,
    ``pose_deg (N, 3)`` float32 (crop pixels of the stored ``S``² crop)."""

    images: np.ndarray
    lmk: np.ndarray
    lmk_z: np.ndarray
    pose_deg: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def load_samples(root: str | Path, split: str | None = None) -> SampleSet:
    """All samples of ``split`` (``"train"``, ``"val"`` or None: every file) under ``root``.
    Photos listed in the split but not synthesized yet are skipped."""
    root = Path(root)
    files = sorted((root / "samples").glob("*.npz"))
    if split is not None:
        lst = root / f"{split}.txt"
        keys = set(lst.read_text().split()) if lst.is_file() else set()
        files = [f for f in files if f.stem in keys]
    imgs, lmk, lz, pose = [], [], [], []
    for f in files:
        try:
            with np.load(f) as z:
                imgs.append(z["images"])
                lmk.append(z["lmk"])
                lz.append(z["lmk_z"])
                pose.append(z["pose_deg"])
        except (OSError, ValueError, KeyError) as e:  # a file being written by another process
            log.warning("skipping %s: %s", f, e)
    if not imgs:
        S = STORED_SIZE
        return SampleSet(np.zeros((0, S, S, 3), np.uint8), np.zeros((0, 68, 2), np.float32),
                         np.zeros((0, 68), np.float32), np.zeros((0, 3), np.float32))
    return SampleSet(np.concatenate(imgs), np.concatenate(lmk).astype(np.float32), np.concatenate(lz).astype(np.float32),
                     np.concatenate(pose).astype(np.float32))


def augment_batch(images: torch.Tensor, lmk: torch.Tensor, lmk_z: torch.Tensor, pose: torch.Tensor,
                  gen: torch.Generator, *, train: bool = True, photometric: bool = True):
    """Crop the network window (random in training, central otherwise) and augment.

    Args:
        images: ``(B, S, S, 3)`` uint8; lmk ``(B, 68, 2)``, lmk_z ``(B, 68)``, pose ``(B, 3)`` float.

        train: random window, flips and (with ``photometric``) colour, blur, noise, occluders;
            otherwise the central window only.

    Returns:
        ``(x (B, 3, 112, 112) normalised, lmk, lmk_z, pose)`` in the window's pixels.
    """
    B, S = images.shape[0], images.shape[1]
    n = INPUT_SIZE
    m = (S - n) // 2
    if train:
        ox = torch.randint(0, S - n + 1, (B,), generator=gen)
        oy = torch.randint(0, S - n + 1, (B,), generator=gen)
    else:
        ox = oy = torch.full((B,), m, dtype=torch.long)
    ar = torch.arange(n)
    rows = (oy[:, None] + ar[None]).clamp(0, S - 1)
    cols = (ox[:, None] + ar[None]).clamp(0, S - 1)
    x = images[torch.arange(B)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B,n,n,3)
    lmk = lmk - torch.stack([ox, oy], 1)[:, None, :].float()
    lmk_z = lmk_z.clone()
    pose = pose.clone()
    x = normalise(x)
    if not train:
        return x, lmk, lmk_z, pose
    flip = torch.rand(B, generator=gen) < 0.5
    if flip.any():
        x[flip] = x[flip].flip(-1)
        lf = lmk[flip][:, _FLIP]
        lf[..., 0] = (n - 1) - lf[..., 0]
        lmk[flip] = lf
        lmk_z[flip] = lmk_z[flip][:, _FLIP]
        pose[flip] = pose[flip] * torch.tensor([-1.0, 1.0, -1.0])
    if not photometric:
        return x, lmk, lmk_z, pose

    def u(lo, hi, shape=(B, 1, 1, 1)):
        return lo + (hi - lo) * torch.rand(shape, generator=gen)

    gray = x.mean(1, keepdim=True)
    x = gray + (x - gray) * u(0.4, 1.5)
    x = torch.where(torch.rand(B, 1, 1, 1, generator=gen) < 0.1, gray.expand_as(x), x)
    mu = x.mean((1, 2, 3), keepdim=True)
    x = (x - mu) * u(0.6, 1.4) + mu + u(-0.6, 0.6)
    blur = torch.rand(B, generator=gen) < 0.25
    if blur.any():
        xb = F.avg_pool2d(x[blur], 2)
        x[blur] = F.interpolate(xb, size=(n, n), mode="bilinear", align_corners=False)
    x = x + torch.randn(x.shape, generator=gen) * u(0.0, 0.12)
    occ = torch.nonzero(torch.rand(B, generator=gen) < 0.3).ravel().tolist()
    for i in occ:
        w = int(torch.randint(n // 8, n // 2, (1,), generator=gen))
        h = int(torch.randint(n // 8, n // 2, (1,), generator=gen))
        x0 = int(torch.randint(0, n - w, (1,), generator=gen))
        y0 = int(torch.randint(0, n - h, (1,), generator=gen))
        fill = torch.randn(3, 1, 1, generator=gen) + 0.3 * torch.randn(3, h, w, generator=gen)
        x[i, :, y0:y0 + h, x0:x0 + w] = fill
    return x, lmk, lmk_z, pose
