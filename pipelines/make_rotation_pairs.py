"""Build the training samples of the learned rotation refiner (issue 16 item 1).

    python -m pipelines.make_rotation_pairs ../shared/faces-128 ../shared/300w/afw ../shared/300w/helen_trainset \\
        --out ~/.cache/recon3d/rotation-pairs --n 2000 --shard 0/2 &
    python -m pipelines.make_rotation_pairs ../shared/faces-128 ../shared/300w/afw ../shared/300w/helen_trainset \\
        --out ~/.cache/recon3d/rotation-pairs --n 2000 --shard 1/2

The photos of the folders (their ``--split`` by the hash of ``<folder>/<stem>``, as ``load_faces`` splits;
the folders taken in turns, so a partial build mixes them) are reconstructed once each and rotated three
ways (:mod:`recon3d.data.rotation_pairs`): to the mirrored pose (truth: the mirrored photo), to a random pose
20-60 degrees away (no truth) and back again from there (truth: the photo itself). The samples, in the
refiner's 128² frame, go to ``--out`` in compressed chunks (read with ``load_rotation_pairs``). Rerun the same
command to continue a killed run or with a larger ``--n`` to extend it; ``--shard K/N`` lets N processes share
one folder. Photos whose reconstruction fails are skipped and counted.
"""

from __future__ import annotations

from ._cli import photo_build_main


def main(argv: list[str] | None = None) -> int:
    return photo_build_main(argv, "python -m pipelines.make_rotation_pairs", __doc__,
                            "rotation_pairs.build_rotation_pairs", "rotation_pairs_size", "sample")


if __name__ == "__main__":
    raise SystemExit(main())
