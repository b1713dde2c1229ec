"""recon3d.batch: job collection and the batch runner (returns a report; never prints)."""

from .jobs import IMAGE_SUFFIXES, Job, collect_jobs, expand_inputs, source_id, unique_names
from .runner import BatchReport, ItemResult, Outcome, exported, run_batch

__all__ = ["IMAGE_SUFFIXES", "Job", "collect_jobs", "expand_inputs", "unique_names", "source_id", "BatchReport", "ItemResult",
           "Outcome", "exported", "run_batch"]
