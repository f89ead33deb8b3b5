from .switchable_baseline import SwitchableBaseline  # noqa: F401
