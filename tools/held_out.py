"""What the held-out diagnostics in tools/ share: the model to look at and the clean images of its
config's validation split of train/ (never test/), loaded the same way for every tool."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import numpy as np
import torch

import pip_filters
from pip_filters.training.data import decode_rgb
from pip_filters.training.train import _splits

CONFIGS = Path(__file__).resolve().parent.parent / "training" / "configs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=pip_filters.DEFAULT_MODEL)
    parser.add_argument("--weights", type=Path, help="default: the package's weights for --model")
    parser.add_argument("--config", type=Path, default=None, help="default: training/configs/MODEL.toml")
    parser.add_argument("--threads", type=int, default=2)


def config_data(args: argparse.Namespace) -> tuple[Path, dict, Path]:
    """The config file of --model (or --config), its [data] table and the data root it names
    (which must exist: every held-out diagnostic reads train/)."""
    config = args.config or CONFIGS / f"{args.model}.toml"
    data = tomllib.loads(config.read_text())["data"]
    root = (config.parent / data["root"]).resolve()
    if not root.is_dir():
        raise SystemExit(f"no training data at {root}: the shared data folder must sit beside the checkout")
    return config, data, root


def restorer(args: argparse.Namespace) -> pip_filters.Restorer:
    """The restorer of --weights, or of --model's shipped weights, on the CPU."""
    if args.weights:
        return pip_filters.load(weights=args.weights, device="cpu")
    return pip_filters.load(args.model, device="cpu")


def setup(args: argparse.Namespace) -> tuple[pip_filters.Restorer, Path, dict, Path]:
    """What every held-out tool starts with: --threads set, the restorer (restorer()) and the
    config, [data] table and data root (config_data())."""
    torch.set_num_threads(args.threads)
    config, data, root = config_data(args)
    return restorer(args), config, data, root


def load(args: argparse.Namespace) -> tuple[pip_filters.Restorer, list[np.ndarray]]:
    """The restorer on the CPU and the held-out clean images (uint8 H x W x 3)."""
    model, config, data, root = setup(args)
    _, (val_clean, _), _ = _splits(data, root)
    images = [decode_rgb(f) for f in val_clean]
    print(f"{len(images)} held-out images ({config.name}'s validation split of train/)")
    return model, images
