"""Step 4: runs, candidates and the run folder."""

from slimkit.pipeline.baseline import baseline
from slimkit.pipeline.run import Candidate, Run
from slimkit.pipeline.store import load_model, read_manifest

__all__ = ["Candidate", "Run", "baseline", "load_model", "read_manifest"]
