"""pip-export: write a model as ONNX, for ONNX Runtime, VapourSynth (vs-mlrt) and other runtimes.

    pip-export --onnx model.onnx [--model NAME | --weights FILE] [--task derain] [--opset 18]

The graph takes ``image`` (N x 3 x H x W float32 RGB in [0, 1]; H and W must divide by the
model's multiple, recorded in the file's metadata: pad before, crop after) and ``task_weights``
(N x 5, in the order denoise, derain, dehaze, deblur, lowlight, summing to 1: the degradation
prompt), and gives ``restored`` (N x 3 x H x W). With ``--task`` the weights are baked in and
``image`` is the only input, which is what vs-mlrt expects.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from .registry import DEFAULT_MODEL, list_models
from .tasks import TASKS, task_weights

DEFAULT_OPSET = 18


class _WithTaskInput(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, task_weights: torch.Tensor) -> torch.Tensor:
        return self.model(image, task_weights)


class _WithBakedTask(nn.Module):
    def __init__(self, model: nn.Module, weights: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("weights", weights.view(1, -1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, self.weights.expand(image.shape[0], -1))


def export_onnx(restorer, path: str | Path, task=None, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``restorer``'s network to ``path`` as ONNX (float32, any batch and image size).

    task: None gives a ``task_weights`` input; a task spec ("derain", a mixture) bakes it in.
    """
    path = Path(path)
    # A float32 CPU copy: the restorer keeps its own precision and device.
    model = copy.deepcopy(restorer.model).float().to(device="cpu", memory_format=torch.contiguous_format).eval()
    multiple = model.multiple
    # Example sizes above 1 and not equal, so the exporter keeps batch, height and width dynamic.
    image = torch.rand(2, 3, 2 * multiple, 3 * multiple)
    batch = torch.export.Dim("batch", min=1, max=1024)
    height, width = torch.export.Dim("h", min=1, max=4096), torch.export.Dim("w", min=1, max=4096)
    image_dims = {0: batch, 2: multiple * height, 3: multiple * width}
    if task is None:
        wrapper, args = _WithTaskInput(model), (image, torch.full((2, len(TASKS)), 1.0 / len(TASKS)))
        names, dynamic = ["image", "task_weights"], {"image": image_dims, "task_weights": {0: batch}}
    else:
        weights = task_weights(task)
        if weights is None:
            raise ValueError("an ONNX model cannot run the sensor: give a task, or none to make task_weights an input")
        wrapper, args = _WithBakedTask(model, weights), (image,)
        names, dynamic = ["image"], {"image": image_dims}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's business
        program = torch.onnx.export(wrapper, args, dynamic_shapes=dynamic, input_names=names,
                                    output_names=["restored"], opset_version=opset, dynamo=True, verbose=False)
    metadata = {"pip_filters.model": restorer.name, "pip_filters.multiple": str(multiple),
                "pip_filters.tasks": ",".join(TASKS),
                "pip_filters.task_weights": "input" if task is None else json.dumps(weights.tolist()),
                "pip_filters.value_range": "RGB float32 in [0, 1]"}
    program.model.metadata_props.update(metadata)
    tmp = path.with_name(path.name + ".partial")
    program.save(tmp)
    tmp.replace(path)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pip-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", type=Path, required=True, help="the .onnx file to write")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, help=f"one of {', '.join(list_models())} (default {DEFAULT_MODEL})")
    source.add_argument("--weights", type=Path, default=None, help="a weights file (.safetensors) instead of --model")
    parser.add_argument("--task", default=None, help="bake this task in (the image is then the only input)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)

    from . import load
    from .weights_io import WeightsError

    if args.onnx.exists() and not args.overwrite:
        print(f"pip-export: {args.onnx} exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    try:
        restorer = load(args.model, device="cpu", precision="fp32", weights=args.weights)
        export_onnx(restorer, args.onnx, task=args.task, opset=args.opset)
    except (ValueError, FileNotFoundError, WeightsError) as error:
        print(f"pip-export: {error}", file=sys.stderr)
        return 1
    inputs = "image" if args.task else "image, task_weights"
    print(f"wrote {args.onnx} ({restorer.name}, opset {args.opset}, inputs: {inputs}; "
          f"sides must divide by {restorer.model.multiple})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
