"""recon3d.data: training-data generators and splits (pose synthesis, occluder shapes, hash splits).
Offline only: nothing at inference time imports this package.
"""
