"""The de-occlusion fill figure of docs/EDITING.md: classical vs learned fill, side by side.

    python tools/deocclude_figure.py --synthetic ../shared/aflw2000-3d-dev/image00002.jpg ... \\
        --real ../shared/samples/prnet/2.jpg ... --out docs/images/deocclude_fills.png [--inpainter W]

Rows of ``--synthetic`` photos (a ``.mat`` / ``.pts`` landmark file next to each): the photo, the photo with
a procedural occluder of ``bench/occlusion.py`` (kinds in turn: sunglasses, face mask; seed 0), the
classical fill and the learned fill, both given the true mask. Rows of ``--real`` photos: the photo, the
detected occlusion mask in red, the classical fill and the learned fill (both with the detected mask).
Each panel is the face's landmark box plus a margin, resized to 192².
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _bench():
    spec = importlib.util.spec_from_file_location("bench_occlusion", ROOT / "bench" / "occlusion.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _panel(img: np.ndarray, lmk: np.ndarray, size: int = 192) -> np.ndarray:
    from PIL import Image

    x0, y0 = lmk.min(0)
    x1, y1 = lmk.max(0)
    c, s = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), 1.35 * max(x1 - x0, y1 - y0)
    box = tuple(int(round(v)) for v in (c[0] - s / 2, c[1] - s / 2, c[0] + s / 2, c[1] + s / 2))
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).crop(box)
    return np.asarray(pil.resize((size, size), Image.LANCZOS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", nargs="*", default=[], help="photos with landmark files")
    ap.add_argument("--real", nargs="*", default=[], help="photos with real occluders")
    ap.add_argument("--inpainter", default=None, help="inpainter weights (default: the shipped ones)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from PIL import Image

    from recon3d.edit import deocclude
    from recon3d.io import load_image
    from recon3d.nn.inpaint import load_inpainter
    from recon3d.reconstruct import ReconstructConfig, reconstruct

    bench = _bench()
    net = load_inpainter(args.inpainter)
    rng = np.random.default_rng(0)
    cfg = ReconstructConfig(texture_size=256)
    rows = []
    for i, f in enumerate(map(Path, args.synthetic)):
        img = load_image(f).image.numpy().astype(np.float32)
        H, W = img.shape[:2]
        lmk = bench.load_landmarks(f)
        kind = ("sunglasses", "mask")[i % 2]
        occ = bench.make_occluder(kind, H, W, lmk, rng)
        tex = bench.occluder_texture(img[::-1, ::-1].copy(), H, W, kind, rng)
        occluded = np.where(occ[..., None], tex, img).astype(np.float32)
        rec = reconstruct(torch.from_numpy(occluded), landmarks=lmk.astype(np.float32), config=cfg)
        a = deocclude(rec, mask=occ, fill="classical").image.numpy()
        b = deocclude(rec, mask=occ, fill="net", inpainter=net).image.numpy()
        rows.append(np.concatenate([_panel(x, lmk) for x in (img, occluded, a, b)], 1))
    for f in map(Path, args.real):
        rec = reconstruct(str(f), config=cfg)
        img = rec.image.numpy()
        lmk = rec.fit.lmk_px[0].numpy()
        a = deocclude(rec, fill="classical")
        b = deocclude(rec, fill="net", inpainter=net)
        m = a.occlusion_mask.numpy()
        shown = np.where(m[..., None], 0.5 * img + 0.5 * np.array([1.0, 0.1, 0.1]), img)
        rows.append(np.concatenate([_panel(x, lmk) for x in (img, shown, a.image.numpy(), b.image.numpy())], 1))
    if not rows:
        ap.error("give --synthetic and/or --real photos")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out)
    print("columns: photo | occluded (synthetic) or detected mask (real) | classical fill | learned fill")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
