"""recon3d.structures: typed result types (Mesh, Reconstruction, ...). Data only: no I/O, no maths beyond accessors."""
