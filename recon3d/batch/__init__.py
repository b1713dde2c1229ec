"""recon3d.batch: job collection, the batch runner and its engines (returns a report; never prints)."""

from .engines import ENGINES, EngineConfig, EngineError
from .item import ItemResult, Outcome, execute
from .jobs import (
    IMAGE_SUFFIXES,
    Job,
    ManifestError,
    collect_jobs,
    count_manifest,
    expand_inputs,
    iter_manifest,
    source_id,
    unique_names,
)
from .records import DoneMarkers, ResultsIndex, read_index
from .runner import BatchReport, exported, run_batch

__all__ = ["IMAGE_SUFFIXES", "Job", "collect_jobs", "expand_inputs", "unique_names", "source_id", "BatchReport", "ItemResult",
           "Outcome", "exported", "run_batch", "execute", "ManifestError", "iter_manifest", "count_manifest", "ENGINES",
           "EngineConfig", "EngineError", "DoneMarkers", "ResultsIndex", "read_index"]
