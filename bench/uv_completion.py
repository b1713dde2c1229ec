"""UV completion protocol (issue 15 item 4): the classical completion and the learned UV generator side by side,
on real texels hidden by turning the head.

Usage::

    python bench/uv_completion.py ../shared/faces-128 --split val --limit 60 \\
        --generator net=assets/recon3d_uv_generator_128_v1.safetensors --json out/uv.json
    python bench/uv_completion.py ../shared/300w/helen_testset --limit 60

Each photo (aligned crops of at most 160 px are padded by reflection, as in training) is reconstructed once
(fast preset) and unwrapped into a 128² UV map (:func:`recon3d.data.uv_pairs.fit_photo`). For each turn of the
head by ``--turns`` degrees of yaw (default -60 -30 30 60) the texels the turned view no longer sees are
hidden (:func:`recon3d.data.uv_pairs.turned_sample`, the training samples' construction) and completed again
from what is left, by each method:

* ``prior``: the fitted 3DMM albedo times the fitted shading (no completion at all);
* ``poisson``: mirror + Poisson blending into it (:func:`recon3d.texture.complete_texture`, today's default);
* ``poisson-nomirror``: the same without the mirror pass (``reconstruct --no-mirror``);
* ``poisson-linear``: ``poisson`` with the additive last fill of earlier versions (``fill_space="linear"``;
  the default solves it on log colours);
* every ``--generator NAME=PATH``: the learned UV generator correcting ``poisson`` (``reconstruct --texture
  net``).

Scores, per method and ``|turn|``:

* ``L1 hid`` / ``PSNR hid``: on the hidden texels, against the photo's own texels there (exact truth);
* ``L1 img`` / ``SSIM img``: the thesis's Table 4.2 measures (L1 and SSIM of the rendered reconstruction to
  the photo over the face region) for the completed texture rendered at the photo's pose (the hidden texels
  are where the photo shows them), in the 128² template-aligned frame;
* ``id img``: identity cosine of that render (over the photo's background) to the photo; ``id turned``:
  identity cosine of the completed texture rendered at the turned pose (black background) to the photo
  (our identity network, dlib's ResNet ported, :func:`recon3d.nn.identity.embed_aligned`).

Photos whose reconstruction fails, or that see less than a fifth of the layout, are listed and skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from rotation_mirror import parse_refiners


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="folders of face photos")
    p.add_argument("--split", choices=("train", "val", "all"), default="all",
                   help="hash split of the photos (faces-128: val is held out from training; default all)")
    p.add_argument("--limit", type=int, default=None, help="at most this many photos per folder")
    p.add_argument("--turns", type=float, nargs="+", default=[-60.0, -30.0, 30.0, 60.0],
                   help="turns of the head in degrees of yaw (default -60 -30 30 60)")
    p.add_argument("--generator", action="append", default=[], metavar="NAME=PATH", help="a UV generator to compare")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write per-photo results here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        gens = parse_refiners(args.generator)
    except ValueError as e:
        print(f"error: {e}".replace("--refiner", "--generator"), file=sys.stderr)
        return 2
    if bad := [f for f in args.folders if not Path(f).is_dir()]:
        print(f"error: not a folder: {', '.join(bad)}", file=sys.stderr)
        return 2
    if bad := [t for t in args.turns if not 5 <= abs(t) <= 85]:
        print(f"error: --turns must be within 5 and 85 degrees either way, got {bad}", file=sys.stderr)
        return 2

    import torch
    from tqdm import tqdm

    from recon3d.data.faces import list_photos
    from recon3d.data.splits import is_held_out, photo_key
    from recon3d.data.uv_pairs import fit_photo, turned_sample
    from recon3d.errors import Recon3DError
    from recon3d.io import load_image
    from recon3d.nn.identity import embed_aligned, load_identity_net
    from recon3d.nn.uv_generator import load_uv_generator
    from recon3d.ops.metrics import ssim_map
    from recon3d.texture import complete_texture
    from recon3d.train.recipes.uv_generator import render_uv

    torch.set_num_threads(args.threads)
    idnet = load_identity_net()
    nets = {name: load_uv_generator(path) for name, path in gens.items()}
    methods = ["prior", "poisson", "poisson-nomirror", "poisson-linear", *nets]
    photos = []
    for folder in args.folders:
        files = list_photos(Path(folder))
        if args.split != "all":
            files = [f for f in files if is_held_out(photo_key(f, "/"), 5.0) == (args.split == "val")]
        photos += files[: args.limit] if args.limit else files

    def cos(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

    rows, failed = [], []
    for f in tqdm(photos, desc="uv completion", unit="img"):
        try:
            fit = fit_photo(load_image(f).image.numpy())
        except Recon3DError as e:
            fit = f"{type(e).__name__}: {e}"
        if isinstance(fit, str):
            failed.append(f"{f.name}: {fit}")
            continue
        layout = fit.uvr.mask[None, None].float()
        for turn in args.turns:
            s = {k: torch.from_numpy(np.asarray(v, np.float32))[None] for k, v in turned_sample(fit, turn).items()}
            vis, vis_h = s["vis"][:, 0:1], s["vis"][:, 1:2]
            hid = (vis - vis_h).clamp_min(0)
            if hid.sum() < 20:
                continue
            photo = s["photo"] / 255
            cov0, cov1 = s["cov"][:, 0:1], s["cov"][:, 1:2]
            d_photo = embed_aligned(photo * 2 - 1, idnet)[0]
            seen = vis_h * layout
            done = {"prior": seen * s["tex"] + (layout - seen) * s["prior"], "poisson": s["base"]}
            nm = complete_texture(s["tex"].permute(0, 2, 3, 1), vis_h[:, 0] > 0.5, s["prior"].permute(0, 2, 3, 1),
                                  fit.uvr, mirror=False, keep_visible=True).texture
            done["poisson-nomirror"] = nm.permute(0, 3, 1, 2) * layout
            lin = complete_texture(s["tex"].permute(0, 2, 3, 1), vis_h[:, 0] > 0.5, s["prior"].permute(0, 2, 3, 1),
                                   fit.uvr, keep_visible=True, fill_space="linear").texture
            done["poisson-linear"] = lin.permute(0, 3, 1, 2) * layout
            with torch.no_grad():
                for name, net in nets.items():
                    done[name] = net.complete(s["tex"], vis_h, s["prior"], s["base"], layout)
            row = {"file": f.name, "yaw": fit.pose[0], "turn": turn, "hidden_texels": int(hid.sum()), "methods": {}}
            for name in methods:
                y = done[name]
                l1h = float(((y - s["tex"]).abs() * hid).sum() / (3 * hid.sum()))
                mse = float(((y - s["tex"]) ** 2 * hid).sum() / (3 * hid.sum()))
                r0 = render_uv(y, s["uv"][:, :2], cov0)
                img = r0 + (1 - cov0) * photo
                m = cov0[0, 0] > 0.5
                l1i = float((r0 - photo * cov0).abs().mean(1)[0][m].mean())
                ssi = float(ssim_map(img, photo)[0].mean(0)[m].mean())
                r1 = render_uv(y, s["uv"][:, 2:], cov1)
                d = embed_aligned(torch.cat([img, r1]) * 2 - 1, idnet)
                row["methods"][name] = {"l1_hid": l1h, "psnr_hid": -10 * np.log10(max(mse, 1e-10)), "l1_img": l1i,
                                        "ssim_img": ssi, "id_img": cos(d[0], d_photo), "id_turned": cos(d[1], d_photo)}
            rows.append(row)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"rows": rows, "failed": failed}, indent=1))
    n_ph = len({r["file"] for r in rows})
    print(f"{', '.join(args.folders)} ({args.split}): {len(photos)} photos, {n_ph} scored ({len(rows)} turns), "
          f"{len(failed)} failed")
    if not rows:
        return 1
    keys = ("l1_hid", "psnr_hid", "l1_img", "ssim_img", "id_img", "id_turned")
    print("| method | \\|turn\\| | L1 hid | PSNR hid (dB) | L1 img | SSIM img | id img | id turned |")
    print("|---|---|---|---|---|---|---|---|")
    for mag in sorted({abs(r["turn"]) for r in rows}):
        sel = [r for r in rows if abs(r["turn"]) == mag]
        for name in methods:
            v = [np.mean([r["methods"][name][k] for r in sel]) for k in keys]
            print(f"| {name} | {mag:g} | {v[0]:.4f} | {v[1]:.2f} | {v[2]:.4f} | {v[3]:.3f} | {v[4]:.3f} | {v[5]:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
