"""The gallery-index benchmark: a million-row gallery indexed by the full model, queried by
every width, through Flat, IVF-Flat, IVF-PQ and HNSW indexes."""
from .report import write_report
from .suite import IndexBenchSettings, run_index_benchmark

__all__ = ["IndexBenchSettings", "run_index_benchmark", "write_report"]
