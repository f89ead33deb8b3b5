from .resnet import SwitchableResNet, build_switchable_resnet_backbone  # noqa: F401
