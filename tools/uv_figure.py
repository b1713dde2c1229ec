"""The UV completion figure of docs/EDITING.md: profile photos' UV maps completed by mirror + Poisson and by
the learned UV generator, side by side, and each texture's frontal view.

    python tools/uv_figure.py ../shared/aflw2000-3d-dev/image00020.jpg ... --out docs/images/uv_completion.jpg \\
        [--generator W]

Per photo one row: the input (its landmark box), the texels the photo shows, the Poisson-completed UV map, the
learned one, and the face turned to yaw 0 with each (``rotate_face(..., texture_method=...)``, recon3d's warp).
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
    ap.add_argument("--generator", default=None, help="UV generator weights (default: the shipped ones)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    import torch
    from deocclude_figure import _panel  # tools/ is on the path when a tool runs
    from PIL import Image

    from recon3d.edit._common import fit_tensors
    from recon3d.edit._learned_rotate import model_landmarks_px
    from recon3d.edit.rotate import rotate_face
    from recon3d.nn.uv_generator import load_uv_generator
    from recon3d.reconstruct import ReconstructConfig, reconstruct
    from recon3d.texture import uv_raster
    from recon3d.texture.from_fit import texture_from_fit

    gen = load_uv_generator(args.generator)
    S = 128
    rows = []
    for f in args.photos:
        rec = reconstruct(f, config=ReconstructConfig(texture_size=256))
        ft = fit_tensors(rec)
        lm0, _ = model_landmarks_px(rec, ft.verts_cam)
        uvr = uv_raster(rec.model, resolution=256)
        albedo = rec.model.albedo(rec.fit.params.albedo.detach())
        cells = [_panel(rec.image.numpy(), lm0, S)]
        with torch.no_grad():
            tex = {m: texture_from_fit(rec.image[None], ft.verts_cam[None], rec.model.faces, ft.K, uvr, albedo_v=albedo,
                                       light=ft.light, method=m, uv_generator=gen) for m in ("poisson", "net")}
        seen = tex["poisson"].texture_visible[0] * tex["poisson"].visible[0, ..., None]
        for t in (seen, tex["poisson"].texture[0], tex["net"].texture[0]):
            im = Image.fromarray((t.clamp(0, 1).numpy() * 255).astype(np.uint8)).resize((S, S), Image.BICUBIC)
            cells.append(np.asarray(im))
        for m in ("poisson", "net"):
            r = rotate_face(rec, yaw_deg=0.0, pitch_deg=0.0, absolute=True, texture_method=m, uv_generator=gen)
            lm, _ = model_landmarks_px(rec, r.verts_cam)
            cells.append(_panel(r.image.numpy(), lm, S))
        rows.append(np.concatenate(cells, 1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out, quality=90)
    print(f"wrote {args.out}: {len(args.photos)} photos x (input, seen texels, Poisson UV, learned UV, "
          "frontal Poisson, frontal learned)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
