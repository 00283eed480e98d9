"""The degradation sensor: a light classifier that tells which of the five degradations an
input shows. Its softmax (logits scaled by a calibrated sharpness) is the task weight vector of ``task="auto"``.

It looks at native-resolution crops (noise, rain and blur vanish when an image is downscaled)
and averages the logits of up to ``max_crops`` crops spread over the image, so a 128 px training
crop and a 4K photo are seen the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks import TASKS

CROP = 128


def noise_level(crops: torch.Tensor, block: int = 8, quantile: float = 0.05) -> torch.Tensor:
    """A texture-robust measure of each crop's noise: about 0.84 times the sigma of the noise on
    its gray (channel mean) image, in [0, 1] units. Gray crops (one channel) may be passed.

    A fine-scale difference (each gray pixel minus the mean of its four neighbours) keeps noise
    and edges; its energy is averaged over 8 x 8 blocks and the 5 % quietest block is taken,
    where image content contributes least (which is also why white noise reads about 16 % low).
    For white noise the difference has variance 1.25 sigma^2. On 128 px validation crops it
    separates sigma 15 from clean, rainy and hazy crops far better than the median of the same
    difference, which texture inflates.
    """
    if min(crops.shape[-2:]) < 3:  # too small to tell
        return crops.new_zeros(crops.shape[0])
    gray = crops.mean(1, keepdim=True)
    block = min(block, crops.shape[-2] - 2, crops.shape[-1] - 2)
    centre = gray[..., 1:-1, 1:-1]
    neighbours = gray[..., :-2, 1:-1] + gray[..., 2:, 1:-1] + gray[..., 1:-1, :-2] + gray[..., 1:-1, 2:]
    energy = F.avg_pool2d((centre - 0.25 * neighbours).square(), block).flatten(1)
    return (energy.quantile(quantile, dim=1) / 1.25).sqrt()


def grid_crops(x: torch.Tensor, size: int = CROP, per_side: int = 3) -> torch.Tensor:
    """Up to per_side**2 crops of ``size`` px spread evenly over ``x``: (B*n) x C x size x size."""
    b, c, h, w = x.shape
    if h <= size and w <= size:
        return x
    size_h, size_w = min(size, h), min(size, w)
    tops = torch.linspace(0, h - size_h, per_side if h > size else 1).round().long().tolist()
    lefts = torch.linspace(0, w - size_w, per_side if w > size else 1).round().long().tolist()
    crops = [x[:, :, t:t + size_h, l:l + size_w] for t in tops for l in lefts]
    return torch.stack(crops, 1).flatten(0, 1)


class DegradationSensor(nn.Module):
    def __init__(self, width: int = 32, num_tasks: int = len(TASKS)):
        super().__init__()
        layers, channels = [], 3
        for out in (width, width, 2 * width, 2 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GELU()]
            channels = out
        self.features = nn.Sequential(*layers)
        # Mean and standard deviation of the features: the spread is what tells noise apart.
        self.head = nn.Linear(2 * channels + 6, num_tasks)
        # How colourful a crop is for its brightness, on a log scale: exactly gray inputs (microscopy)
        # sit far below any photo, which is what tells dark fluorescence from a dark photo.
        self.colour = nn.Linear(1, num_tasks, bias=False)
        # The log of a texture-robust noise estimate: light noise (sigma 15) on a textured photo
        # is what the learned features alone confused with rain (measured on validation crops).
        self.noise = nn.Linear(1, num_tasks, bias=False)
        nn.init.zeros_(self.colour.weight)
        nn.init.zeros_(self.noise.weight)
        # Logit scale for task="auto". The network is trained on one-hot prompts only, so a soft
        # mixture the classifier hedges with (0.8 denoise, 0.2 derain) is a prompt it never saw;
        # pip-finetune-sensor picks this scale by restoring held-out crops (1 = plain softmax).
        self.register_buffer("sharpness", torch.ones(1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Weights saved before a hand-made term existed load as if its weight were zero: same output.
        for term in ("colour", "noise"):
            key = f"{prefix}{term}.weight"
            if key not in state_dict and prefix + "head.weight" in state_dict:
                state_dict[key] = torch.zeros_like(getattr(self, term).weight)
        # ... and weights saved before the calibrated sharpness read as the plain softmax.
        if prefix + "sharpness" not in state_dict and prefix + "head.weight" in state_dict:
            state_dict[prefix + "sharpness"] = torch.ones(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B x 5) for a batch of images in [0, 1]."""
        b = x.shape[0]
        crops = grid_crops(x)
        f = self.features(crops * 2 - 1).float()  # statistics in float32, whatever the precision
        crops = crops.float()
        channel_means = crops.mean((2, 3))
        # A tiny image leaves one feature pixel, whose spread is undefined (NaN): call it zero.
        pooled = torch.cat([
            f.mean((2, 3)), f.std((2, 3)).nan_to_num(0.0),
            channel_means, crops.std((2, 3)).nan_to_num(0.0),  # brightness and contrast: low light and haze
        ], 1)
        brightness = channel_means.mean(1)
        gray = crops.mean(1, keepdim=True)
        spread = (crops - gray).abs().mean((1, 2, 3))
        colour = torch.log(spread / (brightness + 0.02) + 1e-3).unsqueeze(1)
        noise = torch.log(noise_level(gray) + 1e-3).unsqueeze(1)
        logits = (self.head(pooled.to(self.head.weight.dtype)).float()
                  + self.colour(colour.to(self.colour.weight.dtype)).float()
                  + self.noise(noise.to(self.noise.weight.dtype)).float())
        return logits.reshape(b, -1, logits.shape[-1]).mean(1)

    def task_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The weights task="auto" uses: the calibrated softmax of the logits (B x 5, rows sum to 1)."""
        return (self(x).float() * self.sharpness.float()).softmax(-1)
