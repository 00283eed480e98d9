"""Model definitions: the PIP plug-in, its backbones and the degradation sensor."""

from __future__ import annotations

from torch import nn

from .nafnet import NAFNetBackbone
from .pip import PIPBlock, PIPNet, UShapedBackbone
from .restormer import RestormerBackbone
from .sensor import DegradationSensor

BACKBONES = {"nafnet": NAFNetBackbone, "restormer": RestormerBackbone}


def build_model(config: dict) -> PIPNet:
    """Build a PIP model from its config: the dict stored in every weights file.

    ``{"backbone": "nafnet", "backbone_args": {...}, "prompt_dims": [...], "prompt_sizes": [...],
    "heads": [...], "expansion": 1.0}``; empty ``prompt_dims`` gives the bare backbone.
    """
    try:
        backbone = BACKBONES[config["backbone"]](**config.get("backbone_args", {}))
    except KeyError as error:
        raise ValueError(f"unknown backbone in model config: {config.get('backbone')!r}") from error
    return PIPNet(
        backbone,
        prompt_dims=tuple(config.get("prompt_dims", ())),
        prompt_sizes=tuple(config.get("prompt_sizes", ())),
        heads=tuple(config["heads"]) if config.get("heads") else None,
        expansion=config.get("expansion", 1.0),
        sensor_width=config.get("sensor_width", 32),
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["BACKBONES", "DegradationSensor", "NAFNetBackbone", "PIPBlock", "PIPNet", "RestormerBackbone",
           "UShapedBackbone", "build_model", "count_parameters"]
