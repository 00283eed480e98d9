"""Batched synthetic degradations, pure torch, on whatever device the images live on.

Every function takes clean images ``x`` (float ``[B, 3, H, W]`` in ``[0, 1]``) and a
``torch.Generator`` on the same device, draws its parameters per image, and returns a
degraded batch of the same shape, dtype and device, clipped to ``[0, 1]``.
Per-image random choices are made with ``torch.where`` rather than boolean indexing, so
nothing here forces a GPU -> CPU sync.

The parameter ranges were tuned with ``training/synthesis_report.py`` so that the input
statistics match the real test inputs (see that script for the numbers).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pip_filters.tasks import TASKS

_LUMA = (0.299, 0.587, 0.114)


# ----------------------------------------------------------------------------- helpers

def _uniform(n: int, lo: float, hi: float, x: torch.Tensor, generator) -> torch.Tensor:
    """Per-image uniform draw shaped ``[n, 1, 1, 1]`` for broadcasting over images."""
    u = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)
    return (lo + (hi - lo) * u).view(n, 1, 1, 1)


def _log_uniform(n: int, lo: float, hi: float, x: torch.Tensor, generator) -> torch.Tensor:
    return _uniform(n, math.log(lo), math.log(hi), x, generator).exp()


def _coin(n: int, p: float, x: torch.Tensor, generator) -> torch.Tensor:
    """Per-image boolean ``[n, 1, 1, 1]``, true with probability ``p``."""
    return torch.rand(n, generator=generator, device=x.device).view(n, 1, 1, 1) < p


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _offsets(n: int, device) -> torch.Tensor:
    """Signed integer pixel offsets in FFT order (0, 1, ..., -1): coordinates of a kernel
    centred on pixel (0, 0) of a periodic grid, so no padding or rolling is needed."""
    return torch.fft.fftfreq(n, d=1.0 / n, device=device)


def _fft_conv(x: torch.Tensor, kernel_grid: torch.Tensor, extra_tf: torch.Tensor | None = None) -> torch.Tensor:
    """Circular convolution of ``x [B, C, H, W]`` with per-image kernels given on the same
    periodic grid ``[B, 1, H, W]`` (centre at pixel (0, 0)). FFT keeps the cost independent
    of kernel size (31 px blur kernels, 40 px rain streaks)."""
    h, w = x.shape[-2:]
    spec = torch.fft.rfft2(x) * torch.fft.rfft2(kernel_grid)
    if extra_tf is not None:
        spec = spec * extra_tf
    return torch.fft.irfft2(spec, s=(h, w))


def _gaussian_tf(sigma: torch.Tensor, h: int, w: int, device) -> torch.Tensor:
    """Transfer function of a Gaussian blur (per-image ``sigma`` in px) on the rfft2 grid."""
    fy = torch.fft.fftfreq(h, device=device).view(1, 1, h, 1)
    fx = torch.fft.rfftfreq(w, device=device).view(1, 1, 1, w // 2 + 1)
    return torch.exp(-2.0 * math.pi**2 * sigma**2 * (fy**2 + fx**2))


def _smooth(t: torch.Tensor, factor: int) -> torch.Tensor:
    """Very low-pass version of ``t`` (area-downsample, blur, bilinear upsample): cheap and
    size-independent, used for the haze depth proxy."""
    h, w = t.shape[-2:]
    small = F.interpolate(t, size=(max(1, h // factor), max(1, w // factor)), mode="area")
    small = F.avg_pool2d(F.pad(small, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def _minmax(t: torch.Tensor) -> torch.Tensor:
    lo = t.amin(dim=(-2, -1), keepdim=True)
    hi = t.amax(dim=(-2, -1), keepdim=True)
    return (t - lo) / (hi - lo).clamp_min(1e-6)


# ----------------------------------------------------------------------------- noise

def gaussian_noise(x: torch.Tensor, sigma_max: float = 55 / 255, generator: torch.Generator | None = None,
                   sigma: torch.Tensor | float | None = None, clip: bool = True) -> torch.Tensor:
    """Additive white Gaussian noise, per-image sigma in ``[0, sigma_max]``.

    Sigma is drawn as ``sigma_max * u**0.75``: slightly biased to strong noise, which is
    where a blind denoiser has most to learn. Pass ``sigma`` (scalar or ``[B]``) to fix it,
    e.g. for validation at sigma 25/255. ``clip=False`` keeps the unclipped noise that
    some papers' test protocols use.
    """
    b = x.shape[0]
    if sigma is None:
        s = sigma_max * _uniform(b, 0.0, 1.0, x, generator) ** 0.75
    else:
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1).expand(b, 1, 1, 1)
    y = x + s * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return y.clamp(0, 1) if clip else y


def poisson_gaussian_noise(x: torch.Tensor, generator: torch.Generator | None = None,
                           peak_range: tuple[float, float] = (5.0, 300.0), read_sigma_max: float = 0.03,
                           gray_prob: float = 0.5) -> torch.Tensor:
    """Shot + read noise: ``poisson(x * peak) / peak + N(0, read_sigma)`` (a camera's; the
    fluorescence-like crops get a photomultiplier's, :func:`microscope_noise`).

    ``peak`` (photons at white) is log-uniform in ``peak_range``. With ``gray_prob`` the image
    is first turned gray (replicated to 3 channels), because microscopy is mostly single
    channel and the model sees gray as three equal channels; the noise is then drawn once
    and replicated too, as it would be for a real gray image.
    """
    b = x.shape[0]
    xf = x.float()
    gray_mask = _coin(b, gray_prob, x, generator)
    peak = _log_uniform(b, *peak_range, xf, generator)
    read = _uniform(b, 0.0, read_sigma_max, xf, generator)
    # 4 channels: RGB for the colour images, the 4th one (luma) for the gray images.
    planes = torch.cat([xf, _gray(xf)], dim=1).clamp(0, 1)
    noisy = torch.poisson(planes * peak, generator=generator) / peak
    noisy = noisy + read * torch.randn(noisy.shape, generator=generator, device=x.device)
    y = torch.where(gray_mask, noisy[:, 3:4].expand_as(xf), noisy[:, :3])
    return y.clamp(0, 1).to(x.dtype)


def microscope_noise(x: torch.Tensor, generator: torch.Generator | None = None,
                     peak_range: tuple[float, float] = (10.0, 1000.0), gain_shape_range: tuple[float, float] = (1.5, 20.0),
                     offset_range: tuple[float, float] = (0.0, 0.03), read_range: tuple[float, float] = (0.0, 0.02),
                     correlation_range: tuple[float, float] = (0.0, 0.15), quantize_prob: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """A photomultiplier's frame of gray images ``x`` (three equal channels): returns
    ``(noisy, target)``, both gray, where the target is ``x`` on the detector's dark offset.

    Fitted to the raw FMD confocal frames (their inputs only, not their targets): the background
    reads 3 (51 %) or 4 (24 %) out of 255, then a tail that falls by 0.6 a level; this is a
    black offset of 3.4/255 clipped just below it, almost no read noise, and photon pulses of
    random height. The model: ``n ~ Poisson(x * peak)`` photons, each a pulse of mean height
    ``1 / peak`` and Gamma(shape) spread (the sum is Gamma(n * shape); shape 3.5 fits FMD,
    with peak ~80 photons at white: variance 1.3 x that of plain shot noise), read noise,
    the offset, a black clip 1/255 below it, and a pulse spread (``correlation_range``) onto
    the neighbours along one axis (the scan line; FMD: lag-1 correlation ~0.05 along rows). Half the
    frames are rounded to 8 bits, as FMD's are. Each parameter is drawn per image from its range.
    """
    n = x.shape[0]
    g = x[:, :1].float()
    peak = _log_uniform(n, *peak_range, g, generator)
    shape = _log_uniform(n, *gain_shape_range, g, generator)
    photons = torch.poisson(g * peak, generator=generator)
    # Gamma(0) is a point mass at 0; _standard_gamma needs a positive concentration.
    pulses = torch._standard_gamma((photons * shape).clamp_min(1e-6), generator=generator) / shape
    noise = torch.where(photons > 0, pulses, torch.zeros_like(pulses)) / peak - g
    # spread each pulse onto its neighbours along rows or columns, keeping the noise's variance
    w = _uniform(n, *correlation_range, g, generator)
    along_rows = _coin(n, 0.5, g, generator)
    rows = noise.roll(1, -1) + noise.roll(-1, -1)
    cols = noise.roll(1, -2) + noise.roll(-1, -2)
    noise = (noise + w * torch.where(along_rows, rows, cols)) / (1 + 2 * w * w).sqrt()
    offset = _uniform(n, *offset_range, g, generator)
    read = _uniform(n, *read_range, g, generator)
    noisy = g + offset + noise + read * torch.randn(g.shape, generator=generator, device=g.device)
    noisy = torch.maximum(noisy, (offset - 1 / 255).clamp_min(0)).clamp(max=1)
    noisy = torch.where(_coin(n, quantize_prob, g, generator), (noisy * 255).round() / 255, noisy)
    target = (g + offset).clamp(max=1)
    return noisy.expand_as(x).to(x.dtype), target.expand_as(x).to(x.dtype)


# microscope_noise's parameters at FMD confocal's level (fitted to its raw frames; each range one value)
FMD_CONFOCAL_LEVEL = dict(peak_range=(80.0, 80.0), gain_shape_range=(3.5, 3.5), offset_range=(3.4 / 255, 3.4 / 255),
                          read_range=(0.001, 0.001), correlation_range=(0.025, 0.025), quantize_prob=1.0)


# ----------------------------------------------------------------------------- rain

def _streak_kernels(h: int, w: int, angle: torch.Tensor, length: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Anti-aliased line segments on the periodic grid, one per image ``[B, 1, H, W]``,
    peak value 1, dimmer towards the ends like a falling drop's motion trail."""
    dy = _offsets(h, angle.device).view(1, 1, h, 1)
    dx = _offsets(w, angle.device).view(1, 1, 1, w)
    c, s = torch.cos(angle), torch.sin(angle)
    along = dy * c + dx * s          # angle measured from vertical
    across = -dy * s + dx * c
    half = length / 2
    profile = (width / 2 + 0.5 - across.abs()).clamp(0, 1)
    extent = (half + 0.5 - along.abs()).clamp(0, 1)
    taper = 1 - 0.6 * (along / half).clamp(-1, 1) ** 2
    return profile * extent * taper


def rain(x: torch.Tensor, generator: torch.Generator | None = None, heavy_share: float = 0.0) -> torch.Tensor:
    """Rendered rain streaks in the style of Rain100L (light rain, thin bright streaks).

    Sparse random seeds convolved (FFT, so periodic: streaks wrap around the crop edge,
    which is harmless) with a rotated line kernel whose angle, length and width are shared
    within an image, a slight Gaussian blur, then screen blending ``x + s (1 - x)``.
    A second, fainter layer at a nearby angle gives the depth variation real rain shows.
    Tuned to Rain100L (same BSD image scale): input PSNR 25.8 vs 25.5 dB, 14% vs 13% of
    pixels brightened by > 0.05, streak amplitude 0.13 vs 0.13.

    ``heavy_share`` of the images get heavy rain as real photos show it (``real/rain``): three to
    eight times the streaks, longer and softer, over a veil of mist (``x t + a (1 - t)``, ``t`` in
    [0.65, 0.9]) that the derain prompt must lift too: the light streaks alone are not what real
    rain looks like (a sensor trained on them reads 7 of 8 real rain photos as haze or blur,
    tools/sensor_on_real.py).
    """
    b, _, h, w = x.shape
    xf = x.float()
    angle = _uniform(b, -30.0, 30.0, xf, generator) * (math.pi / 180)
    density = _log_uniform(b, 0.001, 0.0035, xf, generator)     # seeds per pixel
    opacity = _uniform(b, 0.35, 0.9, xf, generator)
    stretch = 1.0
    # Drawn only when asked for, so that with heavy_share 0 the random stream (and with it every
    # validation crop) is what it was before heavy rain existed.
    if heavy_share > 0:
        heavy = _uniform(b, 0.0, 1.0, xf, generator) < heavy_share
        density = torch.where(heavy, density * _uniform(b, 3.0, 8.0, xf, generator), density)
        opacity = torch.where(heavy, opacity * 0.6, opacity)
        stretch = torch.where(heavy, _uniform(b, 1.3, 2.0, xf, generator), 1.0)
        veil = torch.where(heavy, _uniform(b, 0.65, 0.9, xf, generator), 1.0)
        xf = xf * veil + _uniform(b, 0.75, 0.95, xf, generator) * (1 - veil)
    streak = torch.zeros(b, 1, h, w, device=x.device)
    for layer in range(2):  # near layer: longer, brighter; far layer: shorter, fainter
        a = angle + (0 if layer == 0 else _uniform(b, -8.0, 8.0, xf, generator) * (math.pi / 180))
        length = _uniform(b, 10.0, 40.0, xf, generator) * (1.0 if layer == 0 else 0.6) * stretch
        width = 1.0 + 2.0 * _uniform(b, 0.0, 1.0, xf, generator) ** 3 * (1.0 if layer == 0 else 0.5)
        dens = density * (1.0 if layer == 0 else 1.5)
        gain = opacity * (1.0 if layer == 0 else 0.5)
        u = torch.rand(b, 1, h, w, generator=generator, device=x.device)
        seeds = (u < dens) * gain * (0.5 + 0.5 * u / dens)   # reuse u: a uniform in [0.5, 1] per seed
        blur_sigma = _uniform(b, 0.3, 0.8, xf, generator) * stretch
        k = _streak_kernels(h, w, a, length, width)
        streak = streak + _fft_conv(seeds, k, _gaussian_tf(blur_sigma, h, w, x.device))
    s = streak.clamp(0, 1)
    return (xf + s * (1 - xf)).clamp(0, 1).to(x.dtype)


# ----------------------------------------------------------------------------- haze

def haze(x: torch.Tensor, generator: torch.Generator | None = None,
         beta_range: tuple[float, float] = (0.2, 1.0), clear_share: float = 0.0) -> torch.Tensor:
    """Atmospheric scattering ``I = J t + A (1 - t)``, ``t = exp(-beta d)``.

    No depth maps are available, so ``d`` is a random mix of plausible cues: a vertical
    ramp (top is far), a heavily blurred dark-channel-like term (bright, colourless regions
    such as sky tend to be far) and low-frequency noise; normalised to ``[d_min, 1]`` with
    ``d_min`` in ``[0.2, 0.6]``, because SOTS haze is a fairly even veil (nothing is haze-free).
    Airlight is gray-white in ``[0.8, 1]`` with a slight per-channel tint. With ``beta`` in
    ``[0.2, 1.0]`` this gives SOTS-outdoor's input PSNR (16.5 vs 16.7 dB) and contrast loss
    (x0.74 vs x0.69) on BSD images; stronger ``beta`` made every image far too hazy.

    ``clear_share`` of the images get light haze down to none (``beta`` in ``[0, beta_range[0]]``),
    so that a network trained on them learns to leave a clear image as it is when told to dehaze
    (or when the sensor misreads it as hazy) instead of darkening it.
    """
    b, _, h, w = x.shape
    xf = x.float()
    dev = x.device
    ramp = torch.linspace(1.0, 0.0, h, device=dev).view(1, 1, h, 1).expand(b, 1, h, w)
    ramp = ramp ** _uniform(b, 0.5, 2.0, xf, generator)
    dark = -F.max_pool2d(-xf.amin(dim=1, keepdim=True), 9, stride=1, padding=4)
    dark = _smooth(dark, 16)
    noise = torch.randn(b, 1, 4, 4, generator=generator, device=dev)
    noise = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False)
    mix = torch.rand(b, 3, 1, 1, generator=generator, device=dev)
    mix = mix / mix.sum(1, keepdim=True)
    depth = mix[:, 0:1] * ramp + mix[:, 1:2] * _minmax(dark) + mix[:, 2:3] * _minmax(noise)
    d_min = _uniform(b, 0.2, 0.6, xf, generator)
    depth = d_min + (1 - d_min) * _minmax(depth)
    # One uniform draw picks both cases, so the random stream is the same whatever clear_share
    # is: every other crop, in training and in the validation set, stays as it was.
    u = _uniform(b, 0.0, 1.0, xf, generator)
    lo, hi = beta_range
    beta = torch.where(u < clear_share, lo * u / max(clear_share, 1e-6),
                       lo + (hi - lo) * (u - clear_share) / max(1 - clear_share, 1e-6))
    t = torch.exp(-beta * depth)
    airlight = _uniform(b, 0.8, 1.0, xf, generator) + 0.04 * (2 * torch.rand(b, 3, 1, 1, generator=generator, device=dev) - 1)
    return (xf * t + airlight.clamp(0, 1) * (1 - t)).clamp(0, 1).to(x.dtype)


