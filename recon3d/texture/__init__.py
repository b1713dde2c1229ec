"""recon3d.texture"""
