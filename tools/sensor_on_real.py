"""What the sensor reads on real degraded photos and video frames that have no ground truth
(``../shared/data/real`` and ``../shared/data/videos``, never ``test/``): the share read as the
degradation the folder or file name says, and each file's reading.

    python tools/sensor_on_real.py                        # the default model's shipped weights
    python tools/sensor_on_real.py --weights runs/X/pip-nafnet-s.safetensors

The synthetic validation crops cannot show how far real degradations lie from the synthesis;
these can (real rain, for one, carries a veil of mist that the Rain100L-style streaks lack).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import pip_filters
from pip_filters.training.data import decode_rgb, list_images
from pip_filters.video.probe import probe
from pip_filters.video.sampling import sample_frames

# What each photo folder and each clip (by the start of its name) shows.
FOLDERS = {"rain": "derain", "hazy": "dehaze", "blur": "deblur"}
CLIPS = {"rain_": "derain", "NTURain": "derain", "lowlight_": "lowlight", "blur_": "deblur"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=pip_filters.DEFAULT_MODEL)
    parser.add_argument("--weights", type=Path, help="default: the package's weights for --model")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--frames", type=int, default=5, help="frames read per clip")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (args.data / "real").is_dir():
        raise SystemExit(f"no real/ folder in {args.data}: pass --data with the shared data folder")
    torch.set_num_threads(args.threads)
    restorer = pip_filters.load(args.model, device="cpu", weights=args.weights)
    groups: dict[str, list[tuple[str, np.ndarray]]] = {}
    for folder, task in FOLDERS.items():
        for f in list_images(args.data / "real" / folder):
            groups.setdefault(f"real/{folder} ({task})", []).append((f.name, decode_rgb(f)))
    for f in sorted((args.data / "videos").glob("*")):
        task = next((t for prefix, t in CLIPS.items() if f.name.startswith(prefix)), None)
        if task:
            # The frames pip-video's --task auto reads: spread over the clip and upright.
            for i, frame in enumerate(sample_frames(probe(f), args.frames)):
                groups.setdefault(f"videos ({task})", []).append((f"{f.name}#{i}", frame))
    for group, items in groups.items():
        task = group.split("(")[1].rstrip(")")
        reads = []
        for name, image in items:
            weights = restorer.detect(image)
            top = max(weights, key=weights.get)
            reads.append(top)
            print(f"  {name}: {top} " + ", ".join(f"{t} {w:.2f}" for t, w in weights.items() if w >= 0.01))
        counts = {t: reads.count(t) for t in dict.fromkeys(reads)}
        print(f"{group}: {reads.count(task)} of {len(reads)} read as {task}; reads {counts}")


if __name__ == "__main__":
    main()
