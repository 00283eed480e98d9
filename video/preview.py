"""`--preview`: a side-by-side PNG (input | restored) of a few frames sampled across the video,
to judge the settings in seconds instead of processing the whole video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .probe import VideoInfo
from .sampling import sample_frames

GAP = 4  # pixels of white between the panels


def preview_path(target: Path) -> Path:
    return target if target.suffix.lower() == ".png" else target.with_name(target.stem + ".preview.png")


def write_preview(restorer, info: VideoInfo, target: Path, task, strength: float = 1.0, count: int = 3,
                  start: float = 0.0, duration: float | None = None, ensemble: bool = False) -> Path:
    frames = sample_frames(info, count, start, duration)  # upright, as a viewer sees them
    rows = []
    for frame in frames:
        prompt = restorer.prompt(frame, task=task)
        restored = restorer.restore(frame, prompt=prompt, strength=strength, ensemble=ensemble)
        gap = np.full((frame.shape[0], GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([frame, gap, restored], axis=1))
    width = max(r.shape[1] for r in rows)
    padded = []
    for row in rows:  # rows can differ in size only if the video changes size midway
        pad = np.full((row.shape[0] + GAP, width, 3), 255, np.uint8)
        pad[:row.shape[0], :row.shape[1]] = row
        padded.append(pad)
    path = preview_path(target)
    Image.fromarray(np.concatenate(padded)[:-GAP]).save(path)
    return path
