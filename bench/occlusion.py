"""Synthetic occlusion benchmark of recon3d.edit.deocclude (the protocol of thesis Table 5.1).

Usage::

    python bench/occlusion.py ../shared/aflw2000-3d-dev ../shared/300w/helen_testset --limit 100

For each face photo (``.jpg``/``.png`` with 68 ground-truth landmarks: AFLW2000-3D ``.mat``
``pt3d_68`` or a 300-W ``.pts`` next to it), one procedural occluder is pasted (cycling through
sunglasses over the eyes, a face mask over nose and mouth, a hand-like blob of ellipses, a bar),
textured with a patch cut from ANOTHER image of the set (sunglasses darkened). The occluded photo is
reconstructed (default fit, or the fast preset with ``--fast``; the ground-truth landmarks, 256² texture) and de-occluded automatically.
Inside the pasted mask we report L1 (mean absolute error, [0, 1] images), SSIM (mean of the SSIM map
over the mask) and PSNR (from the MSE inside the mask), identity cosine (dlib 128-D descriptor,
aligned with the ground-truth landmarks) between the restored and the ORIGINAL un-occluded photo,
the euclidean descriptor distance (dlib's metric; its cosines are compressed near 1), the IoU of
the detected occlusion mask with the pasted one and with the pasted part inside the rendered face
region (the method only removes occluders inside the face, as in the thesis); the same numbers for the trivial
baseline "occluded input unchanged". The thesis numbers (published, its GAN with ArcFace
identity, 1000 sunglasses images) are printed alongside for reference; they are not directly
comparable (different identity network, occluders and images).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

THESIS = {"L1": 0.062, "SSIM": 0.623, "PSNR": 28.902, "ID": 0.690}
KINDS = ("sunglasses", "mask", "hand", "bar")


def load_landmarks(img_path: Path) -> np.ndarray | None:
    """``(68, 2)`` 0-based pixel landmarks from a ``.mat`` (AFLW2000-3D) or ``.pts`` (300-W) file."""
    mat = img_path.with_suffix(".mat")
    pts = img_path.with_suffix(".pts")
    if mat.is_file():
        import scipy.io as sio

        return np.asarray(sio.loadmat(str(mat))["pt3d_68"][:2].T, dtype=np.float64)
    if pts.is_file():
        lines = pts.read_text().split("{")[1].split("}")[0].split()
        return np.asarray(lines, dtype=np.float64).reshape(-1, 2) - 1.0  # 300-W is 1-based
    return None


def list_images(dirs: list[str], limit: int | None) -> list[Path]:
    per_dir = []
    for d in dirs:
        files = sorted(p for p in Path(d).rglob("*") if p.suffix.lower() in (".jpg", ".png")
                       and (p.with_suffix(".mat").is_file() or p.with_suffix(".pts").is_file()))
        per_dir.append(files)
    if limit is None:
        return [f for fs in per_dir for f in fs]
    # spread the limit evenly over the folders, taking evenly spaced files from each
    out = []
    n_each = max(1, math.ceil(limit / max(1, len(per_dir))))
    for fs in per_dir:
        if fs:
            idx = np.unique(np.linspace(0, len(fs) - 1, min(n_each, len(fs))).round().astype(int))
            out.extend(fs[i] for i in idx)
    return out[:limit]


def _poly_mask(H: int, W: int, poly: np.ndarray) -> np.ndarray:
    from skimage.draw import polygon

    m = np.zeros((H, W), bool)
    rr, cc = polygon(poly[:, 1], poly[:, 0], (H, W))
    m[rr, cc] = True
    return m


def _ellipse_mask(H: int, W: int, cx, cy, rx, ry, angle=0.0) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    c, s = math.cos(angle), math.sin(angle)
    x, y = xx - cx, yy - cy
    return ((c * x + s * y) / rx) ** 2 + ((-s * x + c * y) / ry) ** 2 <= 1.0


def make_occluder(kind: str, H: int, W: int, lmk: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A procedural occluder mask ``(H, W)`` bool placed from the 68 landmarks."""
    iod = float(np.linalg.norm(lmk[36:42].mean(0) - lmk[42:48].mean(0)))
    if kind == "sunglasses":
        m = np.zeros((H, W), bool)
        for eye in (lmk[36:42], lmk[42:48]):
            c = eye.mean(0)
            m |= _ellipse_mask(H, W, c[0], c[1], 0.42 * iod * rng.uniform(0.9, 1.1), 0.3 * iod * rng.uniform(0.9, 1.2))
        a, b = lmk[39], lmk[42]  # bridge
        m |= _poly_mask(H, W, np.array([a + [0, -0.08 * iod], b + [0, -0.08 * iod], b + [0, 0.05 * iod], a + [0, 0.05 * iod]]))
        return m
    if kind == "mask":
        top = 0.5 * (lmk[28] + lmk[29])
        jaw = lmk[2:15]
        poly = np.concatenate([[jaw[0] * 0.7 + top * 0.3 + [0, -0.05 * iod]], jaw, [jaw[-1] * 0.7 + top * 0.3 + [0, -0.05 * iod]],
                               [top + [0, -0.1 * iod]]], 0)
        return _poly_mask(H, W, poly)
    if kind == "hand":
        c = lmk[rng.choice([30, 48, 54, 3, 13])] + rng.normal(0, 0.15 * iod, 2)
        ang = rng.uniform(-0.8, 0.8)
        m = _ellipse_mask(H, W, c[0], c[1], 0.7 * iod, 0.5 * iod, ang)  # palm
        for k in range(4):  # fingers
            off = (k - 1.5) * 0.28 * iod
            d = np.array([math.cos(ang), math.sin(ang)])
            n = np.array([-d[1], d[0]])
            fc = c + n * off + d * 0.9 * iod
            m |= _ellipse_mask(H, W, fc[0], fc[1], 0.5 * iod, 0.12 * iod, ang)
        return m
    if kind == "bar":
        c = lmk[rng.choice([27, 30, 33, 51])]
        ang = rng.uniform(-0.6, 0.6)
        d = np.array([math.cos(ang), math.sin(ang)]) * 1.4 * iod
        n = np.array([-math.sin(ang), math.cos(ang)]) * rng.uniform(0.18, 0.3) * iod
        return _poly_mask(H, W, np.array([c - d - n, c + d - n, c + d + n, c - d + n]))
    raise ValueError(f"make_occluder(): unknown kind {kind!r}; choose from {KINDS}")


