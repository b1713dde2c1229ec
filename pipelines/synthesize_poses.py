"""Synthesize a large-pose training set (300W-LP recipe) from photos with 68-point annotations.

    python -m pipelines.synthesize_poses ../shared/300w/afw ../shared/300w/helen_trainset \\
        ../shared/300w/helen_testset --out ~/.cache/recon3d/synth --views 24

Every photo needs a 300-W ``.pts`` file next to it (1-based coordinates). For each photo the
default morphable model (or ``--model``) is fitted to the annotation and ``--views`` re-posed
crops are rendered (:func:`recon3d.regressor.synth.synthesize_views`; yaw out to ±90°, pitch and
roll jitter, crop jitter), plus the photo at its own pose. One ``.npz`` per photo is written
atomically under ``OUT/samples/``; a rerun skips photos already done (resumable), ``--shard K/N``
splits the work between processes. The split is deterministic: a photo whose name hashes into
``--val-percent`` goes to ``OUT/val.txt``, the rest to ``OUT/train.txt``. ``--contact-sheet`` writes
a grid of samples with their landmarks. The same ``--seed`` gives the same set.

Never use AFLW2000-3D here: it is the test set.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

from ._cli import add_common, load_model_arg, setup_logging

log = logging.getLogger("pipelines.synthesize_poses")


def _annotated_images(dirs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    out, missing = [], []
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            missing.append(f"{d} (not a folder)")
            continue
        n0 = len(out)
        for img in sorted(q for q in p.iterdir() if q.suffix.lower() in {".jpg", ".jpeg", ".png"}):
            pts = img.with_suffix(".pts")
            if pts.is_file():
                out.append((img, pts))
        if len(out) == n0:
            missing.append(f"{d} (no image with a .pts file)")
    return out, missing


def sample_key(img: Path) -> str:
    """Stable name of a photo: ``<folder>__<stem>``."""
    return f"{img.parent.name}__{img.stem}"


def is_val(key: str, percent: float) -> bool:
    """Deterministic split by hash of the key."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return (h % 10000) < percent * 100


def _save_atomic(path: Path, **arrays) -> None:
    import numpy as np

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def contact_sheet(sample_dir: Path, out: Path, n: int = 48, cols: int = 8, seed: int = 0) -> None:
    """A grid of ``n`` random samples with their landmarks (green) and yaw written below."""
    import numpy as np
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.synthesize_poses", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="*", help="folders of photos with 300-W .pts files")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--views", type=int, default=24, help="re-posed views per photo (default 24), plus the photo's own pose")
    ap.add_argument("--size", type=int, default=128, help="crop side in pixels (default 128)")
    ap.add_argument("--max-yaw", type=float, default=90.0, help="largest |yaw| in degrees (default 90)")
    ap.add_argument("--val-percent", type=float, default=10.0, help="percent of photos held out (default 10)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos (after sorting)")
    ap.add_argument("--shard", default="0/1", help="K/N: process every N-th photo starting at K (default 0/1)")
    ap.add_argument("--model", default=None, help="morphable model .npz (default: the shipped model)")
    ap.add_argument("--contact-sheet", default=None, help="write a PNG grid of samples here (after synthesis)")
    add_common(ap)
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    try:
        k, n = (int(x) for x in args.shard.split("/"))
        if not 0 <= k < n:
            raise ValueError
    except ValueError:
        ap.error(f"--shard must be K/N with 0 <= K < N, got {args.shard!r}")
    if args.views < 0 or args.size < 32:
        ap.error("--views must be >= 0 and --size >= 32")
    out = Path(args.out).expanduser()
    samples = out / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    if not args.folders:
        if args.contact_sheet:
            contact_sheet(samples, Path(args.contact_sheet), seed=args.seed)
            return 0
        ap.error("give at least one folder of annotated photos (or only --contact-sheet)")
    if any("aflw2000" in f.lower() for f in args.folders):
        ap.error("AFLW2000-3D is the test set: do not train on it")
    items, missing = _annotated_images(args.folders)
    for m in missing:
        log.error("input %s", m)
    if args.limit:
        items = items[: args.limit]
    if not items:
        print("no annotated photos found", file=sys.stderr)
        return 2

    import numpy as np
    import torch
    from tqdm import tqdm

    from recon3d.errors import Recon3DError
    from recon3d.io import load_image, load_landmarks
    from recon3d.regressor.synth import sample_poses, synthesize_views

    keys = [sample_key(i) for i, _ in items]
    (out / "val.txt").write_text("".join(f"{key}\n" for key in keys if is_val(key, args.val_percent)))
    (out / "train.txt").write_text("".join(f"{key}\n" for key in keys if not is_val(key, args.val_percent)))
    model = load_model_arg(args.model, args.device)
    if model is None:
        from recon3d.morphable.default import load_default_model

        model = load_default_model()
    torch.set_num_threads(1)
    mine = [(i, it) for i, it in enumerate(items) if i % n == k]
    todo = [(i, it) for i, it in mine if not (samples / f"{keys[i]}.npz").exists()]
    log.info("%d photos in this shard, %d already done", len(mine), len(mine) - len(todo))
    failures = []
    for i, (img_path, pts) in tqdm(todo, desc="synthesize", unit="photo", disable=args.quiet):
        key = keys[i]
        seed = int(hashlib.sha256(f"{args.seed}:{key}".encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed)
        try:
            img = load_image(img_path).image.numpy()
            lmk = load_landmarks(pts).numpy()
            poses = sample_poses(rng, args.views, max_yaw=args.max_yaw)
            v = synthesize_views(img, lmk, model, poses, size=args.size, seed=seed, include_source=True)
        except (Recon3DError, OSError, ValueError) as e:
            failures.append((str(img_path), str(e)))
            log.error("%s: %s", img_path, e)
            continue
        _save_atomic(samples / f"{key}.npz", images=v.images, lmk=v.lmk, lmk_z=v.lmk_z, pose_deg=v.pose_deg,
                     box=v.box, source_pose_deg=v.source_pose_deg)
    if args.contact_sheet:
        contact_sheet(samples, Path(args.contact_sheet), seed=args.seed)
    done = len(list(samples.glob("*.npz")))
    print(f"{done} photos synthesized in {out} ({len(failures)} failed in this run)")
    for p, e in failures:
        print(f"  FAILED {p}: {e}", file=sys.stderr)
    return 1 if failures or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
