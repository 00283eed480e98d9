"""On-device image banks and the training batcher.

Images are decoded once with Pillow and kept as uint8 on the training device; every
crop, flip and rotation then happens there with index arithmetic, so a training step never
waits for the CPU (which, on the training machines, has far fewer cores than the GPU needs).

Storage: each bank is one zero-padded uint8 tensor ``[N, 3, H_max, W_max]`` plus the true
sizes. Portrait images are stored transposed (rot90 augmentation makes that free), so a
set of same-size photos wastes no memory; very mixed sizes do (use ``max_side``).
Crops that reach past an image's border (images smaller than the crop) are filled by
mirror reflection, so small images are never skipped.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pip_filters.tasks import TASKS
from .degrade import _coin, _gray, _log_uniform, _uniform, degrade, microscope_noise

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


# ----------------------------------------------------------------------------- files

def list_images(paths_or_folder) -> list[Path]:
    """Image files from a folder, a file, or an iterable of those, sorted by path."""
    items = [paths_or_folder] if isinstance(paths_or_folder, (str, Path)) else list(paths_or_folder)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files.extend(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(p)
    return sorted(files)


def split_files(files: Sequence, val_fraction: float, seed: int = 0) -> tuple[list, list]:
    """Deterministic ``(train, val)`` split: sort by file name, shuffle with ``seed``, and take
    ``round(len * val_fraction)`` files for validation. Validation is carved out of
    ``train/`` because ``test/`` may not be used for selection."""
    ordered = sorted(files, key=lambda f: (Path(f).name, str(f)))
    random.Random(seed).shuffle(ordered)
    n_val = int(round(len(ordered) * val_fraction))
    val = sorted(ordered[:n_val], key=lambda f: Path(f).name)
    train = sorted(ordered[n_val:], key=lambda f: Path(f).name)
    return train, val


def decode_rgb(path, max_side: int | None = None) -> np.ndarray:
    """Decode to uint8 RGB ``[H, W, 3]``; gray is replicated, 16-bit images are rescaled."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            a = np.asarray(im, dtype=np.float32)
            a = a / (65535.0 if a.max() > 255 else 255.0)
            im = Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8), mode="L")
        im = im.convert("RGB")
        if max_side is not None and max(im.size) > max_side:
            s = max_side / max(im.size)
            im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BICUBIC)
        return np.array(im, dtype=np.uint8)  # a writable copy, torch warns on read-only arrays


