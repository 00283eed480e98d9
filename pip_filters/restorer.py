"""The restorer: what users call. ``load()`` gives a ``Restorer``; ``Restorer.restore`` takes an
image as the user has it and gives it back restored, in the same type, shape and dtype."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import arrays
from .ensemble import group_size, self_ensemble
from .models import PIPNet, build_model
from .registry import get_spec
from .tasks import task_weights, weights_to_dict
from .tiling import pad_to_multiple, run_padded, run_tiled
from .weights_io import WeightsError, load_weights

# Larger images are tiled unless the caller says otherwise.
AUTO_TILE_PIXELS = 2048 * 2048
AUTO_TILE = 1024
MIN_TILE = 128
# Prompts are computed from a view of the whole image no larger than this (then shared by tiles).
PROMPT_VIEW_SIDE = 1024
# An untiled batch up to this many values is converted on the accelerator (video batches are);
# larger ones stay on the host and cross in chunks of batch_size images.
DEVICE_SIDE_VALUES = 64 * 2**20


class UntrainedModelError(WeightsError):
    """The model has no trained weights yet."""


@dataclass
class Prompt:
    """A reusable prompt: the five task weights and, when made from an image, the universal
    restoration prompts of each level (small S x S tensors), ready to reuse on similar images."""

    weights: torch.Tensor  # (5,)
    levels: list[torch.Tensor] | None = None
    _copies: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def as_dict(self) -> dict[str, float]:
        return weights_to_dict(self.weights)

    def weights_on(self, device: torch.device) -> torch.Tensor:
        """The weights on ``device``, copied once: a copy per batch would make the host wait
        for the GPU's queue to empty."""
        key = str(device)
        if key not in self._copies:
            self._copies[key] = self.weights.to(device)
        return self._copies[key]


class Pending:
    """A restore whose result may still be on its way back from the GPU: ``result()`` waits."""

    def __init__(self, finish: Callable[[], object]):
        self._finish, self._result = finish, None

    def result(self):
        if self._finish is not None:
            self._result, self._finish = self._finish(), None
        return self._result


