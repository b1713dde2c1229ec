"""Build the training samples of the learned UV texture generator (issue 15 item 4).

    python -m pipelines.make_uv_pairs ../shared/faces-128 ../shared/300w/afw ../shared/300w/helen_trainset \\
        --out ~/.cache/recon3d/uv-pairs --n 3000 --shard 0/2 &
    python -m pipelines.make_uv_pairs ../shared/faces-128 ../shared/300w/afw ../shared/300w/helen_trainset \\
        --out ~/.cache/recon3d/uv-pairs --n 3000 --shard 1/2

The photos of the folders (their ``--split`` by the hash of ``<folder>/<stem>``, as ``load_faces`` splits;
the folders taken in turns) are reconstructed once each and unwrapped into 128² UV maps
(:mod:`recon3d.data.uv_pairs`): the photo's texels, the fitted 3DMM prior, the mirror + Poisson pseudo
ground truth, and the same texture seen from a pose turned 25-65 degrees away (real texels hidden from the
generator, with their truth), plus the maps that render any UV texture at both poses. Rerun the same command
to continue a killed run or with a larger ``--n`` to extend it; ``--shard K/N`` lets N processes share one
folder. Photos whose reconstruction fails are skipped and counted.
"""

from __future__ import annotations

from ._cli import photo_build_main


def main(argv: list[str] | None = None) -> int:
    return photo_build_main(argv, "python -m pipelines.make_uv_pairs", __doc__, "uv_pairs.build_uv_pairs",
                            "uv_pairs_size", "sample")


if __name__ == "__main__":
    raise SystemExit(main())
