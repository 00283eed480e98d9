"""How realistic are the synthetic degradations? Statistics next to the real inputs.

Degrades full-size ``train/cbsd432`` images with ``training.degrade`` and prints, per task,
the statistics of the synthetic inputs beside those of the real test inputs (Rain100L,
SOTS-outdoor, LOL, FMD). The test sets are only *looked at* here, to check that the
synthesis looks like the real thing; nothing is trained or selected on them.

Also writes one contact sheet per task into ``docs/synthesis/`` (top row synthetic, bottom
row real; ``--no-real`` leaves the real row out).

    python -m training.synthesis_report [--data ../shared/data] [--n 96] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import random
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import degrade as D
from .data import decode_rgb, fluorescence_like, list_images

REPO = Path(__file__).resolve().parents[1]
TILE = 160


def to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1).float().div(255)


def load_pairs(root: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    targets = {f.stem: f for f in list_images(root / "target")}
    return [(to_tensor(decode_rgb(f)), to_tensor(decode_rgb(targets[f.stem])))
            for f in list_images(root / "input") if f.stem in targets]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """RGB PSNR on [0, 255]-equivalent scale, full image (inputs are 8-bit-rounded first)."""
    a, b = (a * 255).round(), (b * 255).round()
    return float(10 * torch.log10(255**2 / ((a - b) ** 2).mean().clamp_min(1e-10)))


def gray(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]


def hp_noise(x: torch.Tensor) -> float:
    """Noise estimate: std of the image minus its 3x3 median (per channel)."""
    patches = F.unfold(x.unsqueeze(0), 3, padding=1).view(3, 9, *x.shape[-2:])
    return float((x - patches.median(dim=1).values)[:, 1:-1, 1:-1].std())


def stats(pairs, name: str, fns: dict) -> dict[str, np.ndarray]:
    return {k: np.array([fn(inp, tgt) for inp, tgt in pairs]) for k, fn in fns.items()}


def fmt(v: np.ndarray) -> str:
    return f"{v.mean():7.3f} ± {v.std():6.3f}  [{v.min():7.3f}, {v.max():7.3f}]"


def table(title: str, columns: list[tuple[str, dict]]) -> None:
    """Print ``mean ± std [min, max]`` of each statistic for each named column."""
    print(f"\n== {title}: " + " vs ".join(f"{name} (n={len(next(iter(st.values())))})" for name, st in columns))
    for k in columns[0][1]:
        print(f"  {k:<20}" + "".join(f"  {name[:5]:>5} {fmt(st[k])}" for name, st in columns if k in st))


def crops(images: list[torch.Tensor], k: int, seed: int) -> list[torch.Tensor]:
    """``k`` TILE x TILE crops from ``k`` different images (resized down if huge)."""
    rng = random.Random(seed)
    out = []
    for x in rng.sample(images, min(k, len(images))):
        if min(x.shape[-2:]) > 3 * TILE:  # large real photos: shrink so a crop shows something
            s = 2 * TILE / min(x.shape[-2:])
            x = F.interpolate(x.unsqueeze(0), scale_factor=s, mode="area")[0]
        h, w = x.shape[-2:]
        t, l = rng.randrange(0, max(1, h - TILE)), rng.randrange(0, max(1, w - TILE))
        out.append(x[:, t:t + TILE, l:l + TILE])
    return out


def save_sheet(path: Path, rows: list[list[torch.Tensor]]) -> None:
    """Rows of tiles into one PNG; palette-quantised if the RGB file would exceed 300 KB."""
    sheet = Image.new("RGB", (TILE * max(len(r) for r in rows), TILE * len(rows)))
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            a = (tile.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            sheet.paste(Image.fromarray(a), (j * TILE, i * TILE))
    buf = io.BytesIO()
    sheet.save(buf, "PNG", optimize=True)
    if buf.tell() > 300_000:
        sheet = sheet.quantize(256, method=Image.Quantize.MEDIANCUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, "PNG", optimize=True)
    print(f"  wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--n", type=int, default=96, help="cbsd432 images to degrade")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "synthesis")
    ap.add_argument("--no-sheets", action="store_true")
    ap.add_argument("--no-real", action="store_true", help="contact sheets without the real row")
    args = ap.parse_args()
    data = args.data
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    files = random.Random(args.seed).sample(list_images(data / "train" / "cbsd432"), args.n)
    arrays = [decode_rgb(f) for f in files]
    arrays = [a.transpose(1, 0, 2) if a.shape[0] > a.shape[1] else a for a in arrays]
    h = min(a.shape[0] for a in arrays)
    w = min(a.shape[1] for a in arrays)
    clean = torch.stack([to_tensor(np.ascontiguousarray(a[:h, :w])) for a in arrays])
    # the default model's training pool (its config leaves out the kernels that are test kernels)
    pool = tomllib.loads((REPO / "training" / "configs" / "pip-nafnet-s.toml").read_text())["data"]
    kernels = D.load_kernels(data / pool["kernels"], skip=pool.get("kernels_skip", ()))

    def synth(fn) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = torch.cat([fn(c) for c in clean.split(16)])
        out = (out * 255).round() / 255   # as if saved as 8-bit, like the real inputs
        return list(zip(out, clean))

    sheets: dict[str, list[list[torch.Tensor]]] = {}

    def sheet(task, syn, real_imgs):
        rows = [crops([s for s, _ in syn], 4, args.seed)]
        if real_imgs and not args.no_real:
            rows.append(crops(real_imgs, 4, args.seed))
        sheets[task] = rows

    # rain vs Rain100L
    rain_fns = {
        "PSNR (dB)": lambda i, t: psnr(i, t),
        "frac px +>0.05": lambda i, t: float(((i - t).mean(0) > 0.05).float().mean()),
        "streak amplitude": lambda i, t: float((i - t).mean(0)[(i - t).mean(0) > 0.05].mean().nan_to_num()),
        "diff p99.5": lambda i, t: float(torch.quantile((i - t).mean(0).flatten()[::7], 0.995)),
        "frac px ->0.05": lambda i, t: float(((i - t).mean(0) < -0.05).float().mean()),
    }
    syn = synth(lambda c: D.rain(c, generator=g))
    real = load_pairs(data / "test" / "rain100l")
    table("rain", [("synthetic", stats(syn, "rain", rain_fns)), ("real test/rain100l", stats(real, "rain", rain_fns))])
    sheet("rain", syn, [i for i, _ in real])

    # haze vs SOTS-outdoor
    haze_fns = {
        "PSNR (dB)": lambda i, t: psnr(i, t),
        "input mean": lambda i, t: float(i.mean()),
        "input contrast": lambda i, t: float(gray(i).std()),
        "contrast ratio in/gt": lambda i, t: float(gray(i).std() / gray(t).std()),
        "input dark channel": lambda i, t: float(i.amin(0).mean()),
    }
    syn = synth(lambda c: D.haze(c, generator=g))
    real = load_pairs(data / "test" / "sots-outdoor-35")
    table("haze", [("synthetic", stats(syn, "haze", haze_fns)), ("real test/sots-outdoor-35", stats(real, "haze", haze_fns))])
    sheet("haze", syn, [i for i, _ in real])
    syn128 = [(D.haze(c.unsqueeze(0)[..., :128, :128], generator=g)[0], c[..., :128, :128]) for c in clean[:48]]
    print(f"  (on 128 px training crops: PSNR {fmt(stats(syn128, 'h', {'p': lambda i, t: psnr(i, t)})['p'])})")

    # low light vs LOL
    low_fns = {
        "PSNR (dB)": lambda i, t: psnr(i, t),
        "input mean": lambda i, t: float(i.mean()),
        "input contrast": lambda i, t: float(gray(i).std()),
        "noise (hp std)": lambda i, t: hp_noise(i),
        "gray levels used": lambda i, t: float(len(torch.unique((gray(i) * 255).round()))),
    }
    syn = synth(lambda c: D.underexpose(c, generator=g))
    real = load_pairs(data / "test" / "lol-eval15")
    real_train = load_pairs(data / "train" / "lol-train-50")
    table("low light", [("synthetic", stats(syn, "low", low_fns)), ("real test/lol-eval15", stats(real, "low", low_fns)),
                        ("train/lol-train-50", stats(real_train, "low", low_fns))])
    sheet("lowlight", syn, [i for i, _ in real])

    # noise: Gaussian (no real counterpart) and Poisson-Gaussian vs FMD confocal
    noise_fns = {"PSNR (dB)": lambda i, t: psnr(i, t), "residual std": lambda i, t: float((i - t).std())}
    syn_g = synth(lambda c: D.gaussian_noise(c, generator=g))
    table("gaussian noise (no real counterpart)", [("synthetic", stats(syn_g, "n", noise_fns))])
    syn_pg = synth(lambda c: D.poisson_gaussian_noise(c, generator=g))
    real = load_pairs(data / "test" / "fmd-confocal-20")
    fmd_fns = dict(noise_fns, **{"input mean": lambda i, t: float(i.mean())})
    table("poisson-gaussian", [("synthetic", stats(syn_pg, "n", fmd_fns)), ("real test/fmd-confocal-20", stats(real, "n", fmd_fns))])
    # FMD is dark (mean ~0.04): compare at its brightness too
    dark = synth(lambda c: D.poisson_gaussian_noise(c * 0.1, generator=g))
    dark = [(i, t * 0.1) for i, _t in dark for t in [_t]]
    table("poisson-gaussian at FMD brightness (clean * 0.1)", [("synthetic", stats(dark, "n", fmd_fns))])
    sheet("noise", syn_g[:len(syn_g) // 2] + syn_pg[len(syn_pg) // 2:], [i for i, _ in real])

    # microscope frames (fluorescence-like crops + microscope_noise) vs FMD's raw frames, on the
    # inputs alone: how much of the frame sits at the dark floor, the tail above it, the spread
    # of a photon's pulse onto its neighbour along rows and columns
    def dark(i):  # the darkest 30 % of the frame, by a 15 px local mean
        m = F.avg_pool2d(gray(i)[None, None], 15, 1, 7, count_include_pad=False)[0, 0]
        return gray(i) * 255, m <= torch.quantile(m.flatten()[::3], 0.3)

    def floor_share(i, t):
        x, _ = dark(i)
        return float((x <= x.min() + 1).float().mean())

    def level_ratio(i, t):  # how fast the dark pixels' histogram falls, 6 to 9 levels above the floor
        x, bg = dark(i)
        h = torch.bincount((x[bg] - x.min()).round().long().clamp(0, 20), minlength=21).float()
        return float((h[7:10] / h[6:9].clamp_min(1)).mean())

    def lag1(i, dim):
        x, bg = dark(i)
        both = bg.narrow(dim, 1, bg.shape[dim] - 1) & bg.narrow(dim, 0, bg.shape[dim] - 1)
        d = (x.narrow(dim, 1, x.shape[dim] - 1) - x.narrow(dim, 0, x.shape[dim] - 1))[both]
        return float(1 - d.var() / (2 * x[bg].var()))

    micro_fns = {"input mean": lambda i, t: float(i.mean()), "pixels at the floor": floor_share,
                 "dark tail ratio": level_ratio, "lag-1 corr rows": lambda i, t: lag1(i, 1),
                 "lag-1 corr cols": lambda i, t: lag1(i, 0)}
    fluorescent = torch.cat([fluorescence_like(c, g) for c in clean.split(16)])

    def microscope(**ranges):
        noisy = [D.microscope_noise(c, g, **ranges)[0] for c in fluorescent.split(16)]
        return list(zip(torch.cat(noisy), fluorescent))

    syn_fit, syn_range = microscope(**D.FMD_CONFOCAL_LEVEL), microscope()
    table("microscope frames", [("fitted level", stats(syn_fit, "m", micro_fns)),
                                ("training ranges", stats(syn_range, "m", micro_fns)),
                                ("real test/fmd-confocal-20", stats(real, "m", micro_fns))])
    sheet("microscope", syn_fit[:len(syn_fit) // 2] + syn_range[len(syn_range) // 2:], [i for i, _ in real])

    # blur: no real pairs outside the test kernels; show real blurry photos for the eye
    blur_fns = {"PSNR (dB)": lambda i, t: psnr(i, t),
                "grad energy ratio": lambda i, t: float((i.diff(dim=-1) ** 2).mean() / (t.diff(dim=-1) ** 2).mean())}
    syn = synth(lambda c: D.blur(c, kernels, generator=g))
    table("blur (no real pairs; USRNet12 + random shake kernels)", [("synthetic", stats(syn, "b", blur_fns))])
    real_blur = [to_tensor(decode_rgb(f)) for f in list_images(data / "real" / "blur")]
    sheet("blur", syn, real_blur)

    if not args.no_sheets:
        print()
        for task, rows in sheets.items():
            save_sheet(args.out / f"{task}.png", rows)


if __name__ == "__main__":
    main()
