"""The README's before/after picture: each shipped degraded sample next to what the default
model makes of it with task="auto". Run from the repo root: python tools/make_readme_figure.py"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import pip_filters

SAMPLES = Path("pip_filters/samples")


def main(out=Path("docs/before_after.jpg"), scale=0.5):
    restorer = pip_filters.load(device="cpu")
    rows = []
    for name in ["noisy", "rainy", "hazy", "blurry", "dark"]:
        before = np.asarray(Image.open(SAMPLES / f"{name}.png").convert("RGB"))
        weights = restorer.detect(before)
        after = restorer.restore(before)
        row = Image.fromarray(np.concatenate([before, after], axis=1))
        row = row.resize((int(row.width * scale), int(row.height * scale)), Image.LANCZOS)
        guess = max(weights, key=weights.get)
        ImageDraw.Draw(row).text((6, 4), f"{name} -> auto: {guess} {weights[guess]:.2f}", fill=(255, 255, 255))
        rows.append(np.asarray(row))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out, quality=88)
    print(out)


if __name__ == "__main__":
    main()