def _pack(arrays: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``[H, W, 3]`` arrays (portrait ones transposed) into a zero-padded uint8
    ``[N, 3, H_max, W_max]`` on ``device`` and return it with the sizes ``[N, 2]``."""
    arrays = [a.transpose(1, 0, 2) if a.shape[0] > a.shape[1] else a for a in arrays]
    h = max(a.shape[0] for a in arrays)
    w = max(a.shape[1] for a in arrays)
    canvas = torch.zeros(len(arrays), 3, h, w, dtype=torch.uint8)
    for i, a in enumerate(arrays):
        canvas[i, :, : a.shape[0], : a.shape[1]] = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
    sizes = torch.tensor([a.shape[:2] for a in arrays], dtype=torch.long)
    return canvas.to(device), sizes.to(device)


# ----------------------------------------------------------------------------- cropping

def _reflect(i: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Mirror index ``i >= 0`` into ``[0, n)`` (half-sample symmetric without edge repeat)."""
    period = (2 * (n - 1)).clamp_min(1)
    r = i % period
    return torch.where(r >= n, period - r, r)


def _crop_indices(n: int, size: int, sizes: torch.Tensor, generator) -> tuple[torch.Tensor, ...]:
    """Random image, crop position and one of the 8 flips/rotations for ``n`` crops, all as
    index tensors: ``(image [n], rows [n, size, size], cols [n, size, size])``."""
    dev = sizes.device
    img = torch.randint(0, sizes.shape[0], (n,), generator=generator, device=dev)
    h, w = sizes[img, 0], sizes[img, 1]
    u = torch.rand(n, 2, generator=generator, device=dev)
    top = (u[:, 0] * ((h - size).clamp_min(0) + 1)).long().clamp_max((h - size).clamp_min(0))
    left = (u[:, 1] * ((w - size).clamp_min(0) + 1)).long().clamp_max((w - size).clamp_min(0))
    flips = torch.rand(n, 3, generator=generator, device=dev) < 0.5   # flip rows, flip cols, transpose
    r = torch.arange(size, device=dev)
    i, j = r.view(1, size, 1), r.view(1, 1, size)
    fi = torch.where(flips[:, 0].view(n, 1, 1), size - 1 - i, i)
    fj = torch.where(flips[:, 1].view(n, 1, 1), size - 1 - j, j)
    t = flips[:, 2].view(n, 1, 1)
    a, b = torch.where(t, fj, fi), torch.where(t, fi, fj)            # transpose + flip = rot90
    rows = _reflect(top.view(n, 1, 1) + a, h.view(n, 1, 1))
    cols = _reflect(left.view(n, 1, 1) + b, w.view(n, 1, 1))
    return img, rows, cols


def _gather(canvas: torch.Tensor, img: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    # Advanced indexing around a slice puts the indexed dims first: [n, size, size, 3].
    crops = canvas[img.view(-1, 1, 1), :, rows, cols]
    return crops.permute(0, 3, 1, 2).float().div_(255)


# ----------------------------------------------------------------------------- banks

class ImageBank:
    """Every image of a set decoded once and held on ``device`` as uint8.

    ``paths_or_folder``: a folder, an image file, or an iterable of those.
    ``max_side``: downscale larger images (bicubic) so their longer side fits.
    """

    def __init__(self, paths_or_folder, device=None, max_side: int | None = None):
        self.files = list_images(paths_or_folder)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {paths_or_folder!r}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.canvas, self.sizes = _pack([decode_rgb(f, max_side) for f in self.files], self.device)

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, n: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` random crops ``[n, 3, size, size]`` float in ``[0, 1]``, randomly flipped and
        rotated by multiples of 90 degrees."""
        return _gather(self.canvas, *_crop_indices(n, size, self.sizes, generator))


class PairedBank:
    """Degraded/clean pairs matched by file stem (extensions may differ), cropped and
    augmented identically."""

    def __init__(self, input_folder, target_folder, device=None, max_side: int | None = None, stems=None):
        inputs = {f.stem: f for f in list_images(input_folder)}
        targets = {f.stem: f for f in list_images(target_folder)}
        stems = sorted((inputs.keys() & targets.keys()) & set(stems if stems is not None else inputs))
        if not stems:
            raise ValueError(f"no file stems shared by {input_folder} and {target_folder}")
        self.stems = stems
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        a = [decode_rgb(inputs[s], max_side) for s in stems]
        b = [decode_rgb(targets[s], max_side) for s in stems]
        for s, x, y in zip(stems, a, b):
            if x.shape != y.shape:
                raise ValueError(f"pair {s!r}: input {x.shape[:2]} and target {y.shape[:2]} differ in size")
        self.inputs, self.sizes = _pack(a, self.device)
        self.targets, _ = _pack(b, self.device)

    def __len__(self) -> int:
        return len(self.stems)

    def sample(self, n: int, size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        idx = _crop_indices(n, size, self.sizes, generator)
        return _gather(self.inputs, *idx), _gather(self.targets, *idx)


# ----------------------------------------------------------------------------- batcher

class TrainingBatcher:
    """Mixed-task training batches, made entirely on the device.

    ``next(batch_size)`` returns ``(degraded, clean, task_ids)``. The task counts are
    balanced per batch (``floor(p * n)`` each, the remainder drawn by ``task_probs``), and
    decided on the host with a seeded CPU generator so the device never has to report back.
    Low-light samples come from the real pairs with probability ``real_lowlight_fraction``
    (when given) and from :func:`underexpose` of clean crops otherwise. Rows are grouped by
    task (order inside a batch does not matter for training). ``heavy_rain_share`` is passed to
    :func:`degrade`; ``clean_share`` of the synthetic crops are left undegraded, under their task's
    label (the training batcher only; validation keeps every crop degraded). ``gaussian_prob`` is the
    share of the (non-fluorescence) denoising crops given Gaussian rather than Poisson-Gaussian noise.
    ``real_lowlight_gain`` g > 1 multiplies each real low-light input by a gain drawn log-uniformly
    from [1/g, g] and keeps its target: the same scene, shot a little darker or brighter, must come
    out the same, so the network reads the target's brightness from the content instead of
    recalling the few real scenes it has seen.
    """

    def __init__(self, clean_bank: ImageBank, lowlight_pairs: PairedBank | None = None,
                 kernels: torch.Tensor | None = None, task_probs: Sequence[float] | None = None,
                 crop: int = 128, device=None, seed: int = 0, real_lowlight_fraction: float = 0.5,
                 fluorescence_fraction: float = 0.3, heavy_rain_share: float = 0.0, clean_share: float = 0.0,
                 gaussian_prob: float = 0.75, real_lowlight_gain: float = 1.0):
        self.clean = clean_bank
        self.pairs = lowlight_pairs
        self.device = torch.device(device) if device is not None else clean_bank.device
        if self.device != clean_bank.device or (lowlight_pairs is not None and lowlight_pairs.device != self.device):
            raise ValueError("the banks must live on the batcher's device")
        self.kernels = kernels.to(self.device) if kernels is not None else None
        probs = torch.ones(len(TASKS)) if task_probs is None else torch.as_tensor(task_probs, dtype=torch.float64)
        if probs.numel() != len(TASKS) or (probs < 0).any() or probs.sum() <= 0:
            raise ValueError(f"task_probs needs {len(TASKS)} non-negative weights, not all zero")
        self.task_probs = (probs / probs.sum()).double()
        self.crop = crop
        self.fluorescence_fraction = fluorescence_fraction
        self.heavy_rain_share = heavy_rain_share
        self.clean_share = clean_share
        self.gaussian_prob = gaussian_prob
        self.real_lowlight_fraction = real_lowlight_fraction if lowlight_pairs is not None else 0.0
        if real_lowlight_gain < 1:
            raise ValueError("real_lowlight_gain is the largest gain, >= 1 (1: none)")
        self.real_lowlight_gain = real_lowlight_gain
        self.host_rng = torch.Generator().manual_seed(seed)
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def task_counts(self, batch_size: int) -> torch.Tensor:
        """How many samples of each task go into a batch (CPU, sums to ``batch_size``)."""
        exact = self.task_probs * batch_size
        counts = exact.floor().long()
        left = batch_size - int(counts.sum())
        if left > 0:
            residual = exact - counts
            weights = residual if residual.sum() > 0 else self.task_probs
            extra = torch.multinomial(weights, left, replacement=False, generator=self.host_rng)
            counts[extra] += 1
        return counts

    def next(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        counts = self.task_counts(batch_size)
        low = TASKS.index("lowlight")
        n_low = int(counts[low])
        n_real = int((torch.rand(n_low, generator=self.host_rng) < self.real_lowlight_fraction).sum())
        synth_counts = counts.clone()
        synth_counts[low] -= n_real
        ids = torch.repeat_interleave(torch.arange(len(TASKS)), synth_counts)   # CPU, grouped by task
        n_synth = int(ids.numel())
        clean = self.clean.sample(n_synth, self.crop, self.generator)
        clean, fluorescent = self._fluorescence_like(clean, ids)
        degraded = degrade(clean, ids, self.kernels, self.generator, gaussian_prob=self.gaussian_prob,
                           heavy_rain_share=self.heavy_rain_share)
        n = fluorescent.shape[0]  # the denoise rows, which come first
        if n:
            # A microscope's frame for the fluorescence-like ones (gray noise from a gray detector,
            # light to heavy); their target sits on the detector's dark offset, as a frame average does.
            noisy, target = microscope_noise(clean[:n], self.generator)
            degraded = torch.cat([torch.where(fluorescent, noisy, degraded[:n]), degraded[n:]])
            clean = torch.cat([torch.where(fluorescent, target, clean[:n]), clean[n:]])
        if self.clean_share > 0:  # no extra random draws at 0, so earlier batches stay identical
            # A share of the synthetic crops stays clean whatever its task: every prompt learns to
            # leave an undegraded image alone (what a misread of the sensor costs). The sensor's
            # loss skips these crops (train.TrainStep): they show no sign of their label.
            degraded = torch.where(_coin(n_synth, self.clean_share, clean, self.generator), clean, degraded)
        if n_real:
            real_in, real_clean = self.pairs.sample(n_real, self.crop, self.generator)
            if self.real_lowlight_gain > 1:  # no extra random draws at 1, so earlier batches stay identical
                g = self.real_lowlight_gain
                real_in = (real_in * _log_uniform(n_real, 1 / g, g, real_in, self.generator)).clamp(0, 1)
            degraded = torch.cat([degraded, real_in])
            clean = torch.cat([clean, real_clean])
            ids = torch.cat([ids, torch.full((n_real,), low)])
        return degraded, clean, ids.to(self.device, non_blocking=True)

    __call__ = next

    def _fluorescence_like(self, clean: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn a ``fluorescence_fraction`` of the denoising crops into fluorescence-microscopy-like
        images (see :func:`fluorescence_like`), so that dark, noisy, gray microscopy reads as noise
        and not as low light. Returns the crops and, for the denoising rows (which come first),
        the mask ``[n_denoise, 1, 1, 1]`` of those made fluorescence-like (empty when none can be)."""
        n_denoise = int((ids == TASKS.index("denoise")).sum()) if self.fluorescence_fraction > 0 else 0
        if n_denoise == 0:
            return clean, torch.zeros(0, 1, 1, 1, dtype=torch.bool, device=clean.device)
        head = clean[:n_denoise]
        pick = _coin(n_denoise, self.fluorescence_fraction, head, self.generator)
        return torch.cat([torch.where(pick, fluorescence_like(head, self.generator), head), clean[n_denoise:]]), pick


def fluorescence_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Clean gray images that look like fluorescence microscopy, made from natural crops
    ``[n, 3, H, W]``: mostly black with sparse bright structures (FMD confocal frames: mean
    0.04, median 0.02, 55 % of pixels below 0.02, 99th percentile 0.41). Three looks, chosen
    per image: *blobs* (only the brightest part of the scene, like stained nuclei),
    *filaments* (the gradient magnitude: thin bright lines, like actin), and *dim* (the whole
    scene darkened). Returned as three equal channels."""
    n = x.shape[0]
    g = _gray(x)
    hi = g.flatten(1).amax(1).view(n, 1, 1, 1)
    # blobs: keep what lies above a per-image quantile of the crop, so the background is black
    q = _uniform(n, 0.45, 0.85, g, generator).view(n)
    threshold = torch.quantile(g.flatten(1), q, dim=1).diagonal().view(n, 1, 1, 1)
    blobs = ((g - threshold) / (hi - threshold).clamp_min(1e-3)).clamp(0, 1)
    # filaments: gradient magnitude of the scene, normalised by its own upper percentile
    gy = F.pad(g[..., 1:, :] - g[..., :-1, :], (0, 0, 0, 1))
    gx = F.pad(g[..., :, 1:] - g[..., :, :-1], (0, 1, 0, 0))
    edges = (gx.square() + gy.square()).sqrt()
    top = torch.quantile(edges.flatten(1), 0.995, dim=1).view(n, 1, 1, 1).clamp_min(1e-3)
    filaments = (edges / top).clamp(0, 1)
    look = torch.rand(n, generator=generator, device=x.device).view(n, 1, 1, 1)
    sparse = torch.where(look < 0.5, blobs, filaments)
    sparse = sparse ** _uniform(n, 0.7, 1.8, g, generator) * _uniform(n, 0.15, 0.9, g, generator)
    dim = g * _uniform(n, 0.08, 0.6, g, generator)
    out = torch.where(look < 0.8, sparse, dim)
    return out.expand_as(x).contiguous()