def pick_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_precision(device: torch.device, precision: str = "auto") -> torch.dtype:
    names = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16,
             "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if precision != "auto":
        if precision not in names:
            raise ValueError(f"unknown precision {precision!r}: use auto, fp32, fp16 or bf16")
        return names[precision]
    if device.type == "cuda":
        # float16, not bfloat16: on an H100, fp16 kept pip-nafnet-s's PSNR equal to float32 on three
        # test sets (to 0.01 dB) while bf16 lost up to 0.05 dB (tools/gpu_bench.sh, 2026-11-26).
        return torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def load(name: str | None = None, device: str = "auto", precision: str = "auto", *,
         weights: str | Path | None = None, allow_untrained: bool = False, compile: bool | str = False) -> "Restorer":
    """Load a model by registry name (None: the shipped default) or from a weights file.

    compile: run the network through ``torch.compile`` (faster for long jobs such as videos; the
    first call of each new image size compiles, which takes tens of seconds on a CPU). A string
    names torch.compile's mode: "reduce-overhead" also replays the network as a CUDA graph,
    which suits the fixed shapes of video batches on a GPU.

    A model without trained weights raises ``UntrainedModelError`` unless ``allow_untrained``
    is set, in which case it runs with random weights and warns (for tests and development).
    """
    if weights is not None:
        state, header = load_weights(weights)
        config, info, name = header["config"], header["metadata"], name or header["metadata"].get("name", Path(weights).stem)
    else:
        spec = get_spec(name)
        name = spec.name
        path = spec.weights_path
        if not path.exists():
            if not allow_untrained:
                raise UntrainedModelError(
                    f"model {name!r} has no trained weights yet; pass allow_untrained=True to run it "
                    "with random weights (its output is meaningless)")
            warnings.warn(f"model {name!r} runs with random, untrained weights", stacklevel=2)
            state, config, info = None, spec.config, {"trained": False}
        else:
            if spec.sha256 is None:
                raise WeightsError(f"{path} is not listed in {path.parent / 'SHA256SUMS'}; refusing unverified weights")
            state, header = load_weights(path, expected_sha256=spec.sha256)
            config, info = header["config"], header["metadata"]
    model = build_model(config)
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise WeightsError(f"weights do not fit model {name!r}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    device = pick_device(device)
    return Restorer(model, name, device, pick_precision(device, precision), info, compile=compile)


# Inductor options for compiled networks on a GPU, beside those of the torch.compile mode.
# conv_1x1_as_mm: cuDNN ran the models' 1x1 convolutions of 24-48 channels far below memory speed
# on an H100 (tools/gpu_blocks.py); as matrix products over the channels_last pixels the compiled
# default took 52.4 instead of 58.3 ms per 1080p batch of 4. The NAFNet and PIP 1x1 convolutions
# are now PointwiseConv (matrix products on a GPU in eager mode too); this covers any other.
CUDA_COMPILE_OPTIONS = {"conv_1x1_as_mm": True}


def compile_network(model: torch.nn.Module, mode: str | None, device: torch.device):
    """torch.compile with the given mode ("reduce-overhead": CUDA graphs too), plus the GPU options."""
    if device.type != "cuda":
        return torch.compile(model, mode=mode)
    from torch._inductor import list_mode_options

    # torch.compile takes a mode or options, not both: the mode's options plus ours.
    return torch.compile(model, options={**list_mode_options(mode or "default"), **CUDA_COMPILE_OPTIONS})


class Restorer:
    def __init__(self, model: PIPNet, name: str, device: torch.device, precision: torch.dtype,
                 info: dict | None = None, compile: bool | str = False):
        if compile and device.type == "cpu" and precision != torch.float32:
            # Measured with torch 2.13: inductor's CPU code for the bf16 network gives NaN.
            raise ValueError("compile on a CPU needs precision fp32 (compiled bf16 gives wrong output there)")
        # The whole network runs in `precision` (no per-op autocast casts) and channels_last,
        # the layout oneDNN and cuDNN convolutions are fastest in.
        self.model = model.eval().to(device=device, dtype=precision, memory_format=torch.channels_last)
        self.name, self.device, self.precision = name, device, precision
        self.info = info or {}
        # The eager model stays the reference; the compiled one must give the same output (tested).
        if compile:
            self.network = compile_network(self.model, compile if isinstance(compile, str) else None, device)
        else:
            self.network = self.model
        self._compiled_batches: dict[tuple, int] = {}  # image shape -> largest batch compiled for it
        for p in self.model.parameters():
            p.requires_grad_(False)

    def __repr__(self) -> str:
        return f"Restorer({self.name!r}, device={self.device}, precision={self.precision})"

    @property
    def trained(self) -> bool:
        return self.info.get("trained", True)

    # -- what users call ---------------------------------------------------------------------

    def restore(self, image, task="auto", strength: float = 1.0, tile: int | None = None, overlap: int = 32,
                channel_axis=arrays.AUTO, prompt: Prompt | None = None, value_range=None,
                batch_size: int = 4, on_progress: Callable[[int, int], None] | None = None,
                ensemble: bool = False):
        """Restore ``image`` and return it in the same type, shape and dtype.

        task: "auto" (the sensor decides), a task name, a mixture {"derain": .6, "dehaze": .4}
        or five weights. strength: 1 = fully restored, 0 = the input. tile: tile size in pixels
        (None: whole image when it fits, tiles of 1024 otherwise). prompt: a ``Prompt`` from
        ``self.prompt(...)`` to reuse (then ``task`` is ignored). value_range: (low, high) of the
        input values that map to [0, 1] (default: 8-bit 0-255, float in [0, 1] as is, otherwise
        robust percentiles per image). on_progress(done, total) is called per tile or image and
        may raise to cancel. ensemble: also restore flipped (and, where the task allows, transposed)
        copies and average them: better, 2 to 8 times slower (see ``pip_filters.ensemble``).
        """
        return self.submit(image, task, strength, tile, overlap, channel_axis, prompt, value_range,
                           batch_size, on_progress, ensemble).result()

    def submit(self, image, task="auto", strength: float = 1.0, tile: int | None = None, overlap: int = 32,
               channel_axis=arrays.AUTO, prompt: Prompt | None = None, value_range=None,
               batch_size: int = 4, on_progress: Callable[[int, int], None] | None = None,
               ensemble: bool = False) -> Pending:
        """``restore`` without waiting for the GPU: the work is queued and ``result()`` of the
        returned ``Pending`` gives the image. Submit the next batch before taking the result of
        this one and the GPU computes while the host prepares and consumes batches (the video
        filter does). On a CPU the work is done before this returns."""
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {strength}")
        raw, layout = arrays.to_batch(image, channel_axis, dtype=None)
        # The input crosses to the accelerator in its own dtype (8-bit: a quarter of float32's
        # bytes) and is converted there, when the whole batch fits; otherwise on the host.
        batch = arrays.to_device(raw, self._work_device(raw.shape, tile)).to(torch.float32)
        values = arrays.value_map(batch, layout.dtype, value_range)
        finite = None if values.integer else torch.isfinite(batch)  # integers are all finite
        unit = values.forward(batch if finite is None else torch.where(finite, batch, values.low.view(-1, 1, 1, 1)))
        rgb, rebuild = _split_channels(unit)
        restored = self._restore_rgb(rgb, task, prompt, tile, overlap, batch_size, on_progress, ensemble)
        out = rebuild(restored)
        out = unit + float(strength) * (out - unit)
        out = values.inverse(out)
        if finite is not None:
            out = torch.where(finite, out, batch)  # NaN and inf stay where they were
        return Pending(arrays.start_from_batch(out, layout))

    def detect(self, image, channel_axis=arrays.AUTO):
        """The sensor's reading of what is wrong: {task: weight} summing to 1 (a list for a batch)."""
        rgb, layout = _unit_rgb(image, channel_axis)
        results = [weights_to_dict(w) for w in self._detect_rgb(rgb)]
        return results if layout.batched else results[0]

    def prompt(self, image_or_task="auto", task="auto", channel_axis=arrays.AUTO) -> Prompt:
        """A reusable prompt, from a task spec ("derain", a mixture) or from an image.

        From an image, the task weights (the sensor's, unless ``task`` is given) and the universal
        prompts are computed once; ``restore(frame, prompt=p)`` then reuses both.
        """
        is_image = isinstance(image_or_task, torch.Tensor) or hasattr(image_or_task, "__array__")
        if not is_image or getattr(image_or_task, "ndim", 2) < 2:
            weights = task_weights(image_or_task)
            if weights is None:
                raise ValueError("task='auto' needs an image to detect the degradation from")
            return Prompt(weights)
        rgb = _unit_rgb(image_or_task, channel_axis)[0][:1]
        weights = self._weights_for(rgb, task)
        levels = self._universal_prompts(rgb, weights)
        return Prompt(weights[0].cpu(), levels)

    # -- internals ------------------------------------------------------------------------------

    def _work_device(self, shape, tile) -> torch.device:
        """Where restore() converts values and blends: the accelerator for an untiled batch of
        moderate size, the host otherwise (huge images and stacks stay in host memory)."""
        n, c, h, w = shape
        untiled = tile is None and h * w <= AUTO_TILE_PIXELS or tile is not None and tile >= max(h, w)
        if self.device.type == "cpu" or not untiled or n * max(c, 3) * h * w > DEVICE_SIDE_VALUES:
            return torch.device("cpu")
        return self.device

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """A float32 NCHW batch as the network takes it: on its device, in its precision and layout."""
        return x.to(self.device, self.precision).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def _detect_rgb(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.model.detect(self._input(rgb)).float().cpu()

    def _weights_for(self, rgb: torch.Tensor, task) -> torch.Tensor:
        weights = task_weights(task)
        if weights is None:
            return self._detect_rgb(rgb)
        return weights.expand(rgb.shape[0], -1).clone()

    @torch.inference_mode()
    def _universal_prompts(self, rgb: torch.Tensor, weights: torch.Tensor) -> list[torch.Tensor]:
        view = rgb
        if max(view.shape[-2:]) > PROMPT_VIEW_SIDE:
            scale = PROMPT_VIEW_SIDE / max(view.shape[-2:])
            view = F.interpolate(view, scale_factor=scale, mode="area")
        view, _ = pad_to_multiple(self._input(view), self.model.multiple)
        return self.model.universal_prompts(view, weights.to(self.device))

    @torch.inference_mode()
    def _restore_rgb(self, rgb, task, prompt, tile, overlap, batch_size, on_progress, ensemble=False) -> torch.Tensor:
        if not self.trained:
            warnings.warn(f"{self.name} has untrained weights: this output is meaningless", stacklevel=3)
        n, _, h, w = rgb.shape
        if tile is None and h * w > AUTO_TILE_PIXELS:
            tile = AUTO_TILE
        batch_size = max(1, int(batch_size))
        outputs, chunks = [], range(0, n, batch_size)
        for index, start in enumerate(chunks):
            images = rgb[start:start + batch_size]
            if prompt is not None:
                weights, levels = prompt.weights_on(self.device).expand(len(images), -1), prompt.levels
            else:
                # Untiled, the network computes the prompts in the same encoder pass it restores
                # with; tiles get them from the whole image first (in _run_chunk).
                weights, levels = self._weights_for(images, task), None
            outputs.append(self._run_chunk(images, weights, levels, tile, overlap, on_progress, index, len(chunks),
                                           group_size(weights) if ensemble else 1))
        return torch.cat(outputs)

    def _run_network(self, x: torch.Tensor, weights: torch.Tensor, levels) -> torch.Tensor:
        """The network on a prepared batch. A compiled network gets a short batch padded (with
        its last image) to the largest batch it already ran at this image size: a video's last
        batch, or one cut short at a scene change, would otherwise compile the network again
        (tens of seconds; and with CUDA graphs, one more graph per batch size)."""
        if self.network is self.model:
            return self.network(x, weights, levels)
        n, shape = x.shape[0], tuple(x.shape[1:])
        full = self._compiled_batches.get(shape, 0)
        if n >= full:
            self._compiled_batches[shape] = n
            return self.network(x, weights, levels)

        def padded(t: torch.Tensor) -> torch.Tensor:  # batched tensors only: a shared prompt stays
            return torch.cat([t, t[-1:].expand(full - n, *t.shape[1:])]) if t.shape[0] == n else t

        levels = None if levels is None else [padded(level) for level in levels]
        return self.network(padded(x), padded(weights), levels)[:n]

    def _run_chunk(self, image, weights, levels, tile, overlap, on_progress, index, count, ensemble_size=1):
        weights = weights.to(self.device)

        def one_pass(x: torch.Tensor) -> torch.Tensor:
            return self._run_network(self._input(x), weights, levels).float().clamp_(0, 1)

        def network(x: torch.Tensor) -> torch.Tensor:
            return self_ensemble(one_pass, x, ensemble_size)

        while True:
            try:
                if tile is None or (tile >= image.shape[-1] and tile >= image.shape[-2]):
                    out = run_padded(network, image, self.model.multiple).to(image.device)
                    if on_progress:
                        on_progress(index + 1, count)
                    return out
                if levels is None and len(self.model.pip):
                    levels = self._universal_prompts(image, weights)  # one prompt shared by all tiles
                report = None
                if on_progress:
                    report = lambda done, total: on_progress(index * total + done, count * total)  # noqa: E731
                return run_tiled(network, image, tile, overlap, self.model.multiple, report, image.device)
            except torch.cuda.OutOfMemoryError:
                # Out of accelerator memory: retry with smaller tiles rather than fail.
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                tile = min(tile or max(image.shape[-2:]), max(image.shape[-2:])) // 2
                if tile < MIN_TILE:
                    raise
                tile = max(tile - tile % self.model.multiple, MIN_TILE)
                overlap = min(overlap, tile // 4)


def _unit_rgb(image, channel_axis) -> tuple[torch.Tensor, arrays.Layout]:
    """The image as the network sees it (N x 3 x H x W in [0, 1]), for reading, not restoring."""
    batch, layout = arrays.to_batch(image, channel_axis)
    values = arrays.value_map(batch, layout.dtype)
    return _split_channels(values.forward(torch.nan_to_num(batch.cpu())))[0], layout


def _split_channels(unit: torch.Tensor):
    """(N, C, H, W) in [0, 1] -> (M, 3, H, W) for the network, and the function that puts the
    network's output back into C channels: gray is replicated and averaged back, alpha passes
    through, and any other channel count is restored channel by channel as gray."""
    n, c, h, w = unit.shape
    if c == 3:
        return unit, lambda out: out
    if c == 4:
        alpha = unit[:, 3:]
        return unit[:, :3], lambda out: torch.cat([out, alpha], 1)
    gray = unit.reshape(n * c, 1, h, w)
    return gray.expand(-1, 3, -1, -1), lambda out: out.mean(1).reshape(n, c, h, w)