def occluder_texture(other: np.ndarray, H: int, W: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A ``(H, W, 3)`` texture: a random patch of another image, resized; darkened for sunglasses."""
    from skimage.transform import resize

    h, w = other.shape[:2]
    s = int(min(h, w) * rng.uniform(0.3, 0.6))
    y0, x0 = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
    patch = resize(other[y0:y0 + s, x0:x0 + s], (H, W), order=1, anti_aliasing=False)
    if kind == "sunglasses":
        patch = 0.05 + 0.3 * patch
    return patch.astype(np.float32)


def region_metrics(out: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict:
    from skimage.metrics import structural_similarity

    d = out[mask] - ref[mask]
    mse = float((d ** 2).mean())
    _, smap = structural_similarity(ref, out, channel_axis=-1, data_range=1.0, full=True)
    return {"L1": float(np.abs(d).mean()), "SSIM": float(smap[mask].mean()),
            "PSNR": float(10 * math.log10(1.0 / max(mse, 1e-10)))}


def run(files: list[Path], *, seed: int, texture_size: int, out_json: Path | None, model=None,
        fast: bool = False, cues: tuple[str, ...] = ("auto",), clean_check: bool = False,
        fills: tuple[str, ...] = ("auto",), kinds: tuple[str, ...] = KINDS, inpainter=None) -> list[dict]:
    """One row per image; ``cues`` may include ``"true"`` (the pasted mask handed to ``deocclude``), and every
    cue is run with every fill of ``fills``."""
    import torch
    from tqdm import tqdm

    from recon3d.edit import deocclude
    from recon3d.edit.identity import descriptor_cosine, descriptor_distance, face_descriptor
    from recon3d.io import load_image
    from recon3d.reconstruct import ReconstructConfig, reconstruct

    rng = np.random.default_rng(seed)
    cfg = ReconstructConfig(texture_size=texture_size, fast=fast)
    rows = []
    bar = tqdm(list(enumerate(files)), desc="occlusion", unit="img")
    for i, f in bar:
        kind = kinds[i % len(kinds)]
        try:
            img = load_image(f).image.numpy().astype(np.float32)
            H, W = img.shape[:2]
            lmk = load_landmarks(f)
            other = load_image(files[(i + 1 + rng.integers(0, len(files) - 1)) % len(files)]).image.numpy()
            occ = make_occluder(kind, H, W, lmk, rng)
            tex = occluder_texture(other, H, W, kind, rng)
            occluded = np.where(occ[..., None], tex, img).astype(np.float32)
            t0 = time.perf_counter()
            rec = reconstruct(torch.from_numpy(occluded), model=model, landmarks=lmk.astype(np.float32), config=cfg,
                              name=f.stem)
            row = {"file": str(f), "kind": kind, "input": region_metrics(occluded, img, occ)}
            d_ref = face_descriptor(img, lmk_px=lmk)
            ims = [("input", occluded)]
            combos = [(c, fl) for c in cues for fl in fills]
            for j, (cue, fill) in enumerate(combos):
                t1 = time.perf_counter()
                if cue == "true":
                    res = deocclude(rec, mask=occ, fill=fill, inpainter=inpainter)
                else:
                    res = deocclude(rec, cue=cue, fill=fill, inpainter=inpainter)
                if j == 0:
                    row["seconds"] = t1 - t0 + time.perf_counter() - t1
                out = res.image.numpy()
                found = res.occlusion_mask.numpy()
                occ_face = occ & res.face_mask.numpy()
                key = _key(cue, fill, cues, fills)
                row[key] = region_metrics(out, img, occ)
                row[key]["iou"] = float((found & occ).sum() / max((found | occ).sum(), 1))
                row[key]["iou_face"] = float((found & occ_face).sum() / max((found | occ_face).sum(), 1))
                ims.append((key, out))
            for key, im in ims:
                d = face_descriptor(im, lmk_px=lmk)
                row[key]["ID"] = descriptor_cosine(d, d_ref)
                row[key]["ID_dist"] = descriptor_distance(d, d_ref)
            row["iou"] = row[_key(*combos[0], cues, fills)]["iou"]
            if clean_check:  # the same photo without an occluder: what does each cue flag and change?
                rec_c = reconstruct(torch.from_numpy(img), model=model, landmarks=lmk.astype(np.float32), config=cfg,
                                    name=f.stem)
                for cue, fill in combos:
                    if cue == "true":
                        continue
                    res = deocclude(rec_c, cue=cue, fill=fill, inpainter=inpainter)
                    face = res.face_mask.numpy()
                    d = face_descriptor(res.image.numpy(), lmk_px=lmk)
                    row[_key(cue, fill, cues, fills)]["clean"] = {
                        "flagged": float((res.occlusion_mask.numpy() & face).sum() / max(face.sum(), 1)),
                        "L1_face": float(np.abs(res.image.numpy() - img)[face].mean()) if face.any() else 0.0,
                        "ID_dist": descriptor_distance(d, d_ref)}
            rows.append(row)
            bar.set_postfix(iou=f"{np.mean([r['iou'] for r in rows if 'iou' in r]):.2f}")
        except Exception as e:  # one bad image never stops the benchmark
            logging.getLogger("bench.occlusion").error("%s: %s: %s", f.name, e.__class__.__name__, e)
            rows.append({"file": str(f), "kind": kind, "error": f"{e.__class__.__name__}: {e}"})
        if out_json is not None:
            out_json.write_text(json.dumps(rows, indent=1))
    return rows


def _key(cue: str, fill: str, cues: tuple[str, ...], fills: tuple[str, ...]) -> str:
    if len(cues) == 1 and len(fills) == 1:
        return "ours"
    mask = "true mask" if cue == "true" else f"cue {cue}"
    return f"ours:{mask}, fill {fill}"


def table(rows: list[dict]) -> str:
    ok = [r for r in rows if "error" not in r]
    methods = [(k, "recon3d deocclude" if k == "ours" else f"recon3d deocclude, {k.split(':', 1)[1]}")
               for k in (ok[0] if ok else {}) if k.startswith("ours")]
    lines = [f"images: {len(ok)} ok, {len(rows) - len(ok)} failed",
             "| method | kind | n | L1 ↓ | SSIM ↑ | PSNR ↑ | ID cos ↑ | ID dist ↓ | mask IoU ↑ | IoU in face ↑ |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for kind in ("all",) + KINDS:
        sel = [r for r in ok if kind == "all" or r["kind"] == kind]
        if not sel:
            continue
        for meth, label in methods + [("input", "occluded input (baseline)")]:
            m = {k: np.mean([r[meth][k] for r in sel]) for k in ("L1", "SSIM", "PSNR", "ID", "ID_dist")}
            iou = f"{np.mean([r[meth]['iou'] for r in sel]):.3f}" if meth != "input" else "-"
            iouf = f"{np.mean([r[meth]['iou_face'] for r in sel]):.3f}" if meth != "input" else "-"
            lines.append(f"| {label} | {kind} | {len(sel)} | {m['L1']:.4f} | {m['SSIM']:.3f} | {m['PSNR']:.2f} | "
                         f"{m['ID']:.3f} | {m['ID_dist']:.3f} | {iou} | {iouf} |")
    lines.append(f"| thesis Table 5.1 (published; ArcFace ID, sunglasses, 1000 imgs) | sunglasses | 1000 | "
                 f"{THESIS['L1']} | {THESIS['SSIM']} | {THESIS['PSNR']} | {THESIS['ID']} | - | - | - |")
    if ok:
        lines.append(f"median seconds per image (reconstruct + deocclude): {np.median([r['seconds'] for r in ok]):.1f}")
    clean_methods = [(m, lab) for m, lab in methods if "true mask" not in m]
    clean = [r for r in ok if all("clean" in r[m] for m, _ in clean_methods)] if clean_methods else []
    if clean:
        lines.append("")
        lines.append(f"unoccluded photos ({len(clean)}): share of the face flagged as occluded, mean |output - input| "
                     "inside the face, dlib distance of the output to the photo")
        for meth, label in clean_methods:
            c = {k: np.mean([r[meth]["clean"][k] for r in clean]) for k in ("flagged", "L1_face", "ID_dist")}
            lines.append(f"  {label}: flagged {c['flagged']:.3f}, L1 in face {c['L1_face']:.4f}, ID dist {c['ID_dist']:.3f}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="*", help="folders of face photos with .mat (AFLW2000-3D) or .pts (300-W) landmarks")
    p.add_argument("--from-json", nargs="+", default=None,
                   help="print the table of earlier --json files (e.g. one per data folder run in parallel) instead")
    p.add_argument("--limit", type=int, default=None, help="at most this many images, spread over the folders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--texture-size", type=int, default=256)
    p.add_argument("--fast", action="store_true", help="fast fitting preset (default: the default preset)")
    p.add_argument("--cue", nargs="+", default=["auto"], choices=["auto", "photometric", "net", "both", "true"],
                   help="occlusion cue(s) of deocclude(); several are run side by side on the same reconstructions; "
                        "'true' hands deocclude the pasted mask (the thesis's 'with the true mask' rows)")
    p.add_argument("--fill", nargs="+", default=["auto"], choices=["auto", "classical", "net"],
                   help="fill(s) of deocclude(), each run with every cue (default: auto)")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS),
                   help="occluder kinds cycled over the images (thesis Table 5.1: --kinds sunglasses)")
    p.add_argument("--inpainter", default=None, help="inpainter weights for --fill net (default: the shipped ones)")
    p.add_argument("--clean-check", action="store_true",
                   help="also de-occlude each photo without an occluder and report what each cue flags and changes")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--model", default=None, help="a converted .npz morphable model (default: the shipped model)")
    p.add_argument("--json", default=None, help="write per-image results here (updated after every image)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.from_json:
        rows = [r for f in args.from_json for r in json.loads(Path(f).read_text())]
        print(table(rows))
        return 0 if any("error" not in r for r in rows) else 1
    import torch

    torch.set_num_threads(args.threads)
    files = list_images(args.data, args.limit)
    if len(files) < 2:
        print("error: need at least 2 images with landmarks (occluder textures come from other images)", file=sys.stderr)
        return 2
    model = None
    if args.model:
        from recon3d.morphable import load_model

        model = load_model(args.model)
    inpainter = None
    if args.inpainter:
        from recon3d.nn.inpaint import load_inpainter

        inpainter = load_inpainter(args.inpainter)
    rows = run(files, seed=args.seed, texture_size=args.texture_size, out_json=Path(args.json) if args.json else None,
               model=model, fast=args.fast, cues=tuple(args.cue), clean_check=args.clean_check,
               fills=tuple(args.fill), kinds=tuple(args.kinds), inpainter=inpainter)
    print(table(rows))
    return 0 if any("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
