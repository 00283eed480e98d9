"""pip-bench: how fast each model runs, side by side, in one table on one machine.

    pip-bench                                   # CPU: 512x512, 2 threads; GPU: 1920x1080
    pip-bench --models pip-nafnet-t --modes eager --precisions fp32 --markdown speed.md

For each model, mode (eager, torch.compile, or "graphs": torch.compile replaying CUDA graphs),
precision and batch size it reports parameters, GFLOPs per megapixel (convolutions and matrix
products, counted by torch's FlopCounterMode), images/s of the network alone (input already on the
device and padded as restore() pads it, task given, so no sensor), peak memory, the throughput
relative to the paper-size pip-restormer, and how far the output is from the eager float32 output
on the same input (a wrong fast path shows as WRONG, never as a speed).
Every row runs in a fresh process, so compile caches in memory and peak memory do not leak from
one row into the next. Timing: warm-up calls first (they include compiling), then the median of
``--repeats`` timed calls, with the device synchronised around each.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import time
import warnings
from datetime import date

from .hardware import device_name
from .registry import DEFAULT_MODEL

PAPER_MODEL = "pip-restormer"
DEFAULT_MODELS = ("pip-nafnet-t", DEFAULT_MODEL, PAPER_MODEL)
COMPILE_MODES = {"eager": False, "compiled": True, "graphs": "reduce-overhead"}
# "ValueError: ...", "torch._dynamo.exc.Unsupported: ...": a traceback's exception lines.
EXCEPTION_LINE = re.compile(r"^(\w+\.)*\w*(Error|Exception|Unsupported|Exit):( |$)")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gflops_per_megapixel(model, device) -> float:
    """Convolution and matrix-product FLOPs (multiply-add = 2) for one megapixel, from a 256 x 256
    input: every layer of these models costs in proportion to the pixel count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, 256, 256, device=device, dtype=next(model.parameters()).dtype)
    weights = torch.full((1, 5), 0.2, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x.contiguous(memory_format=torch.channels_last), weights)
    return counter.get_total_flops() / 1e9 / (256 * 256 / 1e6)


