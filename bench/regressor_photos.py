"""The landmark regressor alone on annotated photos: NME per landmark group and its systematic part.

    python bench/regressor_photos.py DIR [DIR...] [--held-out-only] [--limit N] [--threads 1]

DIR holds images with 300-W ``.pts`` or AFLW2000-3D ``.mat`` (``pt3d_68``) landmarks. The regressor
(``load_regressor()`` defaults: 2 passes, flip test) starts from the crop box of the ground truth
(the protocol of the shipped weights' recorded check). ``--held-out-only`` keeps only 300-W photos
that ``pipelines.synthesize_poses`` put in its validation split (so the regressor never saw them).

Printed: NME (/ sqrt(w*h) of the ground-truth box) overall and per group (jaw, brows, nose, eyes,
mouth), and per group the length of the *mean* error vector (the systematic offset shared by all
photos: a difference of landmark definition shows up here, random error does not).
Note: 300-W's jaw points follow the 2-D silhouette, the regressor's the 3-D jaw line, so the jaw
group is not comparable on rotated 300-W faces.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

GROUPS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
          "mouth": range(48, 68)}


def _items(dirs: list[str], held_out_only: bool) -> list[tuple[Path, Path]]:
    from recon3d.data.splits import is_held_out, photo_key

    out = []
    for d in dirs:
        for img in sorted(Path(d).iterdir()):
            if img.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            lab = next((img.with_suffix(s) for s in (".pts", ".mat") if img.with_suffix(s).is_file()), None)
            if lab is None:
                continue
            if held_out_only and (lab.suffix != ".pts" or not is_held_out(photo_key(img), 10.0)):
                continue
            out.append((img, lab))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--held-out-only", action="store_true",
                    help="only 300-W photos in synthesize_poses' validation split (default 10 %%)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--regressor", nargs="+", default=[None], metavar="VERSION|FILE",
                    help="regressor(s) to score side by side on the same photos: shipped versions (v1, ...) or "
                         "weights files (default: the shipped default)")
    args = ap.parse_args(argv)

    import scipy.io as sio
    import torch
    from tqdm import tqdm

    from recon3d.io import load_image
    from recon3d.io.landmarks_file import load_landmarks
    from recon3d.nn.landmarks import load_regressor
    from recon3d.ops.crop import crop_box_from_landmarks

    torch.set_num_threads(args.threads)
    items = _items(args.dirs, args.held_out_only)[: args.limit]
    if not items:
        print(f"no annotated images under {args.dirs}", file=sys.stderr)
        return 2
    gts, imgs = [], []
    for img_p, lab in items:
        if lab.suffix == ".mat":
            gts.append(sio.loadmat(lab)["pt3d_68"][:2].T.astype(np.float64))
        else:
            gts.append(load_landmarks(lab).numpy().astype(np.float64))
        imgs.append(img_p)
    for name in args.regressor:
        reg = load_regressor(name)
        errs, offs = [], []
        for img_p, gt in tqdm(list(zip(imgs, gts, strict=True)), desc=f"regressor {name or 'default'}", unit="img"):
            img = load_image(img_p).image.numpy()
            pred = np.asarray(reg(img, crop_box_from_landmarks(gt)).lmk_px, dtype=np.float64)[:, :2]
            lo, hi = gt.min(0), gt.max(0)
            d = (pred - gt) / np.sqrt(np.prod(hi - lo))
            offs.append(d)
            errs.append(np.linalg.norm(d, axis=1))
        E, D = np.array(errs), np.array(offs)
        print(f"\nregressor {name or 'default'} on {len(items)} photos from {', '.join(args.dirs)}"
              f"{' (held-out 300-W photos only)' if args.held_out_only else ''}")
        print(f"NME all landmarks: {E.mean() * 100:.2f} %")
        print(f"{'group':<8}{'NME %':>8}{'systematic %':>14}")
        for g, r in GROUPS.items():
            sys_off = np.linalg.norm(D[:, list(r)].mean(0), axis=1).mean()
            print(f"{g:<8}{E[:, list(r)].mean() * 100:>8.2f}{sys_off * 100:>14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
