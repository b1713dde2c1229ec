"""The fitting presets side by side on AFLW2000-3D-style data: accuracy and fit time, same images.

    python bench/fit_presets.py DATA_DIR [--every 25] [--limit N] [--threads 1]
        [--presets default fast thorough]

For every ``--every``-th ``*.jpg`` (with its ``.mat``: ``pt3d_68``), the face is detected once with
the default ``recon3d`` backend, then reconstructed with each preset from the same landmarks.
Printed per preset (means over the images every preset fitted):

* NME of the fitted landmarks (normalised by sqrt(w*h) of the ground-truth box, as bench/aflw2000.py);
* thesis Table 4.2 L1 / SSIM (photo vs reconstruction textured from the photo, face region);
* "model L1": photo vs the 3DMM's own albedo x SH shading in the face region: how well the fitted
  albedo and light explain the photo (what texture completion and de-occlusion fill with);
* median fit seconds (``FitResult.timings['total']``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aflw2000 import masked_l1_ssim, nme  # noqa: E402


def _presets():
    from recon3d.fitting import FitConfig

    return {"default": FitConfig(), "fast": FitConfig.fast(), "thorough": FitConfig.thorough()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("--every", type=int, default=25, help="take every N-th image (default 25: 20 of 500)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--presets", nargs="+", default=["default", "fast", "thorough"], choices=sorted(_presets()))
    args = ap.parse_args(argv)

    import scipy.io as sio
    import torch
    from tqdm import tqdm

    from recon3d.detect import detect_faces
    from recon3d.io import load_image
    from recon3d.reconstruct import ReconstructConfig, reconstruct_all, render_overlay
    from recon3d.render import render_mesh

    torch.set_num_threads(args.threads)
    imgs = sorted(Path(args.data_dir).glob("*.jpg"))[:: max(1, args.every)]
    if args.limit:
        imgs = imgs[: args.limit]
    if not imgs:
        print(f"no *.jpg in {args.data_dir}", file=sys.stderr)
        return 2
    presets = {k: v for k, v in _presets().items() if k in args.presets}
    rows: dict[str, list[tuple[float, ...]]] = {k: [] for k in presets}
    skipped = 0
    for p in tqdm(imgs, desc="fit presets", unit="img"):
        gt = sio.loadmat(p.with_suffix(".mat"))["pt3d_68"][:2].T.astype(np.float64)
        loaded = load_image(p)
        dets = detect_faces(loaded.image, backend="recon3d")
        if not dets:
            skipped += 1
            continue
        img = loaded.image.numpy()
        for name, fc in presets.items():
            fc = replace(fc, dynamic_contour=not dets[0].landmarks_3d)
            rec = reconstruct_all(loaded, landmarks=dets[0].lmk_px, landmarks_3d=dets[0].landmarks_3d,
                                  config=ReconstructConfig(fit=fc, texture_size=256))[0]
            f = rec.fit
            mask = f.face_mask[0].numpy().astype(np.float32)
            l1, ssim = masked_l1_ssim(img, render_overlay(rec).numpy(), mask)
            out = render_mesh(f.verts_cam, rec.model.faces, f.camera.K, img.shape[:2],
                              vert_colors=rec.model.albedo(f.params.albedo), light=f.params.light)
            model_l1 = float(np.abs(out.image[0].numpy() - img)[mask > 0.5].mean())
            rows[name].append((nme(f.lmk_px[0].numpy(), gt), l1, ssim, model_l1, f.timings["total"]))

    print(f"\nfit presets on {len(imgs)} images of {args.data_dir} ({skipped} without a detection), "
          f"torch threads {args.threads}")
    print(f"{'preset':<10}{'n':>4}{'NME %':>9}{'L1':>9}{'SSIM':>8}{'model L1':>10}{'fit s':>8}")
    for name, v in rows.items():
        a = np.array(v)
        if not len(a):
            continue
        print(f"{name:<10}{len(a):>4}{a[:, 0].mean() * 100:>9.3f}{a[:, 1].mean():>9.4f}{a[:, 2].mean():>8.4f}"
              f"{a[:, 3].mean():>10.4f}{statistics.median(a[:, 4]):>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
