from .switchable_head import SwitchableEmbeddingHead  # noqa: F401
