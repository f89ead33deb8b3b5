"""Deployment of SFSC sub-models: export one width as a small plain network, extract features
with it, and measure what each width costs."""
from .errors import DeployError
from .export import ExportResult, export_submodel
from .feature_model import ReIDFeatureModel, build_feature_model, count_parameters
from .loading import LoadedModel, check_width, load_switchable
from .preprocessing import Preprocessing, image_to_input, load_rgb
from .runtime import ExportedModel, load_exported

__all__ = [
    "DeployError", "ExportResult", "ExportedModel", "LoadedModel", "Preprocessing",
    "ReIDFeatureModel", "build_feature_model", "check_width", "count_parameters",
    "export_submodel", "image_to_input", "load_exported", "load_rgb", "load_switchable",
]
