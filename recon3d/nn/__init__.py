"""recon3d.nn: inference networks only (landmark regressor, occluder segmenter; generators, restorers and
refiners next) and the one checkpoint registry. No data generation, no training code.
"""
