"""Make the sample images shipped in pip_filters/samples/: a procedural outdoor scene (drawn here,
so the repo ships no third-party photo) and degraded versions of it made with the training
synthesis. Run from the repo root: python tools/make_samples.py"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pip_filters.tasks import TASKS
from pip_filters.training import degrade

OUT = Path("pip_filters/samples")


def fractal(h, w, rng, octaves=6):
    """Smooth random texture: random grids of growing resolution, upsampled and summed."""
    total = np.zeros((h, w))
    for octave in range(octaves):
        n = 2 ** (octave + 2)
        grid = Image.fromarray(rng.random((n, n)).astype(np.float32), mode="F")
        total += np.asarray(grid.resize((w, h), Image.BICUBIC)) / 2 ** octave
    return (total - total.min()) / (total.max() - total.min())


def scene(h=384, w=512, seed=7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None, None]
    img = (1 - y) * np.array([0.35, 0.55, 0.9]) + y * np.array([0.85, 0.9, 0.95])  # sky
    img = np.broadcast_to(img, (h, w, 3)).copy()
    clouds = fractal(h, w, rng)[..., None]
    img = img * (1 - 0.35 * clouds) + 0.35 * clouds
    for depth, (colour, base) in enumerate([((0.45, 0.5, 0.6), 0.45), ((0.25, 0.4, 0.25), 0.6)]):
        ridge = fractal(8, w, rng, 5)[0] * 0.18 + base
        mask = np.arange(h)[:, None] / h > ridge[None, :]
        tex = fractal(h, w, rng)[..., None] * 0.25 + 0.75
        img[mask] = (np.array(colour) * tex)[mask]
    image = Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((400, 40, 460, 100), fill=(255, 236, 170))  # sun
    draw.rectangle((90, 230, 250, 350), fill=(170, 80, 60), outline=(60, 30, 20), width=3)  # house
    draw.polygon([(80, 232), (170, 170), (260, 232)], fill=(90, 50, 40))
    for i in range(3):
        for j in range(2):
            x0, y0 = 105 + 50 * i, 250 + 50 * j
            draw.rectangle((x0, y0, x0 + 30, y0 + 30), fill=(230, 220, 150), outline=(40, 40, 40), width=2)
            draw.line((x0 + 15, y0, x0 + 15, y0 + 30), fill=(40, 40, 40), width=2)
    for k in range(12):  # a fence: fine periodic detail
        draw.rectangle((300 + 16 * k, 300, 306 + 16 * k, 350), fill=(235, 235, 225))
    draw.line((296, 312, 490, 312), fill=(235, 235, 225), width=3)
    draw.text((300, 360), "pip-filters sample", fill=(20, 20, 20))
    return np.asarray(image)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    clean = scene()
    Image.fromarray(clean).save(OUT / "clean.png")
    x = torch.from_numpy(clean).permute(2, 0, 1)[None].float() / 255
    names = {"denoise": "noisy", "derain": "rainy", "dehaze": "hazy", "deblur": "blurry", "lowlight": "dark"}
    kernels = None
    for task, name in names.items():
        generator = torch.Generator().manual_seed(TASKS.index(task) + 1)
        if task == "denoise":
            y = degrade.gaussian_noise(x, sigma=25 / 255, generator=generator)
        else:
            y = degrade.degrade(x, torch.tensor([TASKS.index(task)]), kernels, generator=generator)
        Image.fromarray((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(OUT / f"{name}.png")
    print(sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
