"""recon3d.ops: generic image and geometry operations, one implementation each (normals, boundary vertices,
Poisson blending, morphology, bilinear sampling, triangulation/warps, landmark crop boxes, metrics).

Import from the submodules (``recon3d.ops.metrics``, ...); this package re-exports nothing.
"""
