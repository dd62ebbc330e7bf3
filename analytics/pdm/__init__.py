"""Predictive maintenance: features, labels, models, their baseline, metrics and registry.

Read an export (`read_export`, `read_truth`), train (`train`), keep models in a directory
(`save_model`, `load_model`, `list_models`), score a machine (`PdmModel.predict`) and measure
a model beside its single-signal baseline on any export (`assess`).
"""

from analytics.pdm.assessment import Assessment, assess
from analytics.pdm.evaluate import AlarmRule, ComponentMetrics
from analytics.pdm.features import FEATURE_NAMES, FeatureCache
from analytics.pdm.history import (
    LOOKBACK_H,
    ExportReadError,
    ExportTruth,
    Failure,
    MachineHistory,
    read_export,
    read_truth,
)
from analytics.pdm.model import (
    Evidence,
    ModelError,
    ModelVersionError,
    PdmModel,
    Prediction,
)
from analytics.pdm.registry import default_models_dir, list_models, load_model, save_model
from analytics.pdm.train import TrainError, TrainSettings, train

__all__ = [
    "FEATURE_NAMES",
    "LOOKBACK_H",
    "AlarmRule",
    "Assessment",
    "ComponentMetrics",
    "Evidence",
    "ExportReadError",
    "ExportTruth",
    "Failure",
    "FeatureCache",
    "MachineHistory",
    "ModelError",
    "ModelVersionError",
    "PdmModel",
    "Prediction",
    "TrainError",
    "TrainSettings",
    "assess",
    "default_models_dir",
    "list_models",
    "load_model",
    "read_export",
    "read_truth",
    "save_model",
    "train",
]
