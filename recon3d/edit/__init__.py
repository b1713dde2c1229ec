"""recon3d.edit"""
