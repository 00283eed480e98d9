"""Where a 1080p frame's time goes, part by part: each stage of a model (stem, every encoder and
decoder stage, every PIP block, the middle) and a few single ops at the shapes the model gives
them, timed eager and torch.compile'd, in channels_last and in plain NCHW, beside a copy of the
same bytes (what memory bandwidth alone allows). A whole-network profile (tools/gpu_profile.py)
names fused kernels; this names the parts of the model they came from (issue 6).

    python tools/gpu_blocks.py                         # the default model, fp16, batch 4, 1920x1080
    python tools/gpu_blocks.py --device cpu --size 128x64 --repeats 1    (a dry run on a CPU)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import gpu_profile  # tools/gpu_profile.py, beside this script
from pip_filters.models import layers
from pip_filters.restorer import compile_network


def timer(device: str, repeats: int):
    def measure(fn, *args) -> float:
        """Median milliseconds of fn(*args) after two warm-up calls (which compile, if needed)."""
        for _ in range(2):
            fn(*args)
        times = []
        for _ in range(repeats):
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn(*args)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                start = time.perf_counter()
                fn(*args)
                times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    return measure


def stages(net, x: torch.Tensor, weights: torch.Tensor):
    """(name, module, inputs) for every stage of a PIPNet on a NAFNet backbone, with the real
    intermediate tensors of x."""
    backbone, parts = net.backbone, []

    def add(name, module, *inputs):
        parts.append((name, module, inputs))
        return module(*inputs)

    f = add("intro", backbone.intro, x)
    skips = []
    for level, (encoder, down) in enumerate(zip(backbone.encoders, backbone.downs)):
        f = add(f"encoder {level} ({len(encoder)} blocks, {f.shape[1]} ch, 1/{x.shape[-1] // f.shape[-1]})", encoder, f)
        skips.append(f)
        f = add(f"down {level}", down, f)
    latent = add(f"middle ({len(backbone.middle)} blocks, {f.shape[1]} ch, 1/{x.shape[-1] // f.shape[-1]})", backbone.middle, f)
    skips = [add(f"PIP block {level} ({s.shape[1]} ch, prompt {block.prompt_dim})", block, s, weights)
             for level, (block, s) in enumerate(zip(net.pip, skips))]
    y = latent
    for level in reversed(range(len(skips))):
        y = add(f"up {level}", backbone.ups[level], y) + skips[level]
        y = add(f"decoder {level} ({len(backbone.decoders[level])} blocks)", backbone.decoders[level], y)
    add("ending", backbone.ending, y)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    gpu_profile.add_arguments(parser)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--sections", default="parts,ops,whole",
                        help="parts: each stage of the model; ops: single ops; whole: the whole network, "
                             "eager, compiled plainly and compiled as the restorer compiles on this device")
    args = parser.parse_args()
    torch._dynamo.config.recompile_limit = 64  # Sequential stages share one forward: one compile each
    restorer, x, weights = gpu_profile.model_and_input(args)
    net = restorer.model
    measure = timer(args.device, args.repeats)
    print(f"{args.model} {args.precision} batch {args.batch} {args.size} on "
          f"{torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}, torch {torch.__version__}; ms, median of {args.repeats}")
    sections = args.sections.split(",")
    with torch.inference_mode():
        if "parts" in sections:
            time_parts(net, x, weights, measure, args.no_compile)
        if "ops" in sections:
            time_ops(net, x, measure, args.no_compile)
        if "whole" in sections:
            time_whole(net, x, weights, measure, args.no_compile)


def time_whole(net, x, weights, measure, no_compile: bool) -> None:
    rows = {"eager, channels_last": (net, x), "eager, NCHW": (net, x.contiguous())}
    if not no_compile:
        rows["compiled (torch.compile defaults)"] = (torch.compile(net), x)
        rows["compiled as the restorer does (compile_network)"] = (compile_network(net, None, x.device), x)
    reference = net(x, weights).float()
    print("| whole network | ms per batch | images/s | max abs difference from eager |\n|---|---:|---:|---:|")
    for name, (fn, inputs) in rows.items():
        ms = measure(fn, inputs, weights)
        error = (fn(inputs, weights).float() - reference).abs().max().item()
        print(f"| {name} | {ms:.2f} | {x.shape[0] / ms * 1000:.1f} | {error:.1e} |", flush=True)


def time_parts(net, x, weights, measure, no_compile: bool) -> None:
    parts = stages(net, x, weights)
    eager = [measure(module, *inputs) for _, module, inputs in parts]
    print("| part | eager NHWC | eager NCHW | compiled NHWC | copy of its output |")
    print("|---|---:|---:|---:|---:|")
    for (name, module, inputs), ms in zip(parts, eager):
        plain = [t.contiguous() if t.dim() == 4 else t for t in inputs]
        # Compiling every part costs minutes on a fresh machine: only the parts that matter.
        big = not no_compile and ms >= 0.08 * sum(eager)
        compiled = measure(torch.compile(module), *inputs) if big else float("nan")
        copy = measure(torch.Tensor.clone, module(*inputs))
        print(f"| {name} | {ms:.2f} | {measure(module, *plain):.2f} | {compiled:.2f} | {copy:.2f} |", flush=True)
    print(f"| sum | {sum(eager):.2f} | | | |")


def time_ops(net, x, measure, no_compile: bool) -> None:
    """Single ops at the full-resolution shapes of the first level."""
    c = net.backbone.skip_channels[0]
    f = torch.rand(x.shape[0], c, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
    f = f.contiguous(memory_format=torch.channels_last)
    f2 = torch.cat([f, f], 1).contiguous(memory_format=torch.channels_last)
    conv_in = torch.nn.Conv2d(c, 2 * c, 1).to(f).to(memory_format=torch.channels_last)
    depthwise = torch.nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c).to(f).to(memory_format=torch.channels_last)
    gram_compiled = torch.compile(layers.channel_gram)
    as_mm = torch.compile(conv_in, options={"conv_1x1_as_mm": True})
    weight = conv_in.weight.view(2 * c, c)
    norm = layers.LayerNorm2d(c).to(f)
    ops = {
        "copy of a level-1 feature": (torch.Tensor.clone, f),
        f"1x1 conv {c}->{2 * c}": (conv_in, f),
        f"1x1 conv {c}->{2 * c}, compiled": (torch.compile(conv_in), f),
        f"1x1 conv {c}->{2 * c}, compiled as a matrix product (conv_1x1_as_mm)": (as_mm, f),
        f"1x1 conv {c}->{2 * c}, F.linear over the channels_last pixels": (
            lambda t: F.linear(t.permute(0, 2, 3, 1), weight, conv_in.bias).permute(0, 3, 1, 2), f),
        f"3x3 depthwise conv {2 * c}": (depthwise, f2),
        f"3x3 depthwise conv {2 * c}, NCHW": (depthwise, f2.contiguous()),
        "layer norm, written out, eager": (lambda t: layers.layer_norm_over_channels(t, norm.weight, norm.bias, 1e-6), f),
        "layer norm, written out, compiled": (torch.compile(lambda t: layers.layer_norm_over_channels(t, norm.weight, norm.bias, 1e-6)), f),
        "channel gram, chunked, eager": (layers.channel_gram, f, f),
        "channel gram, chunked, compiled": (gram_compiled, f, f),
        "channel gram, one fp16 bmm": (lambda q, k: torch.bmm(q.flatten(2), k.flatten(2).transpose(1, 2)), f, f),
        "unit channels (norm over pixels), compiled": (torch.compile(layers._unit_channels), f),
        "global average pool": (lambda t: F.adaptive_avg_pool2d(t, 1), f),
    }
    print("| op | ms |\n|---|---:|")
    for name, (fn, *inputs) in ops.items():
        if no_compile and "compiled" in name:
            continue
        print(f"| {name} | {measure(fn, *inputs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
