"""Re-learn the jaw points (iBUG 0-16) of a model's landmark embedding from 300-W photos at all poses.

    python tools/learn_jaw_embedding.py ../shared/300w/afw ../shared/300w/helen_trainset \
        ../shared/300w/helen_testset --out assets/recon3d_face_v2.npz --version 2 [--model recon3d_face_v1.npz]

The builder (``recon3d.morphable.build``) learns the jaw points from near-frontal photos only, where the
drawn outline and the 3-D jaw coincide. Seen from the front, a point on the side of the jaw is fixed in x
and y but hardly in depth, so the depth of the learned jaw points is unconstrained. Seen from the side, the
jaw line that faces the camera (the mandible against the neck) is still a fixed point of the face, while the
far side's outline is the cheek's silhouette. So this tool:

1. fits the model to the manual 68 landmarks of every 300-W photo that is not held out (the regressor's
   10 % hash split, ``recon3d.data.splits``), with the jaw weighted 0 (pose, shape and expression from the
   51 inner points only);
2. mirror-augments the photos, and for each jaw point keeps the photos turned at least 25 deg
   (``--near-min-yaw``; the pose synthesizer stops trusting drawn jaw outlines at 25 deg) where the point is
   on the side that faces the camera (``--near-min-yaw 0`` adds the near-frontal photos, which then
   dominate and leave the depth where it was), and the chin in every photo up to |yaw| 45 deg;
3. re-runs the builder's embedding search (:func:`recon3d.morphable.build.landmarks.learn_embedding`,
   symmetric) on those photos and writes a copy of the model with the new jaw points (all other landmarks
   and fields unchanged, dynamic-contour candidates rebuilt from the new points).

It prints each jaw point's move (mm, model frame) and the near-side NME of the old and new jaw points.
AFLW2000-3D is refused: it is the test set.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np
import torch

JAW = list(range(17))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="300-W folders (image + .pts)")
    ap.add_argument("--out", required=True, help="model .npz to write")
    ap.add_argument("--model", default=None, help="model to start from (default: the shipped default model)")
    ap.add_argument("--version", default=None, help="version string of the written model (default: old + '-jaw')")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--near-max-yaw", type=float, default=90.0)
    ap.add_argument("--near-min-yaw", type=float, default=25.0,
                    help="use only photos turned at least this far for the side points (0: frontal ones too)")
    args = ap.parse_args(argv)
    if any("aflw" in str(d).lower() for d in args.dirs):
        print("error: AFLW2000-3D is the test set; learn from 300-W", file=sys.stderr)
        return 2

    from tqdm import tqdm

    from recon3d.camera import axis_angle_to_matrix, matrix_to_pose_angles
    from recon3d.conventions import IBUG68_MIRROR
    from recon3d.data.landmark_set import annotated_images
    from recon3d.data.splits import is_held_out, photo_key
    from recon3d.fitting import FitConfig, default_intrinsics, fit_landmarks
    from recon3d.io import load_landmarks
    from recon3d.morphable import load_model, save_model
    from recon3d.morphable.build import geometry as geo
    from recon3d.morphable.build import landmarks as lmk
    from recon3d.morphable.default import load_default_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model) if args.model else load_default_model()
    items, missing = annotated_images(args.dirs)
    for m in missing:
        print(f"warning: {m}", file=sys.stderr)
    items = [it for it in items if not is_held_out(photo_key(it[0]), 10.0)][: args.limit]
    if not items:
        print("error: no annotated training photos", file=sys.stderr)
        return 2
    from PIL import Image

    faces = model.faces.numpy()
    sym = model.sym_vertex.numpy()
    V = model.mean.shape[0]
    w = torch.ones(1, 68)
    w[:, JAW] = 0.0
    cfg = FitConfig(lmk_iters=10, dynamic_contour=False)
    P, G, Wd, yaw, face_cos = [], [], [], [], []
    for b0 in tqdm(range(0, len(items), args.batch), desc="fit", unit="batch"):
        chunk = items[b0: b0 + args.batch]
        sizes = [Image.open(i).size for i, _ in chunk]  # (W, H)
        L = torch.stack([load_landmarks(p).float() for _, p in chunk])
        K = torch.cat([default_intrinsics((h, wd)) for wd, h in sizes])
        fit = fit_landmarks(L, model=model, K=K, config=cfg, weight=w.expand(len(chunk), 68))
        vc = fit.verts_cam.double()
        p = torch.einsum("nij,nvj->nvi", K.double(), vc)
        P.append((p[..., :2] / p[..., 2:3]).float().numpy())
        G.append(L.numpy())
        Wd += [wd for wd, _ in sizes]
        R = axis_angle_to_matrix(fit.params.rot).double()
        yaw.append(np.degrees(matrix_to_pose_angles(R)[:, 0].numpy()))
        # how squarely each static landmark's triangle faces the camera (> 0: towards it)
        tri = vc[:, torch.from_numpy(faces[model.lmk_faces.numpy()])]  # (B, 68, 3, 3)
        n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
        c = tri.mean(2)
        face_cos.append((-(n * c).sum(-1) / (n.norm(dim=-1) * c.norm(dim=-1)).clamp_min(1e-12)).numpy())
    P, G, yaw, fc = np.concatenate(P), np.concatenate(G), np.concatenate(yaw), np.concatenate(face_cos)
    Wd = np.asarray(Wd, np.float64)
    mirror = list(IBUG68_MIRROR)
    Pm = np.stack([(Wd[:, None] - 1) - P[:, sym, 0], P[:, sym, 1]], -1)
    Gm = np.stack([(Wd[:, None] - 1) - G[:, mirror, 0], G[:, mirror, 1]], -1)
    Pa, Ga = np.concatenate([P, Pm]).astype(np.float64), np.concatenate([G, Gm]).astype(np.float64)
    ya, fca = np.concatenate([yaw, -yaw]), np.concatenate([fc, fc[:, mirror]])
    box = Ga.max(1) - Ga.min(1)
    widths = np.sqrt(box[:, 0] * box[:, 1])
    frontal = np.abs(ya) < 20.0
    sel = np.zeros((len(Pa), 17), bool)
    for k in JAW:
        if k == 8:
            sel[:, k] = np.abs(ya) < 45.0
        else:
            near = (fca[:, k] > fca[:, mirror[k]]) & (np.abs(ya) < args.near_max_yaw)
            sel[:, k] = (frontal | near) if args.near_min_yaw <= 0 else (near & (np.abs(ya) >= args.near_min_yaw))
    print(f"{len(P)} photos fitted ({len(Pa)} with mirrors); |yaw| < 20: {frontal.sum()}; per jaw point "
          f"{sel.sum(0).min()}..{sel.sum(0).max()} photos used")
    mirror_face = geo.mirror_face_map(faces, sym)
    lf, lb, rms = lmk.learn_embedding(Pa, Ga, faces, sym, mirror_face, sel, widths)
    new_f, new_b = model.lmk_faces.numpy().copy(), model.lmk_bary.numpy().copy()
    new_f[JAW], new_b[JAW] = lf[JAW], lb[JAW]

    def points(f, b):
        return (model.mean.numpy()[faces[f]] * b[:, :, None]).sum(1)

    old3, new3 = points(model.lmk_faces.numpy(), model.lmk_bary.numpy()), points(new_f, new_b)
    d = (new3 - old3)[JAW] * 1000
    print("jaw point moves (mm, model frame: +x subject's left, +y up, +z out of the face):")
    for k in JAW:
        print(f"  {k:2d}: dx {d[k, 0]:+6.1f}  dy {d[k, 1]:+6.1f}  dz {d[k, 2]:+6.1f}")

    def proj(f, b):
        tri = Pa[:, faces[f]]  # (N, 68, 3, 2)
        return (tri * b[None, :, :, None]).sum(2)

    near_any = sel & ~frontal[:, None]
    for name, (f, b) in (("old", (model.lmk_faces.numpy(), model.lmk_bary.numpy())), ("new", (new_f, new_b))):
        e = np.linalg.norm(proj(f, b)[:, JAW] - Ga[:, JAW], axis=-1) / widths[:, None]
        print(f"{name} jaw points: NME {e[near_any].mean() * 100:.2f} % on near-side non-frontal uses, "
              f"{e[np.repeat(frontal[:, None], 17, 1)].mean() * 100:.2f} % on frontal photos")
    lmk3d = points(new_f, new_b)
    contour = lmk.contour_candidates(model.mean.numpy(), lmk3d, geo.boundary_vertices(faces, V))
    meta = dict(model.meta)
    meta["jaw_embedding"] = ("jaw points 0-16 re-learned by tools/learn_jaw_embedding.py from 300-W training photos at "
                             f"all poses (near-side jaw up to |yaw| {args.near_max_yaw:g} deg; {len(P)} photos)")
    new = replace(model, lmk_faces=torch.from_numpy(new_f), lmk_bary=torch.from_numpy(new_b.astype(np.float32)),
                  contour_verts=torch.from_numpy(contour), version=args.version or f"{model.version}-jaw", meta=meta)
    digest = save_model(new, args.out, half=True)  # the shipped model stores float16 bases
    print(f"wrote {args.out} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
