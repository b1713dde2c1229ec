"""Identity preservation of recon3d.edit.rotate_face (the protocol of seed 000 Tables 3-4 / thesis
Table 4.2, with dlib's descriptor instead of the papers' face-recognition networks).

Usage::

    python bench/rotation_identity.py ../shared/identity/lfw
    python bench/rotation_identity.py ../shared/identity/deepface

Identities: for a folder with ``master.csv`` (columns ``file_x,file_y,Decision``) the "Yes" pairs
are joined into identities (union-find); otherwise the identity is the file stem without a trailing
``_enroll``/``_verify`` and index (LFW fixtures: ``lucy_liu_enroll.jpg``).

Each photo is a probe: it is reconstructed (fast fit) and rotated to the absolute target yaws
0, ±15, ±30, ±45, ±60 (pitch 0) by recon3d's warp (``warp``) and, for every ``--refiner NAME=PATH``, by the
warp refined with those weights (``rotate_views(refine="net")``), and, for every ``--latent NAME=PATH``, by
the latent pose editor with those weights (``recon3d.edit.latent_rotate``: W+ inversion with ``--invert-steps``
steps, then the encoder's edit; its outputs are 64x64 aligned crops, described at their own landmarks, the
template's), side by side. The gallery is every OTHER original photo (dlib descriptor from
dlib's own detector and 68-point predictor). Per target yaw we report rank-1 identification
(nearest gallery descriptor has the probe's identity; only probes whose identity has another
photo in the gallery) and the verification rate (fraction of genuine probe-gallery pairs with
euclidean distance < 0.6, dlib's standard threshold) with the false-accept rate of the impostor
pairs, plus the "front" identity cosine between the input and its frontalized output (thesis
Table 4.2). Rotated faces are aligned for the descriptor with the landmarks of the rotated mesh.
FID is not reported: it needs Inception weights, which are not available offline.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import sys
import time
from pathlib import Path

import numpy as np

YAWS = (-60.0, -45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0, 60.0)


def fmt(a: list) -> str:
    return f"{np.mean(a):.3f}" if a else "-"


def identities(folder: Path) -> dict[Path, str]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    master = folder / "master.csv"
    if master.is_file():
        parent = {f.name: f.name for f in files}

        def find(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        with master.open() as fh:
            for row in csv.DictReader(fh):
                a, b = row["file_x"], row["file_y"]
                if row["Decision"].strip().lower() == "yes" and a in parent and b in parent:
                    parent[find(a)] = find(b)
        return {f: find(f.name) for f in files}
    return {f: re.sub(r"_(enroll|verify)(_\d+)?$", "", f.stem) for f in files}


def rotated_landmarks(rec, r) -> np.ndarray:
    """``(68, 2)`` landmarks of a rotated mesh projected with the original camera."""
    from recon3d.camera import project_points

    lmk3d = rec.model.landmarks(r.verts_cam[None].to(rec.model.mean.dtype))  # camera-frame points
    K = rec.fit.camera.K.detach().float().cpu()
    return project_points(lmk3d.float().cpu(), K)[0].detach().numpy().astype(np.float64)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="identity folder (LFW fixtures or deepface with master.csv)")
    p.add_argument("--limit", type=int, default=None, help="at most this many probes")
    p.add_argument("--texture-size", type=int, default=256)
    p.add_argument("--model", default=None, help="a converted .npz morphable model (default: the shipped model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write per-probe results here")
    p.add_argument("--refiner", action="append", default=[], metavar="NAME=PATH",
                   help="also score the warp refined by these rotation-refiner weights")
    p.add_argument("--latent", action="append", default=[], metavar="NAME=PATH",
                   help="also score the latent pose editor with these encoder weights")
    p.add_argument("--invert-steps", type=int, default=100, help="inversion steps of --latent (default 100)")
    p.add_argument("--no-warp", action="store_true", help="skip the warp and refiner rows (latent only)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = Path(args.folder)
    refiners, latents = {}, {}
    for opt, items, dest in (("--refiner", args.refiner, refiners), ("--latent", args.latent, latents)):
        for it in items:
            name, sep, path = it.partition("=")
            if not sep or not name or not path or name == "warp" or name in refiners or name in latents:
                print(f"error: {opt} must be NAME=PATH (NAME new and not 'warp'), got {it!r}", file=sys.stderr)
                return 2
            dest[name] = path
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2

    import torch
    from tqdm import tqdm

    from recon3d.edit import frontalize, rotate_views
    from recon3d.edit._learned_rotate import refine_rotation
    from recon3d.edit.identity import (
        DLIB_SAME_PERSON_DISTANCE,
        descriptor_cosine,
        descriptor_distance,
        face_descriptor,
    )
    from recon3d.edit.latent_rotate import latent_rotate
    from recon3d.io import load_image
    from recon3d.nn.rotate_refine import load_rotation_refiner
    from recon3d.ops.align import TEMPLATE_68
    from recon3d.reconstruct import ReconstructConfig, reconstruct

    torch.set_num_threads(args.threads)
    nets = {name: load_rotation_refiner(path) for name, path in refiners.items()}
    methods = ([] if args.no_warp else ["warp", *nets]) + list(latents)
    ids = identities(folder)
    files = list(ids)
    model = None
    if args.model:
        from recon3d.morphable import load_model

        model = load_model(args.model)
    gallery: dict[Path, np.ndarray] = {}
    for f in files:
        d = face_descriptor(load_image(f).image)
        if d is not None:
            gallery[f] = d
    probes = files[: args.limit] if args.limit else files
    cfg = ReconstructConfig(texture_size=args.texture_size, fast=True)
    log = logging.getLogger("bench.rotation_identity")
    rows = []
    for f in tqdm(probes, desc="rotation-identity", unit="img"):
        row = {"file": f.name, "identity": ids[f]}
        try:
            t0 = time.perf_counter()
            rec = reconstruct(f, model=model, config=cfg, name=f.stem)
            views = rotate_views(rec, [(y, 0.0) for y in YAWS], absolute=True)
            front = frontalize(rec)
            row["seconds"] = time.perf_counter() - t0
            lat = {m: latent_rotate(rec.image, YAWS, absolute=True, lmk_px=rec.lmk_detected_px, encoder_weights=w,
                                    steps=args.invert_steps) for m, w in latents.items()}
            row["input_yaw"] = rec.pose_deg["yaw"]
            d_in = gallery.get(f)
            if d_in is None:
                d_in = face_descriptor(rec.image, lmk_px=rec.lmk_detected_px)
            d_front = face_descriptor(front.image, lmk_px=rotated_landmarks(rec, front))
            row["front_cos"] = descriptor_cosine(d_in, d_front)
            others = [(g, d) for g, d in gallery.items() if g != f]
            same = np.array([ids[g] == ids[f] for g, _ in others])
            row["per_yaw"] = {m: {} for m in methods}
            for i, (y, r) in enumerate(zip(YAWS, views, strict=True)):
                lmk = rotated_landmarks(rec, r)
                for m in methods:
                    if m in lat:
                        img = lat[m].views[i].image
                        d = face_descriptor(img, lmk_px=TEMPLATE_68 * img.shape[0] - 0.5)
                        row.setdefault("latent_pose", {}).setdefault(m, {})[str(y)] = lat[m].views[i].pose_deg
                    else:
                        img = r.image if m == "warp" else refine_rotation(nets[m], rec, r)[0]
                        d = face_descriptor(img, lmk_px=lmk)
                    dist = np.array([descriptor_distance(d, dg) for _, dg in others])
                    row["per_yaw"][m][str(y)] = {
                        "rank1": bool(same[np.argmin(dist)]) if same.any() else None,
                        "genuine_accept": float((dist[same] < DLIB_SAME_PERSON_DISTANCE).mean()) if same.any() else None,
                        "impostor_accept": float((dist[~same] < DLIB_SAME_PERSON_DISTANCE).mean()) if (~same).any() else None,
                        "cos_to_input": descriptor_cosine(d, d_in),
                    }
        except Exception as e:  # one bad image never stops the benchmark
            log.error("%s: %s: %s", f.name, e.__class__.__name__, e)
            row["error"] = f"{e.__class__.__name__}: {e}"
        rows.append(row)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))

    # the same protocol on the original photos (no rotation): the reference
    base_r1, base_ga, base_ia = [], [], []
    for f, d in gallery.items():
        others = [(g, dg) for g, dg in gallery.items() if g != f]
        same = np.array([ids[g] == ids[f] for g, _ in others])
        if not same.any():
            continue
        dist = np.array([descriptor_distance(d, dg) for _, dg in others])
        base_r1.append(bool(same[np.argmin(dist)]))
        base_ga.append(float((dist[same] < DLIB_SAME_PERSON_DISTANCE).mean()))
        if (~same).any():
            base_ia.append(float((dist[~same] < DLIB_SAME_PERSON_DISTANCE).mean()))
    ok = [r for r in rows if "error" not in r]
    print(f"{folder}: {len(files)} photos, {len(set(ids.values()))} identities, {len(gallery)} with a dlib face; "
          f"{len(ok)} probes rotated, {len(rows) - len(ok)} failed")
    print("| method | target yaw | n | rank-1 | verification (d<0.6) | impostor accept | cos to input |")
    print("|---|---|---|---|---|---|---|")
    if base_r1:
        print(f"| original photos (no edit) | | {len(base_r1)} | {np.mean(base_r1):.3f} | {np.mean(base_ga):.3f} | "
              f"{fmt(base_ia)} | 1 |")
    for m in methods:
        for y in YAWS:
            v = [r["per_yaw"][m][str(y)] for r in ok]
            r1 = [x["rank1"] for x in v if x["rank1"] is not None]
            ga = [x["genuine_accept"] for x in v if x["genuine_accept"] is not None]
            ia = [x["impostor_accept"] for x in v if x["impostor_accept"] is not None]
            cs = [x["cos_to_input"] for x in v]
            print(f"| {m} | {y:+.0f} | {len(r1)} | {fmt(r1)} | {fmt(ga)} | {fmt(ia)} | {fmt(cs)} |")
    for m in latents:
        got = [[r["latent_pose"][m][str(y)][0] for r in ok] for y in YAWS]
        print(f"{m}: yaw our regressor reads on the outputs (mean, per target): "
              + ", ".join(f"{y:+.0f} -> {np.mean(g):+.1f}" for y, g in zip(YAWS, got, strict=True) if g))
    if ok:
        print(f"front identity cosine (input vs frontalized, thesis Table 4.2 'front'): "
              f"{np.mean([r['front_cos'] for r in ok]):.3f} (n={len(ok)})")
        print(f"median seconds per probe (reconstruct + 9 views per method + frontal): {np.median([r['seconds'] for r in ok]):.1f}")
    print("FID: not reported (needs Inception weights; not available offline)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