# ----------------------------------------------------------------------------- blur

KERNEL_SIZE = 31  # support of the on-the-fly trajectory kernels (and the minimum common size)


def kernel_offsets(kernels: torch.Tensor) -> torch.Tensor:
    """Each kernel's centre of mass minus its centre pixel, ``[K, 2]`` (rows, columns; positive =
    down, right), in px, float64."""
    k = kernels[:, 0].to(torch.float64)
    pos = torch.arange(k.shape[-1], dtype=torch.float64, device=k.device)
    mass = k.sum((-2, -1))
    rows, cols = (k.sum(-1) * pos).sum(-1) / mass, (k.sum(-2) * pos).sum(-1) / mass
    return torch.stack([rows, cols], -1) - (k.shape[-1] - 1) / 2


def centre_kernels(kernels: torch.Tensor) -> torch.Tensor:
    """Shift each kernel of ``[K, 1, k, k]`` so its centre of mass falls on the centre pixel.

    Blind deblurring only knows the sharp image up to a shift (a kernel moved one way and the
    image the other give the same blur), so a kernel whose mass sits off its centre shifts the
    blurred image against its target by as much: up to 4.3 px for the Levin test kernels and
    8.5 px for raw camera-shake paths. A network then cannot tell which shift to undo and learns
    to blur; a metric then charges a perfect restoration for the shift. The shift is subpixel,
    by linear interpolation, which keeps each kernel's sum and moves its centroid exactly; the
    support grows by the largest shift and stays square and odd.
    """
    k = kernels.to(torch.float64)
    size = k.shape[-1]
    offsets = kernel_offsets(k)
    margin = int(offsets.abs().max().ceil().item()) + 1
    k = F.pad(k, (margin,) * 4)
    out = torch.empty_like(k)
    for i, (dy, dx) in enumerate((-offsets).tolist()):
        one = k[i]
        for shift, dim in ((dy, -2), (dx, -1)):
            whole = math.floor(shift)
            frac = shift - whole
            one = (1 - frac) * one.roll(whole, dim) + frac * one.roll(whole + 1, dim)
        out[i] = one
    # Trim the padding the shifts did not need (same on every side: the centre stays put), never
    # below the size the kernels came in.
    used = (out.abs() > 1e-12).any(0)[0]
    rows, cols = used.any(1).nonzero().flatten(), used.any(0).nonzero().flatten()
    half = (out.shape[-1] - 1) // 2
    keep = max(half - int(rows[0]), int(rows[-1]) - half, half - int(cols[0]), int(cols[-1]) - half, (size - 1) // 2)
    out = out[..., half - keep:half + keep + 1, half - keep:half + keep + 1]
    return (out.clamp_min(0) / out.clamp_min(0).sum((-2, -1), keepdim=True)).to(kernels.dtype)


def load_kernels(path: str | Path, skip: Sequence[str] = (), centre: bool = True) -> torch.Tensor:
    """Blur kernels from an ``.npz`` as ``[K, 1, k, k]`` float32, each zero-padded to a common
    odd size, normalised to sum 1 and (``centre``) moved so its centre of mass is the centre
    pixel (:func:`centre_kernels`).

    Accepts one array per key (``k1`` ... ``k12``, the USRNet set; keys sorted naturally) or
    arrays that already stack several kernels along the first axis. ``skip`` names keys to
    leave out (the training configs skip the USRNet kernels that are Levin test kernels).
    """
    with np.load(path, allow_pickle=False) as z:
        unknown = set(skip) - set(z.files)
        if unknown:
            raise ValueError(f"{path}: no kernels named {sorted(unknown)} to skip (it has {sorted(z.files)})")
        keys = sorted((k for k in z.files if k not in skip), key=lambda k: (len(k), k))  # k2 before k10
        arrays = [np.asarray(z[k], dtype=np.float64) for k in keys]
    kernels = [a for arr in arrays for a in (arr if arr.ndim == 3 else [arr])]
    size = max(max(k.shape) for k in kernels)
    size += 1 - size % 2
    out = torch.zeros(len(kernels), 1, size, size)
    for i, k in enumerate(kernels):
        k = np.clip(k, 0, None)
        top, left = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
        out[i, 0, top:top + k.shape[0], left:left + k.shape[1]] = torch.from_numpy(k / k.sum())
    return centre_kernels(out) if centre else out


def motion_kernels(n: int, generator: torch.Generator | None = None, device=None,
                   size: int = KERNEL_SIZE, extent_range: tuple[float, float] = (8.0, 29.0),
                   steps: int = 64) -> torch.Tensor:
    """Random camera-shake kernels ``[n, 1, size, size]``, each summing to 1.

    The path is an integrated random walk (a velocity that drifts from a random initial
    direction, i.e. motion with momentum), scaled so its longest side spans a random
    ``extent_range`` px, then rasterised with bilinear splatting. The dwell time varies along
    the path, as for a real shaking hand.
    """
    ref = torch.empty(0, device=device)
    theta = _uniform(n, 0.0, 2 * math.pi, ref, generator).view(n, 1)
    v0 = torch.cat([theta.cos(), theta.sin()], dim=1).view(n, 1, 2)
    shake = _log_uniform(n, 0.02, 0.6, ref, generator).view(n, 1, 1)
    acc = torch.randn(n, steps, 2, generator=generator, device=device) * shake
    path = torch.cumsum(v0 + torch.cumsum(acc, dim=1), dim=1)
    lo, hi = path.amin(dim=1, keepdim=True), path.amax(dim=1, keepdim=True)
    extent = _uniform(n, *extent_range, ref, generator).view(n, 1, 1)
    centre = (size - 1) / 2
    # Every sample carries the same mass and bilinear splatting keeps it where it is, so a path
    # centred on its mean gives a kernel whose centre of mass is the centre pixel (see
    # centre_kernels for why that matters); a lopsided path is shrunk to stay inside the support.
    mean = path.mean(dim=1, keepdim=True)
    reach = (path - mean).abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    scale = torch.minimum(extent / (hi - lo).amax(dim=2, keepdim=True).clamp_min(1e-6), (centre - 1) / reach)
    p = (path - mean) * scale + centre                            # [n, steps, 2], inside the support
    p = p.clamp(0, size - 1.001)
    base = p.floor()
    frac = p - base
    base = base.long()
    k = torch.zeros(n, size * size, device=device)
    for dy in (0, 1):
        for dx in (0, 1):
            wy = frac[..., 0] if dy else 1 - frac[..., 0]
            wx = frac[..., 1] if dx else 1 - frac[..., 1]
            idx = (base[..., 0] + dy).clamp(max=size - 1) * size + (base[..., 1] + dx).clamp(max=size - 1)
            k.scatter_add_(1, idx, wy * wx)
    k = k / k.sum(dim=1, keepdim=True)
    return k.view(n, 1, size, size)


def _pad_kernels(k: torch.Tensor, size: int) -> torch.Tensor:
    p = (size - k.shape[-1]) // 2
    return F.pad(k, (p, p, p, p)) if p > 0 else k


def blur(x: torch.Tensor, kernels: torch.Tensor | None, generator: torch.Generator | None = None,
         motion_prob: float = 0.5, noise_max: float = 3 / 255) -> torch.Tensor:
    """Blur each image with its own kernel, then add Gaussian noise sigma in ``[0, noise_max]``.

    The kernel is, per image, a random pick from ``kernels`` (``[K, 1, k, k]``, see
    :func:`load_kernels`) or, with ``motion_prob`` (always if ``kernels`` is None), a fresh
    camera-shake kernel from :func:`motion_kernels`. The convolution is a true convolution
    (not correlation) with reflect padding, done by FFT so 31 px kernels stay cheap.
    """
    b, c, h, w = x.shape
    xf = x.float()
    dev = x.device
    k = motion_kernels(b, generator, dev)
    if kernels is not None:
        size = max(k.shape[-1], kernels.shape[-1])
        k = _pad_kernels(k, size)
        pick = torch.randint(0, kernels.shape[0], (b,), generator=generator, device=dev)
        fixed = _pad_kernels(kernels.to(dev, torch.float32), size)[pick]
        k = torch.where(_coin(b, motion_prob, xf, generator), k, fixed)
    r = k.shape[-1] // 2
    # Reflect padding by r on each side; the circular FFT convolution then never wraps
    # into the part we keep.
    pad_mode = "reflect" if min(h, w) > r else "replicate"
    xp = F.pad(xf, (r, r, r, r), mode=pad_mode)
    hp, wp = xp.shape[-2:]
    grid = torch.zeros(b, 1, hp, wp, device=dev)
    grid[..., : k.shape[-2], : k.shape[-1]] = k
    grid = torch.roll(grid, shifts=(-r, -r), dims=(-2, -1))      # kernel centre to pixel (0, 0)
    y = _fft_conv(xp, grid)[..., r:r + h, r:r + w]
    sigma = _uniform(b, 0.0, noise_max, xf, generator)
    y = y + sigma * torch.randn(y.shape, generator=generator, device=dev)
    return y.clamp(0, 1).to(x.dtype)


# ----------------------------------------------------------------------------- low light

def underexpose(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Synthetic low light in the style of LOL: ``gain * x**gamma``, an occasional colour
    cast, signal-dependent (shot + read) noise, then 8-bit quantisation.

    Ranges come from fitting ``low = gain * high**gamma`` to the LOL *train* pairs (gamma
    1.4-2.7, gain 0.05-0.33) and measuring their noise (high-pass std ~0.007-0.012 at a mean
    of ~0.05); the result has LOL's input PSNR (8.0 vs 7.8 dB) and mean (0.045 vs 0.046
    train / 0.059 eval). Quantisation matters: real dark 8-bit photos have few gray levels.
    """
    b = x.shape[0]
    xf = x.float()
    gamma = _uniform(b, 1.3, 2.7, xf, generator)
    gain = _log_uniform(b, 0.07, 0.35, xf, generator)
    y = gain * xf.clamp(0, 1) ** gamma
    cast = 1 + 0.15 * (2 * torch.rand(b, 3, 1, 1, generator=generator, device=x.device) - 1)
    y = torch.where(_coin(b, 0.25, xf, generator), y * cast, y)
    shot = _log_uniform(b, 1e-4, 2e-3, xf, generator)
    read = _uniform(b, 0.001, 0.008, xf, generator)
    std = (shot * y.clamp_min(0) + read**2).sqrt()
    y = y + std * torch.randn(y.shape, generator=generator, device=x.device)
    y = torch.round(y.clamp(0, 1) * 255) / 255
    return y.to(x.dtype)


# ----------------------------------------------------------------------------- dispatch

# Share of the hazy training crops with light haze down to none. Without them the dehaze prompt
# darkened clear held-out photos by 15.6 grey levels on average (23.4 dB from the input,
# tools/prompt_on_clear.py), and rainy images the sensor misread as hazy lost up to 18 dB.
CLEAR_HAZE_SHARE = 0.25


def degrade(x: torch.Tensor, task_ids: torch.Tensor, kernels: torch.Tensor | None,
            generator: torch.Generator | None = None, gaussian_prob: float = 0.75,
            heavy_rain_share: float = 0.0) -> torch.Tensor:
    """Apply per image the degradation of ``TASKS[task_ids[i]]``.

    Each task's sub-batch is processed in one vectorised call. "denoise" is Gaussian noise
    with ``gaussian_prob`` and Poisson-Gaussian otherwise (both are computed on the
    denoise sub-batch and selected per image, which avoids a data-dependent split).
    Pass ``task_ids`` on the CPU to avoid a device sync: the grouping is done on the host
    and only index tensors are uploaded. ``heavy_rain_share``: the share of the rain images
    that get heavy rain with mist (see :func:`rain`).
    """
    ids = task_ids.detach().to("cpu", torch.long).view(-1)
    if ids.numel() != x.shape[0]:
        raise ValueError(f"task_ids has {ids.numel()} entries for a batch of {x.shape[0]}")
    if ((ids < 0) | (ids >= len(TASKS))).any():
        raise ValueError(f"task_ids must index TASKS {TASKS}")
    out = torch.empty_like(x)
    for t, name in enumerate(TASKS):
        rows = (ids == t).nonzero().view(-1)
        if rows.numel() == 0:
            continue
        rows = rows.to(x.device, non_blocking=True)
        sub = x.index_select(0, rows)
        if name == "denoise":
            use_gauss = _coin(sub.shape[0], gaussian_prob, sub, generator)
            y = torch.where(use_gauss, gaussian_noise(sub, generator=generator),
                            poisson_gaussian_noise(sub, generator=generator))
        elif name == "derain":
            y = rain(sub, generator=generator, heavy_share=heavy_rain_share)
        elif name == "dehaze":
            y = haze(sub, generator=generator, clear_share=CLEAR_HAZE_SHARE)
        elif name == "deblur":
            y = blur(sub, kernels, generator=generator)
        elif name == "lowlight":
            y = underexpose(sub, generator=generator)
        else:  # a task added to TASKS without a synthesiser here
            raise NotImplementedError(f"no synthetic degradation for task {name!r}")
        out.index_copy_(0, rows, y)
    return out
