"""recon3d.batch: job collection and the batch runner (returns a report; never prints)."""
