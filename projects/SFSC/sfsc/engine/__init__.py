from .aggregation import AGGREGATIONS, build_aggregation  # noqa: F401
from .defaults import check_config, setup_cfg  # noqa: F401
from .trainer import SFSCTrainer  # noqa: F401
