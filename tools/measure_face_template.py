"""Measure the 68-point alignment template of :mod:`recon3d.data.faces` (``TEMPLATE_68``).

Runs recon3d's default detector chain (``recon3d.detect.detect_faces``, dlib HOG + 68-point shape
predictor) on an even spread of photos of an already aligned folder (by default
``../shared/faces-128``, UTKFace's dlib-aligned crops), converts each face's landmarks to the unit
square of its image (``(x + 0.5) / width``: 0 and 1 are the image edges, pixel centres 0-based),
takes the per-point 10 %-trimmed mean over the photos where a face was found (so the few turned or
badly detected faces do not pull it), makes it left-right symmetric about ``x = 0.5`` (the mean
with its mirror image, points swapped by ``recon3d.conventions.IBUG68_MIRROR``, so a flipped aligned
face is an aligned face) and prints it, ready to paste into ``recon3d/data/faces.py``.

Usage: ``python tools/measure_face_template.py [FOLDER] [--count 200]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "faces-128"))
    ap.add_argument("--count", type=int, default=200, help="photos to measure, spread evenly over the sorted names")
    args = ap.parse_args(argv)
    from recon3d.data.faces import list_photos
    from recon3d.detect import detect_faces

    files = list_photos(args.folder)
    pick = [files[int(i * len(files) / args.count)] for i in range(min(args.count, len(files)))]
    pts = []
    for p in pick:
        u8 = np.asarray(Image.open(p).convert("RGB"))
        d = detect_faces(u8)
        if d:
            h, w = u8.shape[:2]
            pts.append((d[0].lmk_px.numpy().astype(np.float64) + 0.5) / np.array([w, h]))
    from scipy.stats import trim_mean

    from recon3d.conventions import IBUG68_MIRROR

    a = np.stack(pts)
    mean = trim_mean(a, 0.1, axis=0)
    mirrored = mean[list(IBUG68_MIRROR)] * np.array([-1.0, 1.0]) + np.array([1.0, 0.0])
    med = 0.5 * (mean + mirrored)
    print(f"# {len(pts)} faces found in {len(pick)} photos of {args.folder}; asymmetry removed: "
          f"{np.abs(mean - med).max():.4f} at most; median distance of a face's points to it: "
          f"{np.median(np.linalg.norm(a - med, axis=-1)):.4f} (unit square)", file=sys.stderr)
    print("TEMPLATE_68 = np.array([")
    for i in range(0, 68, 4):
        print("    " + " ".join(f"[{x:.4f}, {y:.4f}]," for x, y in med[i:i + 4]))
    print("], dtype=np.float32)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
