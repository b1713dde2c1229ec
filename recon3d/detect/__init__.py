"""recon3d.detect"""
