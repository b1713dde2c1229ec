"""Detection rate of today's chain, MTCNN alone and the chain with MTCNN as the last stage, on
profiles (AFLW2000-3D), frontal photos (300-W), synthetic occluders and real occluded photos.

Usage::

    python bench/detect_occluded.py --aflw ../shared/aflw2000-3d-dev --w300 ../shared/300w/helen_testset \\
        --occlude ../shared/300w/helen_testset --occlude-limit 150 \\
        --photos ../shared/samples/codeformer/masked_faces ../shared/celebamask-hq-samples ... \\
        --noface --json /tmp/det/occ.json
    python bench/detect_occluded.py --summarize /tmp/det/occ.json

Variants (backend ``recon3d``, the pipelines' default, with its retries on turned and equalised copies):

* **chain**: ``stages=CHAIN_V1_STAGES`` (the default before MTCNN joined it).
* **mtcnn**: :func:`recon3d.detect.mtcnn_backend.detect_faces_mtcnn` alone, its largest box.
* **chain+mtcnn**: ``stages=DEFAULT_STAGES`` (today's default, MTCNN last): the MTCNN stage runs only where the upright chain
  found nothing, so its result equals the chain's wherever the chain's upright stages succeed; only
  the other images are run again (MTCNN stage alone, the same call the chain would make). Where
  MTCNN finds nothing either the chain's retry result is kept (the real chain would also try
  MTCNN on the turned copies; this can only under-count it).

A face is **correct** when the centre of the returned box lies inside the box of the ground-truth
landmarks (AFLW2000-3D ``pt3d_68`` x,y; 300-W ``.pts``); photos without landmarks count any face.
``--noface`` adds scikit-image's eight photos without a face (every face found there is false).

Synthetic occluders (``--occlude``, fixed seed, one kind per image in turn): **sunglasses** (two dark
ellipses over the eyes and a bridge), **mask** (a surgical-mask polygon from the nose bridge to
below the chin, white / light blue / black), **hand** (a finger shape of
:func:`recon3d.data.occluders.shape_bank`, skin-coloured from the face's own cheek, over the lower
or middle face). The landmark ground truth is that of the unoccluded photo.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from recon3d.data.occluders import shape_bank
from recon3d.detect import CHAIN_V1_STAGES, detect_faces
from recon3d.detect.base import image_to_uint8_rgb
from recon3d.detect.mtcnn_backend import detect_faces_mtcnn
from recon3d.detect.recon3d_backend import detect_faces_recon3d
from recon3d.io import load_image, read_pts
from recon3d.ops.metrics import nme

KINDS = ("sunglasses", "mask", "hand")


def _aflw(d: Path, limit):
    import scipy.io as sio

    for m in sorted(d.glob("*.mat"))[:limit]:
        p = m.with_suffix(".jpg")
        if p.is_file():
            yield p.name, image_to_uint8_rgb(load_image(p).image, "bench"), sio.loadmat(m)["pt3d_68"][:2].T.astype(np.float64)


def _300w(d: Path, limit):
    imgs = sorted(p for pat in ("*.jpg", "*.png") for p in d.glob(pat) if p.with_suffix(".pts").is_file())
    for p in imgs[:limit]:
        yield p.name, image_to_uint8_rgb(load_image(p).image, "bench"), read_pts(p.with_suffix(".pts")).numpy().astype(np.float64)


def _photos(d: Path, limit):
    # a .png next to a .jpg of the same stem is a label map (CelebAMask-HQ samples), not a photo
    files = sorted(p for pat in ("*.jpg", "*.png") for p in d.glob(pat)
                   if not (p.suffix == ".png" and p.with_suffix(".jpg").is_file()))
    for p in files[:limit]:
        yield f"{d.name}/{p.name}", image_to_uint8_rgb(load_image(p).image, "bench"), None


def _noface(limit):
    from skimage import data

    for n in ("coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "immunohistochemistry", "retina", "cell"):
        a = getattr(data, n)()
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, -1)
        yield n, np.ascontiguousarray(a[..., :3].astype(np.uint8)), None


def _poly_mask(h, w, pts):
    from skimage.draw import polygon

    m = np.zeros((h, w), np.float32)
    rr, cc = polygon(pts[:, 1], pts[:, 0], (h, w))
    m[rr, cc] = 1.0
    return m


def occlude(u8: np.ndarray, lmk: np.ndarray, kind: str, rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """Paste one synthetic occluder of ``kind`` on the face whose 68 landmarks are ``lmk``."""
    from scipy import ndimage

    h, w = u8.shape[:2]
    img = u8.astype(np.float32) / 255.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    iod = float(np.linalg.norm(lmk[36:42].mean(0) - lmk[42:48].mean(0)))
    if kind == "sunglasses":
        alpha = np.zeros((h, w), np.float32)
        for eye in (lmk[36:42], lmk[42:48]):
            c = eye.mean(0)
            rx, ry = 0.42 * iod * rng.uniform(0.9, 1.15), 0.3 * iod * rng.uniform(0.9, 1.2)
            alpha = np.maximum(alpha, (((xx - c[0]) / rx) ** 2 + ((yy - c[1]) / ry) ** 2 <= 1).astype(np.float32))
        a, b = lmk[39], lmk[42]
        t = np.clip(((xx - a[0]) * (b[0] - a[0]) + (yy - a[1]) * (b[1] - a[1])) / max(np.sum((b - a) ** 2), 1e-6), 0, 1)
        d = np.hypot(xx - (a[0] + t * (b[0] - a[0])), yy - (a[1] + t * (b[1] - a[1])))
        alpha = np.maximum(alpha, (d <= 0.05 * iod).astype(np.float32))
        colour = np.full(3, rng.uniform(0.03, 0.15), np.float32)
        tex = colour + 0.03 * rng.standard_normal((h, w, 3)).astype(np.float32)
    elif kind == "mask":
        jaw = lmk[1:16]
        top = lmk[28]
        side = lmk[[1, 15]].copy()
        side[:, 1] = top[1]
        down = jaw.copy()
        down[:, 1] += 0.08 * iod
        alpha = _poly_mask(h, w, np.concatenate([[side[0]], down, [side[1]]]))
        colour = np.array([(0.95, 0.95, 0.95), (0.65, 0.8, 0.92), (0.08, 0.08, 0.1)][rng.integers(3)], np.float32)
        g = (yy - top[1]) / max(lmk[8, 1] - top[1], 1.0)
        tex = colour * (1.0 - 0.15 * g[..., None]) + 0.02 * rng.standard_normal((h, w, 3)).astype(np.float32)
    else:  # hand: finger-like shapes of the bank (kind 5 of shape_bank), skin from the cheek
        shape = bank[rng.integers(len(bank))].astype(np.float32)
        S = shape.shape[0]
        side = 2.6 * iod * rng.uniform(0.9, 1.3)
        shape = ndimage.rotate(shape, rng.uniform(-180, 180), reshape=False, order=1)
        shape = ndimage.zoom(shape, side / S, order=1)
        c = lmk[[30, 33, 57, 48, 54]][rng.integers(5)] + rng.normal(0, 0.2 * iod, 2)
        alpha = np.zeros((h, w), np.float32)
        x0, y0 = int(round(c[0] - shape.shape[1] / 2)), int(round(c[1] - shape.shape[0] / 2))
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + shape.shape[1], w), min(y0 + shape.shape[0], h)
        if sx1 > sx0 and sy1 > sy0:
            alpha[sy0:sy1, sx0:sx1] = shape[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        ck = lmk[[2, 3, 31]].mean(0).round().astype(int)
        r = max(2, int(0.15 * iod))
        cheek = img[max(ck[1] - r, 0):ck[1] + r, max(ck[0] - r, 0):ck[0] + r].reshape(-1, 3)
        colour = (cheek.mean(0) if len(cheek) else np.array([0.8, 0.6, 0.5])) * rng.uniform(0.85, 1.1)
        ramp = 1.0 + 0.15 * ((xx - c[0]) / max(side, 1.0))[..., None]
        tex = colour * ramp + 0.02 * rng.standard_normal((h, w, 3)).astype(np.float32)
    alpha = ndimage.gaussian_filter(np.clip(alpha, 0, 1), 1.0)[..., None]
    out = img * (1 - alpha) + np.clip(tex, 0, 1) * alpha
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def _centre_in(box, gt) -> bool:
    if box is None:
        return False
    if gt is None:
        return True
    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    return bool(gt[:, 0].min() <= cx <= gt[:, 0].max() and gt[:, 1].min() <= cy <= gt[:, 1].max())


def _one(name, u8, gt, extra=None) -> dict:
    t0 = time.perf_counter()
    dets = detect_faces(u8, backend="recon3d", stages=CHAIN_V1_STAGES)
    chain_ms = 1000.0 * (time.perf_counter() - t0)
    t0 = time.perf_counter()
    m = detect_faces_mtcnn(u8)
    mtcnn_ms = 1000.0 * (time.perf_counter() - t0)
    d = dets[0] if dets else None
    row = {"name": name, **(extra or {}), "chain_ms": chain_ms, "mtcnn_ms": mtcnn_ms,
           "chain": _det(d.box_xyxy.numpy(), d.method, d.lmk_px.numpy(), gt) if d else None}
    mb = max(m, key=lambda r: (r[0][2] - r[0][0]) * (r[0][3] - r[0][1])) if m else None
    row["mtcnn"] = _det(mb[0], "mtcnn", None, gt) if mb else None
    if d is not None and "+" not in d.method.replace("+recon3d", ""):  # the upright chain succeeded
        row["chain_mtcnn"], row["fallback_ms"] = row["chain"], 0.0
    else:
        t0 = time.perf_counter()
        f = detect_faces_recon3d(u8, all_faces=False, stages=("mtcnn",), max_side=1024)
        row["fallback_ms"] = 1000.0 * (time.perf_counter() - t0)
        if f:
            box, _s, lmk, method = f[0][:4]
            row["chain_mtcnn"] = _det(np.asarray(box), method, np.asarray(lmk), gt)
        else:
            row["chain_mtcnn"] = row["chain"]
    return row


def _det(box, method, lmk, gt) -> dict:
    return {"box": np.asarray(box, dtype=np.float64).round(1).tolist(), "method": method, "correct": _centre_in(box, gt),
            "nme": float(nme(np.asarray(lmk, np.float64), gt)) if lmk is not None and gt is not None else None}


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    sets = {}
    if args.aflw:
        sets[f"aflw:{args.aflw.name}"] = [_one(n, u, g) for n, u, g in _aflw(args.aflw, args.limit)]
    if args.w300:
        sets[f"300w:{args.w300.name}"] = [_one(n, u, g) for n, u, g in _300w(args.w300, args.limit)]
    if args.occlude:
        rng = np.random.default_rng(args.seed)
        bank = shape_bank(48, 96, seed=args.seed)[5::6]  # the finger-like kind
        rows = []
        for i, (n, u, g) in enumerate(_300w(args.occlude, args.occlude_limit)):
            kind = KINDS[i % len(KINDS)]
            occ = occlude(u, g, kind, rng, bank)
            if args.save_occluded and i < 12:
                from PIL import Image

                args.save_occluded.mkdir(parents=True, exist_ok=True)
                Image.fromarray(occ).save(args.save_occluded / f"{kind}_{Path(n).stem}.jpg")
            rows.append(_one(n, occ, g, {"kind": kind}))
        sets[f"occluded:{args.occlude.name}"] = rows
    for d in args.photos or ():
        sets[f"photos:{d.parent.name}/{d.name}"] = [_one(n, u, g) for n, u, g in _photos(d, args.limit)]
    if args.noface:
        sets["noface:skimage"] = [_one(n, u, g) for n, u, g in _noface(args.limit)]
    return {"sets": sets, "args": {k: str(v) for k, v in vars(args).items()}}


def summarize(res: dict) -> str:
    out = ["| set | n | chain | MTCNN | chain+MTCNN | found by the MTCNN stage | chain ms (median / mean) | "
           "MTCNN ms (median / mean) | chain+MTCNN ms mean |", "|---|---|---|---|---|---|---|---|---|"]
    groups = []
    for sname, rows in res["sets"].items():
        groups.append((sname, rows))
        kinds = sorted({r["kind"] for r in rows if "kind" in r})
        groups += [(f"{sname} ({k})", [r for r in rows if r.get("kind") == k]) for k in kinds]
    for sname, rows in groups:
        n = len(rows)
        noface = sname.startswith("noface")

        def rate(key, rows=rows, n=n, noface=noface):
            k = sum(bool(r[key] and r[key]["correct"]) for r in rows)
            return f"{k} found (false)" if noface else f"{k} ({100.0 * k / max(n, 1):.1f} %)"

        by_stage = sum(bool(r["chain_mtcnn"] and r["chain_mtcnn"]["method"].startswith("mtcnn")) for r in rows)
        cm = [r["chain_ms"] for r in rows]
        mm = [r["mtcnn_ms"] for r in rows]
        tot = [r["chain_ms"] + r["fallback_ms"] for r in rows]
        out.append(f"| {sname} | {n} | {rate('chain')} | {rate('mtcnn')} | {rate('chain_mtcnn')} | {by_stage} | "
                   f"{np.median(cm):.0f} / {np.mean(cm):.0f} | {np.median(mm):.0f} / {np.mean(mm):.0f} | {np.mean(tot):.0f} |")
    out += ["", "| set | NME % chain (n) | NME % chain+MTCNN (n) | NME % of the MTCNN-stage faces |", "|---|---|---|---|"]
    for sname, rows in groups:
        a = [r["chain"]["nme"] for r in rows if r["chain"] and r["chain"]["nme"] is not None]
        b = [r["chain_mtcnn"]["nme"] for r in rows if r["chain_mtcnn"] and r["chain_mtcnn"]["nme"] is not None]
        c = [r["chain_mtcnn"]["nme"] for r in rows if r["chain_mtcnn"] and r["chain_mtcnn"]["nme"] is not None
             and r["chain_mtcnn"]["method"].startswith("mtcnn")]
        if a or b:
            out.append(f"| {sname} | {100 * np.mean(a):.2f} ({len(a)}) | {100 * np.mean(b):.2f} ({len(b)}) | "
                       + (f"{100 * np.mean(c):.2f} ({len(c)})" if c else "-") + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aflw", type=Path, help="AFLW2000-3D folder (*.jpg + *.mat)")
    ap.add_argument("--w300", type=Path, help="300-W folder (*.jpg|*.png + .pts)")
    ap.add_argument("--occlude", type=Path, help="300-W folder to paste synthetic occluders on")
    ap.add_argument("--occlude-limit", type=int, default=None)
    ap.add_argument("--photos", type=Path, nargs="*", help="folders of photos without landmarks (any face counts)")
    ap.add_argument("--noface", action="store_true", help="add scikit-image's photos without a face")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save-occluded", type=Path, help="write the first 12 occluded images here")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--summarize", type=Path, nargs="*", help="reprint the tables of these JSON files (merged)")
    a = ap.parse_args()
    if a.summarize:
        res = {"sets": {}}
        for p in a.summarize:
            res["sets"].update(json.loads(p.read_text())["sets"])
    else:
        res = run(a)
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(res))
    print(summarize(res))


if __name__ == "__main__":
    main()
