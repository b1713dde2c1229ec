"""Mirror-pair protocol of rotation (seed 000's exact ground truth): turn a face at pose (y, p, r) to
(-y, p, -r) and compare with the photo mirrored left-right.

Usage::

    python bench/rotation_mirror.py ../shared/300w/helen_testset --limit 100 \\
        --refiner net=assets/recon3d_rotation_refiner_128_v2.safetensors --json out/mirror.json
    python bench/rotation_mirror.py ../shared/faces-128 --split val --limit 100

Each photo (aligned crops of at most 160 px are padded by reflection, as in training) is reconstructed with
the default preset and rotated to the mirrored pose by each method: ``warp`` (recon3d's 3D-guided rotation,
``refine="none"``), every ``--refiner NAME=PATH`` (``refine="net"`` with those weights) and every ``--latent
NAME=PATH`` (the latent pose editor, ``recon3d.edit.latent_rotate`` with ``--invert-steps``, to absolute yaw
``-y``; its 64² output, aligned by the detected landmarks, is upsampled to 128² and compared with the photo
mirrored into that frame, over the same region). Output and truth
are compared in the refiner's 128² frame: the output aligned on the face template by the rotated mesh's
landmarks, the mirrored photo by the mirrored fitted landmarks (:mod:`recon3d.data.rotation_pairs` builds its
training truth the same way), over the pixels within 6 px of the rendered face that lie inside the photo.
Reported per method: PSNR and SSIM (Gaussian-window SSIM map averaged over the region) and the identity
cosine of our identity network (dlib's ResNet ported, :func:`recon3d.nn.identity.embed_aligned`) between
output and truth; plus ``|Δyaw|`` (twice the input's yaw); for the latent rows, how far the yaw our regressor
reads on the output is from the target, and the same numbers for the inversion alone (``NAME:no-edit``). Faces with |yaw| < ``--min-yaw`` are skipped
(their mirror pose is nearly the input pose). Photos whose reconstruction fails are listed and skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

MARGIN = 6


def parse_refiners(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        name, sep, path = it.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--refiner must be NAME=PATH, got {it!r}")
        out[name] = path
    return out


def mirror_px(pts: np.ndarray, width: int) -> np.ndarray:
    """68 landmarks (pixels) of a photo ``width`` wide -> the same points on the photo mirrored left-right."""
    from recon3d.conventions import IBUG68_MIRROR

    out = np.asarray(pts, np.float64)[list(IBUG68_MIRROR)].copy()
    out[:, 0] = (width - 1) - out[:, 0]
    return out


def score(o, truth, d_truth: np.ndarray, region, idnet) -> dict:
    """PSNR and SSIM of ``o`` against ``truth`` (``(1, 3, 128, 128)`` in [0, 1]) over ``region`` and the identity
    cosine of ``o``'s descriptor to ``d_truth``."""
    from recon3d.nn.identity import embed_aligned
    from recon3d.ops.metrics import ssim_map

    mse = float(((o - truth) ** 2).mean(1)[0][region].mean())
    ss = float(ssim_map(o, truth)[0].mean(0)[region].mean())
    d = embed_aligned(o * 2 - 1, idnet)[0]
    cos = float(d @ d_truth / (np.linalg.norm(d) * np.linalg.norm(d_truth) + 1e-12))
    return {"psnr": -10 * np.log10(max(mse, 1e-10)), "ssim": ss, "id_cos": cos}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="folders of face photos")
    p.add_argument("--split", choices=("train", "val", "all"), default="all",
                   help="hash split of the photos (faces-128: val is held out from training; default all)")
    p.add_argument("--limit", type=int, default=None, help="at most this many photos per folder")
    p.add_argument("--min-yaw", type=float, default=5.0, help="skip faces with |yaw| below this (default 5)")
    p.add_argument("--refiner", action="append", default=[], metavar="NAME=PATH", help="a refiner to compare")
    p.add_argument("--latent", action="append", default=[], metavar="NAME=PATH", help="a latent pose editor to compare")
    p.add_argument("--invert-steps", type=int, default=100, help="inversion steps of --latent (default 100)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write per-photo results here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        refiners = parse_refiners(args.refiner)
        latents = parse_refiners(args.latent)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if bad := [f for f in args.folders if not Path(f).is_dir()]:
        print(f"error: not a folder: {', '.join(bad)}", file=sys.stderr)
        return 2

    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from recon3d.data.faces import list_photos
    from recon3d.data.rotation_pairs import prepare_photo
    from recon3d.data.splits import is_held_out, photo_key
    from recon3d.edit._common import fit_tensors
    from recon3d.edit._learned_fill import template_matrix
    from recon3d.edit._learned_rotate import model_landmarks_px, refine_rotation, to_frame
    from recon3d.edit.latent_rotate import latent_rotate
    from recon3d.edit.rotate import rotate_views
    from recon3d.errors import Recon3DError
    from recon3d.io import load_image
    from recon3d.nn.identity import embed_aligned, load_identity_net
    from recon3d.nn.rotate_refine import load_rotation_refiner
    from recon3d.ops.morphology import dilate
    from recon3d.reconstruct import reconstruct

    torch.set_num_threads(args.threads)
    idnet = load_identity_net()
    nets = {name: load_rotation_refiner(path) for name, path in refiners.items()}
    methods = ["warp", *nets, *latents]
    rows_of = ["warp", *nets, *(k for n in latents for k in (n, f"{n}:no-edit"))]
    photos = []
    for folder in args.folders:
        files = list_photos(Path(folder))
        if args.split != "all":
            files = [f for f in files if is_held_out(photo_key(f, "/"), 5.0) == (args.split == "val")]
        photos += files[: args.limit] if args.limit else files
    rows, failed, skipped = [], [], 0
    for f in tqdm(photos, desc="mirror pairs", unit="img"):
        try:
            img, real = prepare_photo(load_image(f).image.numpy())
            W = img.shape[1]
            rec = reconstruct(img, name=f.stem)
        except Recon3DError as e:
            failed.append(f"{f.name}: {type(e).__name__}: {e}")
            continue
        y, pt, r = (rec.pose_deg[k] for k in ("yaw", "pitch", "roll"))
        if abs(y) < args.min_yaw:
            skipped += 1
            continue
        src_px, _ = model_landmarks_px(rec, fit_tensors(rec).verts_cam)
        m_gt = template_matrix(mirror_px(src_px, W), 128)
        truth = to_frame(np.ascontiguousarray(img[:, ::-1]), m_gt, 128)
        inside = to_frame(np.ascontiguousarray(real[:, ::-1]), m_gt, 128)[0] > 0.999
        row = {"file": f.name, "yaw": y, "methods": {}}
        t = torch.from_numpy(truth)[None]
        d_truth = embed_aligned(t * 2 - 1, idnet)[0]
        try:  # a fit can come out upside down (|pitch| > 90): no mirrored pose to turn to
            view = rotate_views(rec, [(-y, pt, -2 * r)], absolute=True)[0]
        except (Recon3DError, ValueError) as e:
            failed.append(f"{f.name}: rotation: {type(e).__name__}: {e}")
            continue
        tgt_px, _ = model_landmarks_px(rec, view.verts_cam)
        m = template_matrix(tgt_px, 128)
        face = to_frame(view.mask.numpy().astype(np.float32)[..., None], m, 128)[0] > 0.5
        region = inside & dilate(face, MARGIN)
        region_t = torch.from_numpy(region)
        for name in methods:
            if name in latents:
                lmk = rec.lmk_detected_px.numpy().astype(np.float64)
                rot = latent_rotate(img, [-y], absolute=True, lmk_px=lmk, encoder_weights=latents[name],
                                    steps=args.invert_steps)
                m_lat = template_matrix(mirror_px(lmk, W), 128)
                t_lat = torch.from_numpy(to_frame(np.ascontiguousarray(img[:, ::-1]), m_lat, 128))[None]
                d_lat = embed_aligned(t_lat * 2 - 1, idnet)[0]
                # the edit, and the inversion without it (the input pose): what the encoder adds
                for key, face, yaw_read in ((name, rot.views[0].image, rot.views[0].pose_deg[0]),
                                            (f"{name}:no-edit", rot.inverted, rot.pose_deg[0])):
                    o = F.interpolate(face.permute(2, 0, 1)[None], size=(128, 128), mode="bicubic",
                                      align_corners=False).clamp(0, 1)
                    row["methods"][key] = {**score(o, t_lat, d_lat, region_t, idnet), "yaw_read": yaw_read}
                continue
            # the refiner on the warp's view: what rotate_views(refine="net") does
            image = view.image.numpy() if name == "warp" else refine_rotation(nets[name], rec, view, identity_net=idnet)[0]
            row["methods"][name] = score(torch.from_numpy(to_frame(image, m, 128))[None], t, d_truth, region_t, idnet)
        rows.append(row)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"rows": rows, "failed": failed}, indent=1))
    print(f"{', '.join(args.folders)} ({args.split}): {len(photos)} photos, {len(rows)} scored, {skipped} with "
          f"|yaw| < {args.min_yaw:g}, {len(failed)} failed")
    if not rows:
        return 1
    print(f"mean |yaw change| {np.mean([2 * abs(r['yaw']) for r in rows]):.1f} deg")
    print("| method | PSNR (dB) | SSIM | identity cos to the mirrored photo | latent: mean abs(yaw read - target) |")
    print("|---|---|---|---|---|")
    for name in rows_of:
        v = [r["methods"][name] for r in rows]
        read = (f"{np.mean([abs(x['yaw_read'] + r['yaw']) for x, r in zip(v, rows, strict=True)]):.1f}"
                if "yaw_read" in v[0] else "")
        print(f"| {name} | {np.mean([x['psnr'] for x in v]):.2f} | {np.mean([x['ssim'] for x in v]):.3f} | "
              f"{np.mean([x['id_cos'] for x in v]):.3f} | {read} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
