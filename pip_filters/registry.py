"""Every model pip-filters knows, in one place: its architecture config and its shipped weights.

Like timm's pretrained configs: ``MODELS[name]`` says how to build the network; its trained
weights, when there are any, are ``pip_filters/weights/NAME.safetensors``, pinned by the sha256
recorded in ``pip_filters/weights/SHA256SUMS`` (written by ``pip-export-weights``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config: dict
    description: str
    tags: tuple[str, ...] = field(default=())

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"

    @property
    def sha256(self) -> str | None:
        """The pinned sha256 of the weights file (None when no weights were exported)."""
        sums = WEIGHTS_DIR / "SHA256SUMS"
        if sums.exists():
            for line in sums.read_text().splitlines():
                digest, _, name = line.partition("  ")
                if name.strip() == self.weights_path.name:
                    return digest.strip()
        return None


def _nafnet(width, encoder_blocks, middle_blocks, decoder_blocks, prompt_dims, prompt_sizes, stem=1) -> dict:
    args = {"width": width, "encoder_blocks": encoder_blocks, "middle_blocks": middle_blocks,
            "decoder_blocks": decoder_blocks}
    return {
        "backbone": "nafnet",
        "backbone_args": {**args, "stem": stem} if stem > 1 else args,  # configs of stem-1 models unchanged
        "prompt_dims": prompt_dims, "prompt_sizes": prompt_sizes, "heads": [1, 1, 1], "expansion": 1.0,
    }


_SMALL = dict(width=24, encoder_blocks=[1, 2, 2], middle_blocks=6, decoder_blocks=[1, 1, 1])
_TINY = dict(width=16, encoder_blocks=[1, 1, 1], middle_blocks=2, decoder_blocks=[1, 1, 1])
# Half-resolution inside (2x2 pixel unshuffle first, as FFDNet does): a quarter of the tiny
# model's work per image, which is what makes a CPU interactive.
_TINY_FAST = dict(width=16, encoder_blocks=[1, 1, 2], middle_blocks=4, decoder_blocks=[1, 1, 1], stem=2)
# The same idea at the default's size: on an H100 pip-nafnet-s spends its time moving full-resolution
# 24-channel tensors (issue 6); half resolution inside moves a quarter of the pixels at every level.
_SMALL_FAST = dict(width=32, encoder_blocks=[1, 2, 4], middle_blocks=8, decoder_blocks=[1, 1, 1], stem=2)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in [
    ModelSpec(
        "pip-nafnet-s",
        _nafnet(**_SMALL, prompt_dims=[32, 64, 128], prompt_sizes=[32, 16, 8]),
        "The default until 2026-12-05: conv-only NAFNet-style backbone with the PIP plug-in, 2.4M parameters.",
    ),
    ModelSpec(
        "pip-nafnet-t",
        _nafnet(**_TINY, prompt_dims=[16, 32, 64], prompt_sizes=[16, 8, 4]),
        "Tiny: for interactive use on a CPU, 0.6M parameters.",
    ),
    ModelSpec(
        "pip-nafnet-t2",
        _nafnet(**_TINY_FAST, prompt_dims=[16, 32, 64], prompt_sizes=[16, 8, 4]),
        "Tiny, half resolution inside: a quarter of pip-nafnet-t's work, for interactive CPU use.",
    ),
    ModelSpec(
        "pip-nafnet-s2",
        _nafnet(**_SMALL_FAST, prompt_dims=[32, 64, 128], prompt_sizes=[32, 16, 8]),
        "Default: NAFNet-style backbone at half resolution inside with the PIP plug-in, 5.3M parameters.",
        tags=("default",),
    ),
    ModelSpec(
        "nafnet-s",
        _nafnet(**_SMALL, prompt_dims=[], prompt_sizes=[]),
        "The default's backbone without PIP (for measuring what PIP adds).",
    ),
    ModelSpec(
        "nafnet-t2",
        _nafnet(**_TINY_FAST, prompt_dims=[], prompt_sizes=[]),
        "pip-nafnet-t2's backbone without PIP (the equal-steps ablation on the CPU).",
    ),
    ModelSpec(
        "pip-restormer",
        {"backbone": "restormer",
         "backbone_args": {"dim": 48, "blocks": [4, 6, 6, 8], "refinement_blocks": 4,
                           "heads": [1, 2, 4, 8], "expansion": 2.66},
         "prompt_dims": [64, 128, 256], "prompt_sizes": [64, 32, 16], "heads": [1, 2, 4], "expansion": 1.0},
        "The paper's configuration: Restormer backbone with PIP, 27.7M parameters.",
    ),
]}

# The default since 2026-12-05 (pip-nafnet-s before): chosen on whole held-out images of train/
# (tools/whole_frame_val.py: ahead on four tasks, level on rain), at 2.8x pip-nafnet-s's frame rate on an H100.
DEFAULT_MODEL = "pip-nafnet-s2"


def get_spec(name: str | None) -> ModelSpec:
    name = name or DEFAULT_MODEL
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def list_models() -> list[str]:
    return list(MODELS)
