from .aggregation import AGGREGATIONS, build_aggregation  # noqa: F401
from .checkpoint import CheckpointError, SFSCCheckpointer  # noqa: F401
from .defaults import setup_cfg  # noqa: F401
from .launch import launch  # noqa: F401
from .trainer import SFSCTrainer  # noqa: F401
