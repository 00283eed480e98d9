"""``pip-eval``: benchmark a restorer on the held-out test sets of the shared data.

    pip-eval [--model NAME | --weights FILE] [--data ../shared/data] [--sets all|name,...]
             [--limit N] [--out docs/eval/NAME] [--device cpu] [--threads N]

For every test set it measures the degraded input, the output with ``task="auto"`` (the
degradation sensor decides) and the output with the true task, plus the sensor's accuracy
(argmax of ``detect`` == true task). It writes ``OUT/results.md`` (protocol and one table),
``OUT/results.json`` (the same numbers, per image too) and one contact sheet per set
(``OUT/NAME.jpg``: input | output(auto) | target).

Conventions (also written at the top of ``results.md``):

* PSNR and SSIM on full images (no border crop), RGB in [0, 255] (the gray image itself for
  FMD), computed on uint8-rounded images: ``round(clip(x, 0, 1) * 255)``; the network gets
  the unquantised float input. The set figure is the mean of the per-image figures.
* PSNR = 10 log10(255^2 / MSE), capped at ``PSNR_CAP`` = 100 dB, so identical images give
  100 dB instead of inf (keeps means and JSON finite).
* SSIM: ``skimage.metrics.structural_similarity(..., data_range=255, channel_axis=-1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``, i.e. Wang et al.'s
  11x11 Gaussian-window SSIM, averaged over the channels.
* Y channel (deraining): ITU-R BT.601 luma as MATLAB's ``rgb2ycbcr``:
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 255], unrounded.

Set names for ``--sets``: the rows of ``SETS`` (``cbsd68-s25``, ``rain100l`` ...); a task name
(``denoise``) or a folder name (``cbsd68``, ``kodak24``) selects every row that uses it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from pip_filters.hardware import cpu_name
from pip_filters.tasks import TASKS

from .degrade import load_kernels

PSNR_CAP = 100.0
SHEET_ROWS = 3
SHEET_TILE = 300           # longest side of one contact-sheet tile, px
SHEET_MAX_BYTES = 400_000  # contact sheets must stay below this
BLUR_NOISE_SIGMA = 2.55    # on the 0-255 scale
KERNELS_FILE = "test/levin8-kernels/levin8_derived.npz"


# ----------------------------------------------------------------------------- the sets

@dataclass(frozen=True)
class EvalSet:
    """One row of the results table.

    kind: "noise" (clean colour images + seeded Gaussian noise of ``sigma``), "paired"
    (input/ and target/ folders, RGB), "paired-gray" (the same, 8-bit gray, compared on gray),
    "blur" (clean images convolved with each test kernel + seeded Gaussian noise).
    """

    name: str
    task: str
    folder: str
    kind: str
    sigma: float = 0.0
    y_channel: bool = False


SETS: dict[str, EvalSet] = {s.name: s for s in [
    *(EvalSet(f"cbsd68-s{s}", "denoise", "test/cbsd68", "noise", sigma=s) for s in (15, 25, 50)),
    *(EvalSet(f"kodak24-s{s}", "denoise", "test/kodak24", "noise", sigma=s) for s in (15, 25, 50)),
    EvalSet("fmd-confocal-20", "denoise", "test/fmd-confocal-20", "paired-gray"),
    EvalSet("rain100l", "derain", "test/rain100l", "paired", y_channel=True),
    EvalSet("sots-outdoor-35", "dehaze", "test/sots-outdoor-35", "paired"),
    EvalSet("lol-eval15", "lowlight", "test/lol-eval15", "paired"),
    EvalSet("kodak24-levin8", "deblur", "test/kodak24", "blur", sigma=BLUR_NOISE_SIGMA),
]}


def select_sets(spec: str | list | None) -> list[EvalSet]:
    """``"all"``/None, or names separated by commas: a row name, a task or a folder name."""
    if spec is None or spec == "all" or spec == ["all"]:
        return list(SETS.values())
    tokens = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: list[EvalSet] = []
    for token in tokens:
        if isinstance(token, EvalSet):
            matches = [token]
        else:
            token = token.strip()
            if not token:
                continue
            matches = [s for s in SETS.values()
                       if token in (s.name, s.task, Path(s.folder).name)]
            if not matches:
                raise ValueError(f"unknown set {token!r}; known: {', '.join(SETS)} (or a task / folder name)")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def protocol_lines() -> list[str]:
    """How every set is degraded and measured (written at the top of results.md)."""
    return [
        "Denoising, `cbsd68-sS` / `kodak24-sS` (S = 15, 25, 50): clean test image x (uint8 -> float32 / 255), "
        "noisy = clip(x + N(0, (S/255)^2), 0, 1), float32, noise drawn by `numpy.random.default_rng(seed)` "
        "with seed = 1000 * S + i (i = 0-based index of the image in name order), `rng.standard_normal(x.shape, dtype=float32)`. "
        "The network gets the unquantised float image.",
        "Denoising, `fmd-confocal-20`: real confocal noise, raw frame (input/) vs the mean of 50 frames (target/), "
        "8-bit gray; the 2-D gray image is restored as it is and compared on gray.",
        "Deraining, `rain100l`: paired input/target; PSNR/SSIM on RGB and on Y (BT.601, the literature's figure).",
        "Dehazing, `sots-outdoor-35`: inputs .jpg, targets .png, same stems; a target whose size differs from its "
        "input is centre-cropped to the input (the notes say how many).",
        "Low light, `lol-eval15`: paired input/target.",
        f"Deblurring, `kodak24-levin8`: each test/kodak24 image convolved (true convolution, reflect padding, "
        f"output the same size) with each of the 8 Levin et al. kernels of `{KERNELS_FILE}` (normalised to sum 1 and "
        f"moved, subpixel, so the centre of mass is the centre pixel, by `degrade.load_kernels`; before 2026-12-04 they "
        f"were not moved, which shifted inputs against targets by up to 4.3 px), plus N(0, ({BLUR_NOISE_SIGMA}/255)^2) noise from "
        "`numpy.random.default_rng(100000 + 1000 * k + i)` (k = kernel number 1-8, i = image index), clipped "
        "to [0, 1], float32. Samples are ordered image-major (image i with kernels 1..8).",
        "Every input is restored twice: `task=\"auto\"` and the true task, `value_range=(0, 1)`, whole image (no "
        "tiling); the sensor reading is `detect(input)`, accuracy = argmax == true task.",
    ]


def convention_lines() -> list[str]:
    return [
        "PSNR/SSIM: full images, no border crop, RGB in [0, 255] (gray for FMD), on uint8-rounded images "
        "round(clip(x, 0, 1) * 255); set figure = mean over images.",
        f"PSNR = 10 log10(255^2 / MSE), capped at {PSNR_CAP:g} dB (identical images give {PSNR_CAP:g}, not inf).",
        "SSIM: skimage.metrics.structural_similarity(data_range=255, channel_axis=-1, gaussian_weights=True, "
        "sigma=1.5, use_sample_covariance=False): Wang et al.'s Gaussian-window SSIM, mean over channels.",
        "Y: ITU-R BT.601 luma, Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (MATLAB rgb2ycbcr), unrounded.",
    ]


# ----------------------------------------------------------------------------- metrics

def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8, the way an image would be saved."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR in dB between two images on the same scale, capped at ``PSNR_CAP``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    if mse <= 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(data_range**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    from skimage.metrics import structural_similarity

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(structural_similarity(a, b, data_range=data_range, channel_axis=-1 if a.ndim == 3 else None,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma (16-235) of an RGB image in [0, 255], as float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


# ----------------------------------------------------------------------------- data

def _image_files(folder: Path) -> list[Path]:
    exts = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
    if not folder.is_dir():
        raise FileNotFoundError(f"test set folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in exts)


def _read(path: Path, gray: bool = False) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L" if gray else "RGB"))


def _centre_crop(img: np.ndarray, h: int, w: int) -> np.ndarray:
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[top:top + h, left:left + w]


def convolve(img: np.ndarray, kernel: torch.Tensor) -> np.ndarray:
    """True 2-D convolution of an H x W x C float image with a k x k kernel, reflect padding,
    same-size output."""
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    k = kernel.reshape(1, 1, *kernel.shape[-2:]).to(torch.float32)
    r = k.shape[-1] // 2
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    xp = F.pad(x, (r, r, r, r), mode=mode)
    weight = k.flip(-2, -1).expand(x.shape[1], 1, -1, -1)  # conv2d correlates: flip for convolution
    y = F.conv2d(xp, weight, groups=x.shape[1])
    return y[0].permute(1, 2, 0).numpy()


@dataclass
class Sample:
    id: str
    load: object  # () -> (degraded float32 in [0, 1], target uint8)


def build_samples(spec: EvalSet, root: Path, limit: int | None = None, notes: list[str] | None = None) -> list[Sample]:
    """The samples of one set as lazy loaders (nothing is read yet). ``limit`` keeps the first
    ``limit`` images of the folder (for ``blur``: those images, each with every kernel)."""
    notes = notes if notes is not None else []
    folder = root / spec.folder
    if spec.kind in ("noise", "blur"):
        files = _image_files(folder)
        if limit:
            files = files[:limit]
        if spec.kind == "noise":
            return [Sample(p.stem, _noise_loader(p, spec.sigma, i)) for i, p in enumerate(files)]
        kernels = load_kernels(root / KERNELS_FILE)
        return [Sample(f"{p.stem}-k{k + 1}", _blur_loader(p, kernels[k, 0], k + 1, i, spec.sigma))
                for i, p in enumerate(files) for k in range(len(kernels))]
    inputs = _image_files(folder / "input")
    targets = {p.stem: p for p in _image_files(folder / "target")}
    missing = [p.name for p in inputs if p.stem not in targets]
    if missing:
        raise FileNotFoundError(f"{folder}/target lacks the targets of {missing[:5]}")
    if limit:
        inputs = inputs[:limit]
    gray = spec.kind == "paired-gray"
    crops = [0]
    samples = [Sample(p.stem, _paired_loader(p, targets[p.stem], gray, crops)) for p in inputs]
    notes.append(lambda: f"{crops[0]} target(s) centre-cropped to the input size" if crops[0] else None)
    return samples


def _noise_loader(path: Path, sigma: float, index: int):
    def load():
        clean = _read(path)
        rng = np.random.default_rng(int(1000 * sigma) + index)
        noisy = clean.astype(np.float32) / 255.0 + np.float32(sigma / 255.0) * rng.standard_normal(clean.shape, dtype=np.float32)
        return np.clip(noisy, 0.0, 1.0).astype(np.float32), clean
    return load


def _blur_loader(path: Path, kernel: torch.Tensor, k: int, index: int, sigma: float):
    def load():
        clean = _read(path)
        blurred = convolve(clean.astype(np.float32) / 255.0, kernel)
        rng = np.random.default_rng(100000 + 1000 * k + index)
        noisy = blurred + np.float32(sigma / 255.0) * rng.standard_normal(blurred.shape, dtype=np.float32)
        return np.clip(noisy, 0.0, 1.0).astype(np.float32), clean
    return load


def _paired_loader(inp: Path, tgt: Path, gray: bool, crops: list[int]):
    def load():
        x, y = _read(inp, gray), _read(tgt, gray)
        if x.shape != y.shape:
            h, w = min(x.shape[0], y.shape[0]), min(x.shape[1], y.shape[1])
            y = _centre_crop(y, h, w)
            x = _centre_crop(x, h, w)  # only when the input is the larger one (not expected)
            crops[0] += 1
        return x.astype(np.float32) / 255.0, y
    return load


# ----------------------------------------------------------------------------- evaluation

def _metrics(img: np.ndarray, target: np.ndarray, y_channel: bool) -> dict[str, float]:
    out = {"psnr": psnr(img, target), "ssim": ssim(img, target)}
    if y_channel:
        yi, yt = rgb_to_y(img), rgb_to_y(target)
        out["y_psnr"], out["y_ssim"] = psnr(yi, yt), ssim(yi, yt)
    return out


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def evaluate_set(restorer, spec: EvalSet, root: Path, limit: int | None = None, progress: bool = True,
                 ensemble: bool = False) -> tuple[dict, list]:
    """Evaluate ``restorer`` on one set (with ``ensemble``, restore with the geometric
    self-ensemble). Returns (summary dict, contact-sheet rows)."""
    from tqdm import tqdm

    start = time.perf_counter()
    notes: list = []
    samples = build_samples(spec, Path(root), limit, notes)
    n = len(samples)
    sheet_at = sorted({round(v) for v in np.linspace(0, n - 1, min(SHEET_ROWS, n))}) if n else []
    images, sheet = [], []
    weight_sum = np.zeros(len(TASKS))
    for index, sample in enumerate(tqdm(samples, desc=spec.name, disable=not progress, file=sys.stderr,
                                        dynamic_ncols=True, mininterval=2.0)):
        degraded, target = sample.load()
        reading = restorer.detect(degraded)
        guess = max(reading, key=reading.get)
        auto = restorer.restore(degraded, task="auto", value_range=(0, 1), ensemble=ensemble)
        true = restorer.restore(degraded, task=spec.task, value_range=(0, 1), ensemble=ensemble)
        degraded8, auto8, true8 = to_uint8(degraded), to_uint8(auto), to_uint8(true)
        record = {"id": sample.id, "sensor": guess, "sensor_weights": {k: round(v, 4) for k, v in reading.items()}}
        for label, img in (("input", degraded8), ("auto", auto8), ("true", true8)):
            for metric, value in _metrics(img, target, spec.y_channel).items():
                record[f"{label}_{metric}"] = round(value, 4)
        images.append(record)
        weight_sum += np.array([reading[t] for t in TASKS])
        if index in sheet_at:
            sheet.append((sample.id, degraded8, auto8, target, record))
    keys = ["input_psnr", "auto_psnr", "true_psnr", "input_ssim", "auto_ssim", "true_ssim"]
    if spec.y_channel:
        keys += [f"{k.split('_')[0]}_y_{k.split('_')[1]}" for k in keys]
    summary = {"task": spec.task, "folder": spec.folder, "kind": spec.kind, "n": n}
    summary.update({k: _mean(r[k] for r in images) for k in keys})
    summary["sensor_accuracy"] = _mean(r["sensor"] == spec.task for r in images)
    summary["sensor_predictions"] = {t: sum(r["sensor"] == t for r in images) for t in TASKS}
    summary["mean_sensor_weights"] = {t: float(w / max(n, 1)) for t, w in zip(TASKS, weight_sum)}
    if spec.sigma:
        summary["sigma"] = spec.sigma
    summary["notes"] = [m for m in (note() if callable(note) else note for note in notes) if m]
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["images"] = images
    return summary, sheet


def evaluate(restorer, root, sets=None, out: str | Path | None = None, limit: int | None = None,
             progress: bool = True, info: dict | None = None, ensemble: bool = False) -> dict:
    """Evaluate ``restorer`` on ``sets`` (names, ``EvalSet``s or "all") found under the data root
    ``root``; with ``out``, write results.md, results.json and the contact sheets there."""
    root = Path(root)
    chosen = select_sets(sets)
    start = time.perf_counter()
    results = {
        "model": restorer.name,
        "trained": restorer.trained,
        "device": str(restorer.device),
        "precision": str(restorer.precision).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "machine": machine_description(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "data_root": str(root),
        "limit": limit,
        "ensemble": ensemble,
        "load_average_at_start": _loadavg(),
        "psnr_cap_db": PSNR_CAP,
        "protocol": protocol_lines(),
        "conventions": convention_lines(),
        **(info or {}),
        "sets": {},
    }
    out = Path(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for spec in chosen:
        summary, sheet = evaluate_set(restorer, spec, root, limit, progress, ensemble)
        if out is not None and sheet:
            summary["contact_sheet"] = contact_sheet(sheet, spec, out / f"{spec.name}.jpg").name
        results["sets"][spec.name] = summary
        if progress:
            print(f"{spec.name}: n={summary['n']} input {summary['input_psnr']:.2f} auto {summary['auto_psnr']:.2f} "
                  f"true {summary['true_psnr']:.2f} dB, sensor {summary['sensor_accuracy']:.3f} "
                  f"({summary['seconds']:.0f} s)", file=sys.stderr, flush=True)
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    results["load_average_at_end"] = _loadavg()
    if out is not None:
        (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
        (out / "results.md").write_text(markdown(results))
    return results


# ----------------------------------------------------------------------------- reports

def machine_description() -> str:
    cpu = cpu_name()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = ""
    if torch.cuda.is_available():
        gpu = ", GPU " + torch.cuda.get_device_name(0)
    return f"{cpu}, {cores} CPU cores available{gpu}; torch {torch.__version__}, {platform.system()}"


def _loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages (other processes sharing the CPU slow a run down)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def table(results: dict) -> str:
    head = ("| set | task | n | input PSNR | auto PSNR | true-task PSNR | input SSIM | auto SSIM | true SSIM "
            "| sensor acc |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for name, s in results["sets"].items():
        rows.append(f"| {name} | {s['task']} | {s['n']} | {s['input_psnr']:.2f} | {s['auto_psnr']:.2f} | "
                    f"{s['true_psnr']:.2f} | {s['input_ssim']:.4f} | {s['auto_ssim']:.4f} | {s['true_ssim']:.4f} | "
                    f"{s['sensor_accuracy']:.3f} |")
        if "input_y_psnr" in s:
            rows.append(f"| {name} (Y) | {s['task']} | {s['n']} | {s['input_y_psnr']:.2f} | {s['auto_y_psnr']:.2f} | "
                        f"{s['true_y_psnr']:.2f} | {s['input_y_ssim']:.4f} | {s['auto_y_ssim']:.4f} | "
                        f"{s['true_y_ssim']:.4f} | {s['sensor_accuracy']:.3f} |")
    return head + "\n".join(rows) + "\n"


def sensor_table(results: dict) -> str:
    head = "| set | true task | " + " | ".join(TASKS) + " |\n|---|---|" + "---:|" * len(TASKS) + "\n"
    rows = [f"| {name} | {s['task']} | " + " | ".join(str(s["sensor_predictions"][t]) for t in TASKS) + " |"
            for name, s in results["sets"].items()]
    return head + "\n".join(rows) + "\n"


def markdown(results: dict) -> str:
    limit = results.get("limit")
    lines = [f"# pip-eval: {results['model']}", ""]
    if limit:
        lines += [f"**Partial run: `--limit {limit}`, only the first {limit} image(s) of each test folder "
                  "(deblurring: those images with all 8 kernels). Not comparable to full-set figures.**", ""]
    if not results.get("trained", True):
        lines += ["**Untrained (random) weights: these numbers are meaningless.**", ""]
    if results.get("ensemble"):
        lines += ["**Self-ensemble (`--ensemble`): every output is the mean of the restorations of 2 to 8 flipped or "
                  "transposed copies (`pip_filters.ensemble`), 2 to 8 times the work of one pass.**", ""]
    if results.get("weights"):
        lines.append(f"- Weights: `{results['weights']}` (sha256 `{results.get('sha256', '?')}`)")
    lines += [
        f"- Command: `{results.get('command', 'evaluate(...)')}`",
        f"- Device: {results['device']} ({results['precision']}, {results['torch_threads']} torch threads); "
        f"machine: {results['machine']}",
        f"- Date: {results['date']}; wall time {results['wall_seconds'] / 60:.1f} min "
        f"(load average 1/5/15 min at start {results.get('load_average_at_start')}, "
        f"at end {results.get('load_average_at_end')})",
        f"- Data: `{results['data_root']}` (test/ only, for evaluation)",
        "",
        "## Protocol (fixed seeds)",
        "",
        *[f"- {line}" for line in results["protocol"]],
        "",
        "## Metrics",
        "",
        *[f"- {line}" for line in results["conventions"]],
        "",
        "## Results" + (f" (--limit {limit})" if limit else ""),
        "",
        "PSNR in dB; auto = `task=\"auto\"` (the sensor's soft weights); true = the set's true task; "
        "sensor acc = fraction of images where argmax of `detect` is the true task.",
        "",
        table(results),
        "Wall seconds per set: " + ", ".join(f"{n} {s['seconds']:.0f}" for n, s in results["sets"].items()) + ".",
        "",
        "## Sensor argmax per set (image counts)",
        "",
        sensor_table(results),
    ]
    notes = [(n, note) for n, s in results["sets"].items() for note in s.get("notes", [])]
    if notes:
        lines += ["## Notes", "", *[f"- {n}: {note}" for n, note in notes], ""]
    sheets = [(n, s["contact_sheet"]) for n, s in results["sets"].items() if s.get("contact_sheet")]
    if sheets:
        lines += ["## Contact sheets (input | output, task=auto | target)", "",
                  *[f"- {n}: [{f}]({f})" for n, f in sheets], ""]
    return "\n".join(lines)


def contact_sheet(rows: list, spec: EvalSet, path: Path) -> Path:
    """input | output(auto) | target for a few samples, JPEG, kept under ``SHEET_MAX_BYTES``."""
    tile = SHEET_TILE
    while True:
        tiles = []
        for sample_id, degraded, auto, target, record in rows:
            images = [Image.fromarray(a).convert("RGB") for a in (degraded, auto, target)]
            scale = min(1.0, tile / max(images[0].size))
            size = (max(1, round(images[0].width * scale)), max(1, round(images[0].height * scale)))
            tiles.append(([im.resize(size, Image.LANCZOS) for im in images], sample_id, record))
        label_h = 14
        width = sum(im.width for im in tiles[0][0]) + 2 * 4
        height = sum(t[0][0].height + label_h + 4 for t in tiles)
        sheet = Image.new("RGB", (max(width, 1), height), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        y = 0
        for ims, sample_id, rec in tiles:
            draw.text((2, y + 1), f"{spec.name} {sample_id}: input {rec['input_psnr']:.2f} dB | "
                                  f"auto ({rec['sensor']}) {rec['auto_psnr']:.2f} dB | target", fill=(0, 0, 0))
            x = 0
            for im in ims:
                sheet.paste(im, (x, y + label_h))
                x += im.width + 4
            y += ims[0].height + label_h + 4
        for quality in (85, 75, 65):
            sheet.save(path, "JPEG", quality=quality, optimize=True)
            if path.stat().st_size < SHEET_MAX_BYTES:
                return path
        tile = int(tile * 0.8)


def compare(folders: list[str | Path]) -> str:
    """A side-by-side Markdown table of several ``results.json`` (same sets, e.g. with and
    without PIP): true-task and auto PSNR / SSIM and sensor accuracy per set and model."""
    runs = []
    for folder in folders:
        path = Path(folder)
        path = path / "results.json" if path.is_dir() else path
        runs.append((path, json.loads(path.read_text())))
    names = [r["model"] for _, r in runs]
    if len(set(names)) < len(names):  # the same model several times: name the runs by how they ran
        names = [f"{r['model']} {r.get('device', '')} {r.get('precision', '')}".strip() for _, r in runs]
    if len(set(names)) < len(names):  # still the same: different weights, named by their folders
        names = [Path(path).parent.name for path, _ in runs]
    limits = {r.get("limit") for _, r in runs}
    lines = ["# pip-eval comparison", ""]
    for name, (path, r) in zip(names, runs):
        lines.append(f"- {name}: `{path}` (weights `{r.get('weights')}`, sha256 `{str(r.get('sha256'))[:12]}`, "
                     f"limit {r.get('limit')}, {r['date']})")
    if len(limits) > 1:
        lines += ["", "**The runs used different --limit values: the rows are not comparable.**"]
    # A protocol line that not every run shares (the deblurring kernels were centred on 2026-12-04,
    # for one) marks the rows of the sets it names: their inputs differ between the runs.
    protocols = [set(r.get("protocol", [])) for _, r in runs]
    differing = set.union(*protocols) - set.intersection(*protocols)
    changed = {name for name in runs[0][1]["sets"] if any(f"`{name}`" in line for line in differing)}
    if changed:
        lines += ["", f"**The runs degraded {', '.join(sorted(changed))} differently (rows marked *, see the "
                  "protocol at the top of each results.md): those rows are not comparable.**"]
    lines += ["", "PSNR (dB) / SSIM with the true task; auto PSNR with task=\"auto\"; sensor accuracy.", ""]
    lines.append("| set | n | " + " | ".join(f"{m} true PSNR | {m} true SSIM" for m in names) + " | "
                 + " | ".join(f"{m} auto PSNR" for m in names) + " | " + " | ".join(f"{m} sensor" for m in names) + " |")
    lines.append("|---|---:|" + "---:|" * (4 * len(names)))
    sets = [name for name in runs[0][1]["sets"] if all(name in r["sets"] for _, r in runs)]
    for name in sets:
        for suffix, label in (("", name), ("_y", f"{name} (Y)")):
            if f"true{suffix}_psnr" not in runs[0][1]["sets"][name]:
                continue
            rows = [r["sets"][name] for _, r in runs]
            ns = sorted({str(row["n"]) for row in rows})
            label += " *" if name in changed else ""
            lines.append(f"| {label} | {'/'.join(ns)} | "
                         + " | ".join(f"{row[f'true{suffix}_psnr']:.2f} | {row[f'true{suffix}_ssim']:.4f}" for row in rows)
                         + " | " + " | ".join(f"{row[f'auto{suffix}_psnr']:.2f}" for row in rows)
                         + " | " + " | ".join(f"{row['sensor_accuracy']:.3f}" for row in rows) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- command line

def _default_data() -> str:
    for candidate in (Path("../shared/data"), Path(__file__).resolve().parents[1].parent / "shared" / "data"):
        if candidate.is_dir():
            return str(candidate)
    return "../shared/data"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None) -> int:
    import pip_filters

    parser = argparse.ArgumentParser(prog="pip-eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", help=f"registry name (default {pip_filters.DEFAULT_MODEL})")
    which.add_argument("--weights", help="a .safetensors weights file (e.g. from pip-train)")
    parser.add_argument("--data", default=None, help="the shared data root (default ../shared/data)")
    parser.add_argument("--sets", default="all", help=f"all, or comma-separated: {', '.join(SETS)}, a task or a folder name")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images of each set (quick checks)")
    parser.add_argument("--out", default=None, help="output folder (default docs/eval/MODEL)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    parser.add_argument("--precision", default="fp32", help="fp32 (default), fp16, bf16 or auto (the device's choice)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all available cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--ensemble", action="store_true",
                        help="restore with the geometric self-ensemble (restore(..., ensemble=True))")
    parser.add_argument("--compare", nargs="+", metavar="DIR",
                        help="evaluate nothing: print (and with --out FILE.md write) a side-by-side table of "
                             "these earlier result folders")
    args = parser.parse_args(argv)
    if args.compare:
        text = compare(args.compare)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text)
        print(text)
        return 0

    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    torch.set_num_threads(max(1, threads))
    info = {"command": "pip-eval " + " ".join(sys.argv[1:] if argv is None else list(argv))}
    if args.weights:
        restorer = pip_filters.load(weights=args.weights, device=args.device, precision=args.precision)
        info.update(weights=str(args.weights), sha256=_sha256(Path(args.weights)))
    else:
        from pip_filters.registry import get_spec
        spec = get_spec(args.model)
        pinned = spec.sha256  # load() checks the file against this pin
        restorer = pip_filters.load(args.model, device=args.device, precision=args.precision)
        info.update(weights=str(spec.weights_path.name), sha256=pinned)
    data = Path(args.data or _default_data())
    out = Path(args.out or Path("docs/eval") / restorer.name)
    results = evaluate(restorer, data, args.sets, out, args.limit, progress=not args.quiet, info=info,
                       ensemble=args.ensemble)
    print(table(results))
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}; wall time {results['wall_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
