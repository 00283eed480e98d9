"""pip-restore: restore image files with PIP.

    pip-restore photo.jpg scans/ -o restored/ [--task auto|denoise|derain|dehaze|deblur|lowlight]

One output per input, same file name and format, in OUTDIR (files found in a folder keep their
place below it). Inputs are never overwritten;
existing outputs only with --overwrite.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from .image_io import is_image, read_image, write_image
from .registry import DEFAULT_MODEL, list_models
from .tasks import TASKS, task_weights


def collect_inputs(paths: list[Path], outdir: Path) -> dict[Path, Path]:
    """Each input file and the output it is restored to: a file given by name goes into OUTDIR
    by its name, a file found in a folder keeps its place below that folder (so a/x.png and b/x.png
    cannot overwrite each other). When OUTDIR lies inside an input folder, the files in OUTDIR are not
    inputs (a rerun must not restore its own outputs)."""
    outdir = outdir.resolve()
    pairs = {}
    for path in paths:
        if path.is_dir():
            root = path.resolve()
            skip = outdir if outdir != root and outdir.is_relative_to(root) else None
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image(p)
                           and not (skip and p.resolve().is_relative_to(skip)))
            pairs.update((p, outdir / p.relative_to(path)) for p in found)
        elif path.is_file():
            pairs[path] = outdir / path.name
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    targets = {}
    for source, target in pairs.items():
        if target in targets:
            raise ValueError(f"{targets[target]} and {source} would both be written to {target}")
        targets[target] = source
    return pairs


def parse_task(text: str):
    """'auto', 'derain', or a mixture 'derain=0.6,dehaze=0.4'."""
    if "=" not in text:
        return text
    return {name.strip(): float(value) for name, value in (part.split("=") for part in text.split(","))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pip-restore", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders (PNG, JPEG, TIFF, ...)")
    parser.add_argument("-o", "--outdir", type=Path, required=True, help="folder for the restored files")
    parser.add_argument("--task", default="auto", help=f"auto, one of {', '.join(TASKS)}, or a mix like derain=0.6,dehaze=0.4")
    parser.add_argument("--model", default=None, help=f"one of {', '.join(list_models())} (default {DEFAULT_MODEL})")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the network: faster for many images of one size after a one-off compile")
    parser.add_argument("--tile", type=int, default=None, help="tile size in pixels for large images")
    parser.add_argument("--strength", type=float, default=1.0, help="0 keeps the input, 1 restores fully")
    parser.add_argument("--ensemble", action="store_true",
                        help="also restore flipped (and where the task allows, transposed) copies and average:"
                             " better, 2 to 8 times slower")
    parser.add_argument("--json", action="store_true", help="print the detected degradation weights per file as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files in OUTDIR (never inputs)")
    args = parser.parse_args(argv)

    from . import load  # torch import is slow: only after the arguments are known good
    from .restorer import UntrainedModelError

    try:
        files = collect_inputs(args.inputs, args.outdir)
        task = parse_task(args.task)
        task_weights(task)  # refuse an unknown task before any work
        restorer = load(args.model, device=args.device, precision=args.precision, compile=args.compile)
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f"pip-restore: error: {error}\n")
    except UntrainedModelError as error:
        parser.exit(2, f"pip-restore: error: {error}. Choose a trained model with --model.\n")
    if not files:
        parser.exit(2, "pip-restore: error: no images found in the inputs\n")
    inputs = {f.resolve() for f in files}
    report, failures = {}, 0
    for path, target in tqdm(files.items(), desc="restoring", unit="image", file=sys.stderr, disable=len(files) < 2):
        if target.resolve() in inputs:
            tqdm.write(f"skipped {path}: its output would overwrite an input", file=sys.stderr)
            failures += 1
            continue
        if target.exists() and not args.overwrite:
            tqdm.write(f"skipped {path}: {target} exists (use --overwrite)", file=sys.stderr)
            failures += 1
            continue
        try:
            image = read_image(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            restored = restorer.restore(image.array, task=task, strength=args.strength, tile=args.tile,
                                        channel_axis=image.channel_axis, ensemble=args.ensemble)
            write_image(target, image, restored)
            if args.json:
                report[str(path)] = restorer.detect(image.array, channel_axis=image.channel_axis)
        except Exception as error:  # one bad file must not stop the others
            tqdm.write(f"failed {path}: {error}", file=sys.stderr)
            failures += 1
    if args.json:
        print(json.dumps(report, indent=2))
    print(f"restored {len(files) - failures} of {len(files)} images into {args.outdir}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
