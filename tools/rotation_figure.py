"""The rotation figure of docs/EDITING.md: the input, recon3d's warp, the learned refiner and (with ``--latent``)
the latent pose editor at target yaws.

    python tools/rotation_figure.py ../shared/300w/helen_testset/A.jpg ... --out docs/images/rotation_refiner.png \\
        [--refiner W] [--latent W] [--yaws -45 -30 -15 0 15 30 45]

Per photo two rows: the warp (``refine="none"``) and the refined warp (``refine="net"``) at each absolute target
yaw (pitch 0), after the input; with ``--latent`` a third row: the W+ inversion of the aligned face, then the
latent editor's output at each target (64², upscaled). Each panel is the rotated face's landmark box plus a margin, resized to 128² (``deocclude_figure._panel``); a ``.jpg`` ``--out`` is written at quality 90.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--refiner", default=None, help="refiner weights (default: the shipped ones)")
    ap.add_argument("--latent", default=None, help="also a row of this latent pose encoder (recon3d.edit.latent_rotate)")
    ap.add_argument("--invert-steps", type=int, default=300)
    ap.add_argument("--yaws", type=float, nargs="+", default=[-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from deocclude_figure import _panel  # tools/ is on the path when a tool runs
    from PIL import Image

    from recon3d.edit._common import fit_tensors
    from recon3d.edit._learned_rotate import model_landmarks_px, refine_rotation
    from recon3d.edit.rotate import rotate_views
    from recon3d.nn.rotate_refine import load_rotation_refiner
    from recon3d.reconstruct import reconstruct

    net = load_rotation_refiner(args.refiner)
    rows = []
    for f in args.photos:
        rec = reconstruct(f)
        lm0, _ = model_landmarks_px(rec, fit_tensors(rec).verts_cam)
        first = _panel(rec.image.numpy(), lm0, 128)
        warp_row, net_row = [first], [np.zeros_like(first)]
        for r in rotate_views(rec, [(y, 0.0) for y in args.yaws], absolute=True):
            lm, _ = model_landmarks_px(rec, r.verts_cam)
            warp_row.append(_panel(r.image.numpy(), lm, 128))
            net_row.append(_panel(refine_rotation(net, rec, r)[0], lm, 128))
        rows += [np.concatenate(warp_row, 1), np.concatenate(net_row, 1)]
        if args.latent:
            from recon3d.edit.latent_rotate import latent_rotate

            lat = latent_rotate(rec.image, args.yaws, absolute=True, lmk_px=rec.lmk_detected_px,
                                encoder_weights=args.latent, steps=args.invert_steps)
            big = [np.asarray(Image.fromarray((np.clip(im.numpy(), 0, 1) * 255).astype(np.uint8)).resize(
                (128, 128), Image.BICUBIC)) for im in [lat.inverted] + [v.image for v in lat.views]]
            rows.append(np.concatenate(big, 1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out, quality=90)
    print(f"wrote {args.out}: {len(args.photos)} photos x (warp, refiner{', latent' if args.latent else ''}) at yaws {args.yaws}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
