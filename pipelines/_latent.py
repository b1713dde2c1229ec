"""``rotate --method latent``: the latent pose editor of :mod:`recon3d.edit.latent_rotate` inside the rotate verb.

Per image, into ``OUT/<stem>/``: ``<stem>_face.png`` (the aligned input at the prior's resolution),
``<stem>_inverted.png`` (its W+ reconstruction), one ``<stem>_latent_yaw+15.png`` per pose (``_frontal`` with
``--frontalize``), ``<stem>_grid.png`` (input, inversion, then every pose), ``<stem>_turntable.gif`` with ``--gif``
and ``<stem>_rotate.json`` (the pose our regressor reads on every output and its identity cosine to the input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

METHODS = ("warp", "latent")


def add_latent(p: argparse.ArgumentParser) -> None:
    """``--method {warp,latent}``, ``--latent-weights``, ``--invert-steps``."""
    p.add_argument("--method", choices=METHODS, default="warp",
                   help="'warp': the 3D-guided rotation of the whole photo (default); 'latent': edit the face in the "
                        "StyleGAN2 prior's latent space (seed 000; aligned face crop at the prior's 64x64, yaw only)")
    p.add_argument("--latent-weights", default=None, metavar="PATH",
                   help="latent pose encoder weights for --method latent (default: the shipped encoder)")
    p.add_argument("--invert-steps", type=int, default=300, help="--method latent: inversion steps (default 300)")


def check_latent(args) -> int | None:
    """With ``--method latent``: refuse options it does not take (2), load the encoder now so that missing or bad
    weights fail before any work (1); else ``None``."""
    if args.method != "latent":
        return None
    bad = [f for f, on in (("--pitch", any(p != 0 for p in args.pitch)), ("--refine net", args.refine != "none"),
                           ("--restore", args.restore), ("--texture net", args.texture != "poisson")) if on]
    if bad or args.invert_steps < 1:
        print(f"error: --method latent edits yaw only, in the prior's latent space: drop {', '.join(bad)}"
              if bad else "error: --invert-steps must be >= 1", file=sys.stderr)
        return 2
    from recon3d.errors import Recon3DError
    from recon3d.nn.latent_pose import load_latent_pose

    try:
        load_latent_pose(args.latent_weights, device=args.device)
    except Recon3DError as e:
        print(f"error: --method latent: {e}", file=sys.stderr)
        return 1
    return None


def process_latent(src, stem: str, args, out_root: Path, fmt):
    """One input of ``rotate --method latent`` (``fmt``: the angle formatter)."""
    from recon3d.batch import Outcome
    from recon3d.edit.latent_rotate import latent_rotate
    from recon3d.io import load_image, save_image
    from recon3d.io.atomic import atomic_dir

    from ._cli import check_job_folder, describe_input, image_grid, save_turntable

    check_job_folder(out_root / stem)
    image = load_image(src, max_pixels=args.max_pixels).image
    yaws = list(args.yaw if args.yaw is not None else [-30.0, -15.0, 0.0, 15.0, 30.0])
    rot = latent_rotate(image, yaws, absolute=args.absolute, frontal=args.frontalize,
                        encoder_weights=args.latent_weights, steps=args.invert_steps, device=args.device)
    front = rot.views.pop() if args.frontalize else None
    with atomic_dir(out_root / stem) as out:
        save_image(out / f"{stem}_face.png", rot.face)
        save_image(out / f"{stem}_inverted.png", rot.inverted)
        record = {"input": describe_input(src, stem), "method": "latent", "absolute": args.absolute,
                  "resolution": int(rot.face.shape[0]), "invert_steps": args.invert_steps, **rot.summary()}
        record["outputs"] = record.pop("views")
        for yaw, v, entry in zip(yaws, rot.views, record["outputs"], strict=True):
            entry["image"] = f"{stem}_latent_yaw{fmt(yaw)}.png"
            save_image(out / entry["image"], v.image)
        cells = [rot.face, rot.inverted] + [v.image for v in rot.views]
        if front is not None:
            save_image(out / f"{stem}_frontal.png", front.image)
            record["frontal"] = {"image": f"{stem}_frontal.png", **front.summary()}
            cells.append(front.image)
        image_grid(cells, args.grid_size).save(out / f"{stem}_grid.png")
        if args.gif:
            save_turntable([v.image for v in rot.views], out / f"{stem}_turntable.gif")
            record["gif"] = f"{stem}_turntable.gif"
        (out / f"{stem}_rotate.json").write_text(json.dumps(record, indent=1))
    msg = f"{stem}: yaw {rot.pose_deg[0]:+.1f}, {len(rot.views)} latent views -> {out_root / stem}"
    return Outcome(msg, (out_root / stem,), {"pose_deg": rot.pose_deg})
