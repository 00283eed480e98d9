"""Reading and writing model weights: safetensors only, never pickle.

A weights file is self-describing: its safetensors metadata holds the model config (JSON), free
metadata (training command, data, metrics) and the sha256 of the tensor bytes, so a file that was
altered after it was written is refused. Shipped files are additionally pinned by the sha256 of
the whole file in the registry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


class WeightsError(RuntimeError):
    """A weights file is missing, not safetensors, altered, or does not fit the model."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A digest of names, shapes, dtypes and bytes, independent of the file's layout."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], config: dict, metadata: dict | None = None) -> str:
    """Write a weights file; returns the sha256 of the file written."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in state_dict.items()}
    header = {
        "format": "pip-filters/1",
        "config": json.dumps(config, sort_keys=True),
        "metadata": json.dumps(metadata or {}, sort_keys=True),
        "tensors_sha256": tensors_sha256(tensors),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=header)
    tmp.replace(path)
    return file_sha256(path)


def read_metadata(path: str | Path) -> dict:
    """The header of a weights file: {'config': dict, 'metadata': dict, ...} without loading tensors."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path} is not a safetensors weights file ({error}); pickle checkpoints are refused") from error
    return _parse_header(path, header)


def load_weights(path: str | Path, expected_sha256: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Load and verify a weights file. Returns (state_dict, header)."""
    path = _existing(path)
    if expected_sha256 and file_sha256(path) != expected_sha256:
        raise WeightsError(f"{path} does not match its recorded sha256: the file was altered or is corrupt")
    header = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path} could not be read as safetensors: {error}") from error
    if tensors_sha256(tensors) != header["tensors_sha256"]:
        raise WeightsError(f"{path}: tensor data does not match the checksum in its header (altered file)")
    return tensors, header


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return path


def _parse_header(path: Path, header: dict) -> dict:
    if header.get("format") != "pip-filters/1" or "config" not in header or "tensors_sha256" not in header:
        raise WeightsError(f"{path} is a safetensors file but not a pip-filters weights file (no config in its header)")
    return {
        "config": json.loads(header["config"]),
        "metadata": json.loads(header.get("metadata", "{}")),
        "tensors_sha256": header["tensors_sha256"],
    }
