"""Gallery indexes with faiss: build one from the full model's gallery features (whole, or
one shard at a time), save it, and search it with any width's query features."""
from .build import (
    IndexBuild,
    ShardSpec,
    build_index,
    index_metric,
    parse_shard,
    shard_rows,
    write_index_folder,
)
from .devices import DEVICES, gpu_count
from .errors import DimensionMismatchError, IndexInputError, MetricMismatchError
from .gallery import FeatureSet, extract_feature_set, load_feature_set
from .search import SearchResult, save_search_result, search_folders
from .shards import check_shards, merge_index_folders, merge_topk
from .store import IndexFolder, load_index_folder, save_index_folder

__all__ = [
    "DEVICES", "DimensionMismatchError", "FeatureSet", "IndexBuild", "IndexFolder",
    "IndexInputError", "MetricMismatchError", "SearchResult", "ShardSpec", "build_index",
    "index_metric",
    "check_shards", "extract_feature_set", "gpu_count", "load_feature_set", "load_index_folder",
    "merge_index_folders", "merge_topk", "parse_shard", "save_index_folder",
    "save_search_result", "search_folders", "shard_rows", "write_index_folder",
]
