"""Wall time of the whole reconstruct pipeline per image, with a per-stage breakdown.

    python bench/speed.py [--repeats 5] [--size 512] [--texture-size 1024] [--fast]
        [--detector dlib|recon3d] [--regressor v1 NEW.safetensors] [IMAGES...]

Default inputs: scikit-image's astronaut and matplotlib's grace_hopper, resized so the longer
side is ``--size`` pixels. Each image is reconstructed ``--repeats`` times (after one warm-up run,
which also pays one-off costs such as loading the model and building the UV raster cache) and the
median per stage is printed. Export (OBJ + MTL + PNG texture + json + extras) is included.
A second table breaks face detection + landmarks down per stage (milliseconds per face, batch 1):
dlib's detector stages and, for the ``recon3d`` backend, the regressor (crop + network, both passes).
With several ``--regressor`` the pipeline table and the "regressor alone" table are repeated for each,
in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _inputs(paths: list[str], size: int):
    from PIL import Image

    from recon3d.io import load_image

    if not paths:
        import matplotlib.cbook as cbook
        from skimage.data import astronaut

        srcs = [("astronaut", astronaut()), ("grace_hopper", str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))]
    else:
        srcs = [(Path(p).stem, p) for p in paths]
    out = []
    for name, src in srcs:
        img = load_image(src).image.numpy()
        h, w = img.shape[:2]
        s = size / max(h, w)
        pil = Image.fromarray((img * 255).astype(np.uint8)).resize((round(w * s), round(h * s)), Image.LANCZOS)
        out.append((name, np.asarray(pil)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--texture-size", type=int, default=1024)
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--detector", default="recon3d", help="landmark backend of the pipeline (default recon3d; dlib)")
    ap.add_argument("--regressor", nargs="+", default=[None], metavar="VERSION|FILE",
                    help="regressor(s) for the 'regressor alone' table: shipped versions (v1, ...) or weights files")
    args = ap.parse_args(argv)

    import torch

    from recon3d.morphable.default import load_default_model
    from recon3d.reconstruct import ReconstructConfig

    t0 = time.perf_counter()
    model = load_default_model()
    t_model = time.perf_counter() - t0
    for reg in args.regressor:
        cfg = ReconstructConfig(texture_size=args.texture_size, fast=args.fast, detector=args.detector, regressor=reg)
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, model load {t_model * 1000:.0f} ms, "
              f"texture {args.texture_size}^2, fast={args.fast}, detector {args.detector}, regressor {reg or 'default'}")
        _pipeline_table(args, model, cfg)
    _landmark_breakdown(args)
    _regressor_variants(args)
    return 0


def _pipeline_table(args, model, cfg) -> None:
    from recon3d.reconstruct import reconstruct_all, save_reconstruction

    stages = ["load", "detect", "fit", "texture", "export", "total"]
    print(f"{'image':<14}" + "".join(f"{s:>10}" for s in stages) + "   (median seconds)")
    all_totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, img in _inputs(args.images, args.size):
            runs: dict[str, list[float]] = {s: [] for s in stages}
            for r in range(args.repeats + 1):
                t_all = time.perf_counter()
                rec = reconstruct_all(img, model=model, config=cfg, name=name)[0]
                t1 = time.perf_counter()
                save_reconstruction(rec, Path(tmp) / name, formats=["obj"])
                t_export = time.perf_counter() - t1
                total = time.perf_counter() - t_all
                if r == 0:
                    continue  # warm-up
                for s in ("load", "detect", "fit", "texture"):
                    runs[s].append(rec.timings.get(s, float("nan")))
                runs["export"].append(t_export)
                runs["total"].append(total)
            med = {s: statistics.median(v) for s, v in runs.items()}
            all_totals.extend(runs["total"])
            print(f"{name:<14}" + "".join(f"{med[s]:>10.3f}" for s in stages))
    print(f"median total over all images: {statistics.median(all_totals):.3f} s")


def _landmark_breakdown(args) -> None:
    from recon3d.detect import detect_faces
    from recon3d.io import load_image

    print("\nlandmarks per face (median ms over repeats; dlib stages as run by the chain)")
    for backend in ("dlib", "recon3d"):
        for name, img in _inputs(args.images, args.size):
            image = load_image(img).image
            runs: dict[str, list[float]] = {}
            for r in range(args.repeats + 1):
                tm: dict[str, float] = {}
                t0 = time.perf_counter()
                detect_faces(image, backend=backend, timings=tm)
                tm["total"] = (time.perf_counter() - t0) * 1000
                if r:
                    for k, v in tm.items():
                        runs.setdefault(k, []).append(v)
            cells = "  ".join(f"{k} {statistics.median(v):.1f}" for k, v in runs.items())
            print(f"  {backend:<8} {name:<14} {cells}")


def _regressor_variants(args) -> None:
    """The regressor alone at batch 1: network forward, and crop + network for 1-2 passes with and
    without the flip test, at 1 and 2 threads (median ms of 20 runs on the astronaut face), for each
    ``--regressor``."""
    from recon3d.nn.landmarks import load_regressor

    for name in args.regressor:
        _regressor_variant(load_regressor(name).net, name or "default")


def _regressor_variant(net, name: str) -> None:
    import torch
    from skimage.data import astronaut

    from recon3d.nn.landmarks import LandmarkRegressor

    img = astronaut().astype(np.float32) / 255.0
    box = np.array([150.0, 20.0, 330.0, 200.0])
    threads0 = torch.get_num_threads()
    print(f"\nregressor {name} ({net.head} head) alone (median ms per face, batch 1)")
    for th in (1, 2):
        torch.set_num_threads(th)
        x = torch.zeros(1, 3, 112, 112)
        with torch.no_grad():
            for _ in range(5):
                net.predict(x)
            ts = []
            for _ in range(30):
                t0 = time.perf_counter()
                net.predict(x)
                ts.append(time.perf_counter() - t0)
        cells = [f"network {statistics.median(ts) * 1000:.1f}"]
        for passes, flip in ((1, False), (2, False), (2, True)):
            r = LandmarkRegressor(net, passes=passes, flip_test=flip)
            for _ in range(3):
                r(img, box)
            ts = []
            for _ in range(20):
                t0 = time.perf_counter()
                r(img, box)
                ts.append(time.perf_counter() - t0)
            cells.append(f"{passes} pass{'es' if passes > 1 else ''}{' + flip' if flip else ''} {statistics.median(ts) * 1000:.1f}")
        print(f"  threads {th}: " + "  ".join(cells))
    torch.set_num_threads(threads0)


if __name__ == "__main__":
    raise SystemExit(main())
