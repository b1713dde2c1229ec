"""The restoration figure of docs/NEURAL.md: one real photo's face, degraded three ways, restored by each model.

    python tools/restore_figure.py --models unet-l1=U.safetensors ours=default refsr=default-ref \\
        --out docs/images/restoration.jpg [--photo PHOTO] [--seed 0]

The photo (default: scikit-image's astronaut, public domain, the project's demo image) is aligned to
the face template at 64² (its ground truth). Rows: two blind degradations (seed 002's ranges, seeds
``seed`` and ``seed + 1``) and 4x bicubic down-sampling. Columns: the input, each model without a
reference, each reference model with a reference, and the ground truth. The reference is the same
photo re-posed by recon3d's own rotation (``recon3d.data.references.repose_face``: another yaw,
relit, colour-jittered), so it shares the identity but not the pixels. Column titles go to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="NAME=PATH (default / default-ref: the shipped ones)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--photo", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--res", type=int, default=64)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from PIL import Image

    from recon3d.data.degrade import DEGRADE_002, degrade_batch
    from recon3d.data.references import repose_face
    from recon3d.detect import detect_faces
    from recon3d.io.image import contact_sheet, save_image
    from recon3d.nn.restoration import load_restorer, restore_aligned
    from recon3d.ops.align import align_face
    from recon3d.train.recipes.restore import bicubic_x4

    if args.photo:
        with Image.open(args.photo) as im:
            img = np.asarray(im.convert("RGB"))
    else:
        from skimage import data

        img = data.astronaut()
    dets = detect_faces(img)
    if not dets:
        print("error: no face in the photo", file=sys.stderr)
        return 1
    gt_u8 = torch.from_numpy(align_face(img, dets[0].lmk_px.numpy(), args.res))[None]
    ref_u8 = torch.from_numpy(repose_face(gt_u8[0].numpy(), 0, seed=args.seed, res=args.res)["image"])[None]

    def f(u8: torch.Tensor) -> torch.Tensor:
        return u8.float() / 127.5 - 1

    preset = DEGRADE_002.for_res(args.res)
    rows = [f(degrade_batch(gt_u8, args.seed, [i], preset)[0]) for i in (11, 12)] + [bicubic_x4(f(gt_u8))]
    nets = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        ref = path == "default-ref"
        nets[name] = load_restorer(None if path in ("default", "default-ref") else path, reference=ref)
    titles = ["input"] + list(nets) + [f"{n} + reference" for n, m in nets.items() if m.uses_reference] + ["ground truth"]
    tiles = []
    for x in rows:
        outs = [x] + [restore_aligned(m, x) for m in nets.values()]
        outs += [restore_aligned(m, x, f(ref_u8)) for m in nets.values() if m.uses_reference]
        outs.append(f(gt_u8))
        tiles += [((o[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0) for o in outs]
    sheet = contact_sheet(torch.stack(tiles).numpy(), len(titles))
    big = Image.fromarray(sheet)
    big = big.resize((big.width * 2, big.height * 2), Image.NEAREST)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_image(args.out, np.asarray(big))
    print("columns:", " | ".join(titles))
    print("rows: blind (seed 002 ranges) x2, 4x bicubic")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
