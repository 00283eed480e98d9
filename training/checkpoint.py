"""Training checkpoints for exact resume, in safetensors (no pickle anywhere).

Everything a run needs to continue bit-for-bit is stored: model, EMA, optimiser moments, step,
the resolved run config, and every random generator's state (as uint8 tensors).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, ema: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, step: int, run: dict,
                    generators: dict[str, torch.Generator]) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"opt.{index}.{key}"] = torch.as_tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    for name, generator in generators.items():
        tensors[f"rng.gen.{name}"] = generator.get_state()
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"step": str(step), "run": json.dumps(run), "param_groups": json.dumps(opt["param_groups"])}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)  # a crash mid-write never leaves a broken checkpoint behind


def read_run(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    return {"step": int(meta["step"]), "run": json.loads(meta["run"]), "param_groups": json.loads(meta["param_groups"])}


def load_checkpoint(path: str | Path, *, model: torch.nn.Module, ema: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, generators: dict[str, torch.Generator]) -> int:
    """Restore the state saved by ``save_checkpoint``; returns the step to continue from."""
    header = read_run(path)
    tensors = load_file(str(path))

    def part(prefix):
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    model.load_state_dict(part("model."))
    ema.load_state_dict(part("ema."))
    state: dict[int, dict] = {}
    for key, value in part("opt.").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    for name, generator in generators.items():
        generator.set_state(tensors[f"rng.gen.{name}"].to(generator.get_state().device))
    return header["step"]
