"""Real faces inverted into the StyleGAN2 prior: the W* inputs of the latent pose editor (seed 000).

Seed 000 edits a photo by adding a pose change to its inverted latent W*. Training the editor on real photos
therefore needs their W*, and inversion (:func:`recon3d.nn.inversion.invert`) is the slow part (seconds per
face), so it is done once: :func:`build_inverted_latents` inverts the aligned faces of a folder (the training
split of ``load_faces``) in batches and stores, per face, the photo at the prior's resolution (uint8), its W+
latent (float16) and the identity distance of the reconstruction. Chunks are written atomically and a rerun
continues where the last one stopped (:mod:`recon3d.data._chunks`); ``config.json`` records the generator's
checksum, so latents of another prior are never mixed in.

``python -m pipelines.make_inverted_latents ../shared/faces-128 --out DIR --n 512`` builds one;
:func:`load_inverted_latents` reads it back.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..nn.generation import generator_checksum
from ._chunks import ChunkedSamples, ChunkStore, check_build_args, load_chunked, open_build_folder

__all__ = ["InvertedLatents", "build_inverted_latents", "load_inverted_latents", "generator_checksum"]

log = logging.getLogger(__name__)


class InvertedLatents(ChunkedSamples):
    """Merged inverted faces: ``arrays["photo"]`` ``(M, 3, R, R)`` uint8, ``arrays["ws"]`` ``(M, L, W)`` float16,
    ``arrays["id_dist"]`` ``(M,)``; ``meta`` the folder's settings."""


def _fields(meta: dict) -> dict:
    r, L, W = meta["res"], meta["n_latent"], meta["w_dim"]
    return {"photo": ((3, r, r), np.uint8), "ws": ((L, W), np.float16), "id_dist": ((), np.float32)}


def build_inverted_latents(root: str | Path, out_dir: str | Path, *, G=None, n: int | None = 512, batch: int = 32,
                           steps: int = 150, split: str = "train", shard: tuple[int, int] = (0, 1),
                           progress: bool = True) -> int:
    """Invert the faces of ``root`` (``load_faces(root, G.res, split=split)``, the first ``n``) into ``OUT``.

    Args:
        root: a folder of aligned faces (or photos to detect and align).
        out_dir: the chunk folder (created; resumed when it exists with the same settings).
        G: the StyleGAN2 prior (default: the shipped one).
        n: faces to invert (None: all of the split).
        batch: faces per inversion batch (and per chunk).
        steps: optimisation steps per batch (:class:`~recon3d.nn.inversion.InversionConfig`).
        split: the ``load_faces`` split (keep ``"train"``: the benchmarks use the held-out photos).
        shard: ``(k, m)``: this process does chunks ``k, k + m, ...`` (parallel builders).

    Returns:
        The number of faces this call inverted.

    Raises:
        Recon3DError: ``root`` holds no face, or ``out_dir`` holds progress with other settings.
        ValueError: bad ``n``, ``batch`` or ``shard``.
    """
    from tqdm import tqdm

    from ..nn.generation import load_generator
    from ..nn.inversion import InversionConfig, invert
    from .faces import load_faces

    k, m = check_build_args("build_inverted_latents()", n, batch, shard)
    if G is None:
        G, _ = load_generator("stylegan2")
    G = G.eval()
    faces = load_faces(root, G.res, split=split, limit=n, progress=progress).images
    cfg = InversionConfig(steps=steps)
    config = {"root": str(Path(root).resolve()), "split": split, "n": len(faces), "batch": batch,
              "res": G.res, "n_latent": G.n_latent, "w_dim": G.w_dim, "generator": generator_checksum(G),
              "inversion": asdict(cfg)}
    out = open_build_folder("build_inverted_latents()", out_dir, config,
                            "(another generator, folder or step count)")
    store = ChunkStore(out, _fields(config))
    done, _ = store.index()
    starts = [s for j, s in enumerate(range(0, len(faces), batch)) if j % m == k]
    todo = [s for s in starts if not all(i in done for i in range(s, min(s + batch, len(faces))))]
    count = 0
    for s in tqdm(todo, desc="inverting", unit="batch", disable=not progress):
        photo = np.asarray(faces[s: s + batch])
        res = invert(G, torch.from_numpy(photo).float() / 127.5 - 1, cfg)
        ws = res.ws.cpu().numpy().astype(np.float16)
        store.write({s + j: {"photo": photo[j], "ws": ws[j], "id_dist": res.identity_distance[j]}
                     for j in range(len(photo))})
        count += len(photo)
        log.info("inverted faces %d-%d: identity distance %.3f", s, s + len(photo), float(res.identity_distance.mean()))
    return count


def load_inverted_latents(out_dir: str | Path) -> InvertedLatents:
    """Read a :func:`build_inverted_latents` folder.

    Raises:
        Recon3DError: not such a folder, or it holds no face yet.
    """
    return load_chunked(out_dir, _fields, "inverted-latent", "make_inverted_latents", InvertedLatents)
