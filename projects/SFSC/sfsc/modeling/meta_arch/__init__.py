from .switchable_baseline import COMPAT_LOSSES, SwitchableBaseline  # noqa: F401
