from .mobilenetv2 import SwitchableMobileNetV2, build_switchable_mobilenetv2_backbone  # noqa: F401
from .resnet import SwitchableResNet, build_switchable_resnet_backbone  # noqa: F401
from .shufflenet import SwitchableShuffleNet, build_switchable_shufflenet_backbone  # noqa: F401
from .shufflenetv2 import (  # noqa: F401
    SwitchableShuffleNetV2,
    build_switchable_shufflenetv2_backbone,
)