def run_row(spec: dict) -> dict:
    """Time one configuration in this process; returns the measured row."""
    import torch

    import pip_filters
    from pip_filters.tiling import pad_to_multiple

    torch.set_num_threads(spec["threads"])
    device = pip_filters.restorer.pick_device(spec["device"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights for models without shipped ones: speed only
        restorer = pip_filters.load(spec["model"], device=str(device), precision=spec["precision"],
                                    allow_untrained=True, compile=COMPILE_MODES[spec["mode"]])
        reference = pip_filters.load(spec["model"], device=str(device), precision="fp32", allow_untrained=True)
    restorer.model.load_state_dict(reference.model.state_dict())  # same (possibly random) weights
    height, width = spec["height"], spec["width"]
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(spec["batch"], 3, height, width, generator=generator)
    weights = torch.softmax(torch.randn(spec["batch"], 5, generator=generator) * 3, dim=1).to(device)
    # Padded to the model's multiple, as restore() pads (1080 rows: 1088 for a model of multiple 16).
    x, _ = pad_to_multiple(restorer._input(images), restorer.model.multiple)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        memory_before = torch.cuda.memory_allocated(device)

    with torch.inference_mode():
        start = time.perf_counter()
        out = restorer.network(x, weights)
        _sync(device)
        first_call = time.perf_counter() - start
        out = out.clone()  # a CUDA graph's next replay overwrites its output
        for _ in range(spec["warmup"]):
            restorer.network(x, weights)
        _sync(device)
        times = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            restorer.network(x, weights)
            _sync(device)
            times.append(time.perf_counter() - start)
        if device.type == "cuda":
            peak_mib = (torch.cuda.max_memory_allocated(device) - memory_before) / 2**20
        else:  # ru_maxrss is in KiB on Linux: the growth of this process's peak while it ran
            peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        expected = reference.network(pad_to_multiple(reference._input(images), reference.model.multiple)[0], weights).float()
        out = out.float()
    error = ((out - expected).norm() / expected.norm()).item()
    seconds = statistics.median(times)
    return {**spec, "device_name": device_name(device), "params_m": sum(p.numel() for p in restorer.model.parameters()) / 1e6,
            "gflops_per_mp": gflops_per_megapixel(reference.model, device), "seconds": seconds,
            "images_per_s": spec["batch"] / seconds, "first_call_s": first_call, "peak_mib": peak_mib,
            "relative_error": error, "finite": bool(torch.isfinite(out).all())}


def _run_in_subprocess(spec: dict, timeout: float) -> dict:
    command = [sys.executable, "-m", "pip_filters.bench", "--row", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "failed": f"over {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    print("\n".join(f"    {line}" for line in done.stderr.splitlines()[-60:]), file=sys.stderr, flush=True)
    return {**spec, "failed": failure_message(done.stderr)}


def failure_message(stderr: str) -> str:
    """The line of a failed row's stderr that names the exception. The log gets the whole error;
    the table gets this, since compilers end theirs with hints ("Set TORCHDYNAMO_VERBOSE=1 ...")
    that say nothing of the cause."""
    lines = stderr.strip().splitlines() or ["no output"]
    raised = [line for line in lines if EXCEPTION_LINE.match(line)]
    return (raised or lines)[-1][:200]


def _verdict(row: dict) -> str:
    # bf16/fp16 land near 1e-2 of the float32 output; far beyond that, or NaN, is a broken path.
    limit = 1e-4 if row["precision"] == "fp32" else 5e-2
    if not row["finite"] or not row["relative_error"] <= limit:
        return f"WRONG ({row['relative_error']:.1e})"
    return f"{row['relative_error']:.0e}"


def format_table(rows: list[dict]) -> str:
    paper = {(r["mode"], r["precision"], r["batch"]): r["images_per_s"] for r in rows
             if r["model"] == PAPER_MODEL and "failed" not in r}
    lines = ["| model | params (M) | GFLOPs/MP | mode | precision | batch | ms/batch | images/s | "
             "x pip-restormer | first call (s) | peak memory (MiB) | error vs eager fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['model']} |"
        setting = f" {r['mode']} | {r['precision']} | {r['batch']} |"
        if "failed" in r:
            lines.append(f"{head} | |{setting} failed: {r['failed']} | | | | | |")
            continue
        ratio = paper.get((r["mode"], r["precision"], r["batch"]))
        ratio_text = f"{r['images_per_s'] / ratio:.1f}" if ratio else ""
        wrong = _verdict(r).startswith("WRONG")
        speed = "-" if wrong else f"{r['images_per_s']:.2f}"
        lines.append(f"{head} {r['params_m']:.2f} | {r['gflops_per_mp']:.0f} |{setting} {r['seconds'] * 1000:.0f} | "
                     f"{speed} | {'' if wrong else ratio_text} | {r['first_call_s']:.1f} | {r['peak_mib']:.0f} | {_verdict(r)} |")
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pip-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--size", type=_size, default=None, help="WIDTHxHEIGHT (default 512x512 on CPU, 1920x1080 on GPU)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--modes", default="eager,compiled", help="eager, compiled (torch.compile) and/or graphs (torch.compile with CUDA graphs)")
    parser.add_argument("--precisions", default=None, help="default fp32,bf16 on CPU; fp32,fp16,bf16 on GPU")
    parser.add_argument("--batches", default=None, help="default 1 on CPU; 1,2,4,8 on GPU")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed per row")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    parser.add_argument("--json", default=None, help="also write every row to this file")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)  # internal: one row, in this process
    args = parser.parse_args(argv)
    if args.row:
        print(json.dumps(run_row(json.loads(args.row))))
        return 0

    import torch

    from .restorer import pick_device

    device = pick_device(args.device)
    gpu = device.type == "cuda"
    width, height = args.size or ((1920, 1080) if gpu else (512, 512))
    precisions = (args.precisions or ("fp32,fp16,bf16" if gpu else "fp32,bf16")).split(",")
    batches = [int(b) for b in (args.batches or ("1,2,4,8" if gpu else "1")).split(",")]
    rows = []
    for model in args.models.split(","):
        for mode in args.modes.split(","):
            for precision in precisions:
                for batch in batches:
                    spec = {"model": model, "mode": mode, "precision": precision, "batch": batch,
                            "device": str(device), "width": width, "height": height, "threads": args.threads,
                            "repeats": args.repeats, "warmup": args.warmup}
                    row = _run_in_subprocess(spec, args.timeout)
                    rows.append(row)
                    shown = row.get("failed") or f"{row['images_per_s']:.2f} images/s, {_verdict(row)}"
                    print(f"{model} {mode} {precision} batch {batch}: {shown}", file=sys.stderr, flush=True)
    name = next((r["device_name"] for r in rows if "device_name" in r), str(device))
    title = (f"{width}x{height}, {name}, torch {torch.__version__}"
             f"{'' if gpu else f', {args.threads} threads'}, median of {args.repeats}, {date.today()}")
    table = f"{title}\n\n{format_table(rows)}\n"
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"`pip-bench {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n{table}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
