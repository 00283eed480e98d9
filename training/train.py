"""pip-train: train a PIP model on the five degradations, on one device or many (torchrun).

    pip-train training/configs/pip-nafnet-s.toml [--resume runs/pip-nafnet-s/last.safetensors]
    pip-train training/configs/pip-nafnet-s.toml --init pip_filters/weights/pip-nafnet-s.safetensors \
        --set train.lr=5e-4 --set train.warmup=100   # a new schedule from trained weights
    torchrun --nproc_per_node 8 -m pip_filters.training.train CONFIG

Short and linear on purpose (in the spirit of nanoGPT): read the config, build data and model,
loop, checkpoint, export. Data lives on the device and is degraded there (see data.py).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import sys
import time
import tomllib
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pip_filters.hardware import device_name
from pip_filters.models import build_model, count_parameters
from pip_filters.registry import get_spec
from pip_filters.tasks import TASKS
from pip_filters.weights_io import file_sha256, load_weights

from .checkpoint import load_checkpoint, read_run, save_checkpoint
from .data import ImageBank, PairedBank, TrainingBatcher, list_images, split_files
from .degrade import load_kernels
from .export import export_checkpoint


class TrainStep(nn.Module):
    """One forward pass that yields every loss, so DistributedDataParallel sees all parameters."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, degraded, clean, task_ids):
        weights = F.one_hot(task_ids, len(TASKS)).float()
        restored = self.model(degraded, weights)
        logits = self.model.sensor(degraded)
        pixel = torch.sqrt((restored.float() - clean) ** 2 + 1e-6).mean()  # Charbonnier
        # An undegraded crop (data.clean_share) shows no sign of its label: the sensor does not learn from it.
        informative = (degraded != clean).flatten(1).any(dim=1).float()
        per_crop = F.cross_entropy(logits.float(), task_ids, reduction="none")
        sensor = (per_crop * informative).sum() / informative.sum().clamp_min(1.0)
        return pixel, sensor, self.model.prompt_separation_loss()


def learning_rate(step: int, cfg: dict, total: int) -> float:
    if step < cfg["warmup"]:
        return cfg["lr"] * (step + 1) / cfg["warmup"]
    progress = min(1.0, (step - cfg["warmup"]) / max(1, total - cfg["warmup"]))
    return cfg["min_lr"] + 0.5 * (cfg["lr"] - cfg["min_lr"]) * (1 + math.cos(math.pi * progress))


def apply_overrides(cfg: dict, assignments: list[str]) -> dict:
    """Apply SECTION.KEY=VALUE overrides (VALUE in TOML syntax; a bare word is a string)."""
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        section, dot, name = key.strip().partition(".")
        if not (sep and dot) or section not in cfg or name not in cfg[section]:
            raise SystemExit(f"--set {assignment!r}: expected SECTION.KEY=VALUE with a key the config has")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        cfg[section][name] = value
    return cfg


def _splits(data: dict, root: Path):
    """The training and held-out clean files and low-light stems (the same split every run)."""
    clean_files = [f for folder in data["clean"] for f in list_images(root / folder)]
    train_clean, val_clean = split_files(clean_files, data["val_fraction"], seed=0)
    train_stems = val_stems = None
    if data.get("lowlight_pairs"):
        stems = [p.stem for p in list_images(root / data["lowlight_pairs"] / "target")]
        train_stems, val_stems = split_files(stems, data["val_fraction"], seed=0)
    kernels = load_kernels(root / data["kernels"], skip=data.get("kernels_skip", ())) if data.get("kernels") else None
    return (train_clean, train_stems), (val_clean, val_stems), kernels


def _batcher(data: dict, root: Path, files, stems, kernels, device, **options) -> TrainingBatcher:
    pairs = None
    if stems is not None:
        pair_root = root / data["lowlight_pairs"]
        pairs = PairedBank(pair_root / "input", pair_root / "target", device, stems=stems)
    return TrainingBatcher(ImageBank(files, device), pairs, kernels, device=device, **options)


def validation_batches(data: dict, root: Path, device, crop: int | None = None, count: int = 4,
                       seed: int = 12345, **options) -> list:
    """A fixed validation set from the held-out part of train/ (test/ is never used here): ``count``
    batches of 40 crops, every task equally often unless ``options`` (TrainingBatcher's) say
    otherwise, ``crop`` px (by default the config's ``val_crop``, else its training crop: a run that
    trains on larger crops still validates on the crops earlier runs did, so their figures compare)."""
    _, (val_clean, val_stems), kernels = _splits(data, root)
    crop = crop or data.get("val_crop", data["crop"])
    val = _batcher(data, root, val_clean, val_stems, kernels, device, crop=crop, seed=seed, **options)
    return [val.next(40) for _ in range(count)]


def microscopy_batches(data: dict, root: Path, device) -> list:
    """Held-out crops made fluorescence-like, with microscope noise (degrade.microscope_noise): 2 batches
    of 40, all labelled denoise. The plain validation mixes these into its denoise figure; this set
    shows on its own what the napari users' images get (FMD is test data, never used here)."""
    return validation_batches(data, root, device, count=2, seed=54321, task_probs=[1, 0, 0, 0, 0],
                              fluorescence_fraction=1.0)


def build_data(data: dict, root: Path, device, seed: int, rank: int):
    (train_clean, train_stems), (val_clean, _), kernels = _splits(data, root)
    # These settings shift what is trained on; validation stays as it was, so runs compare.
    train = _batcher(data, root, train_clean, train_stems, kernels, device, task_probs=data.get("task_probs"),
                     heavy_rain_share=data.get("heavy_rain_share", 0.0), clean_share=data.get("clean_share", 0.0),
                     fluorescence_fraction=data.get("fluorescence_fraction", 0.3),
                     gaussian_prob=data.get("gaussian_prob", 0.75), real_lowlight_gain=data.get("real_lowlight_gain", 1.0),
                     real_lowlight_fraction=data.get("real_lowlight_fraction", 0.5), crop=data["crop"], seed=seed + 1000 * rank)
    return train, validation_batches(data, root, device), {"train_clean": len(train_clean), "val_clean": len(val_clean)}


def crop_psnr(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of each crop of a batch in [0, 1]; the output is clamped to that range first."""
    mse = ((restored.float().clamp(0, 1) - clean) ** 2).mean((1, 2, 3)).clamp_min(1e-10)
    return -10 * torch.log10(mse)


@torch.no_grad()
def task_psnr(model: nn.Module, batches, weights_of, precision=torch.float32) -> list[float]:
    """Mean PSNR per task of restoring the batches with ``weights_of(degraded, ids)`` as the prompt."""
    total = torch.zeros(len(TASKS), dtype=torch.float64)
    count = torch.zeros(len(TASKS), dtype=torch.float64)
    for degraded, clean, ids in batches:
        with torch.autocast(degraded.device.type, dtype=precision, enabled=precision != torch.float32):
            restored = model(degraded, weights_of(degraded, ids))
        psnr = crop_psnr(restored, clean).double().cpu()
        total.index_add_(0, ids.cpu(), psnr)
        count.index_add_(0, ids.cpu(), torch.ones_like(psnr))
    return [round(float(v), 3) for v in total / count.clamp_min(1)]


@torch.no_grad()
def sensor_accuracy(sensor: nn.Module, batches, precision=torch.float32) -> float:
    correct = total = 0
    for degraded, _, ids in batches:
        with torch.autocast(degraded.device.type, dtype=precision, enabled=precision != torch.float32):
            correct += int((sensor(degraded).argmax(-1) == ids).sum())
        total += len(ids)
    return correct / total


def validate(model: nn.Module, batches, precision, microscopy=()) -> dict:
    true_prompt = lambda degraded, ids: F.one_hot(ids, len(TASKS)).float()  # noqa: E731
    psnr = task_psnr(model, batches, true_prompt, precision)
    result = {f"psnr_{t}": v for t, v in zip(TASKS, psnr)}
    if microscopy:
        result["psnr_microscopy"] = task_psnr(model, microscopy, true_prompt, precision)[TASKS.index("denoise")]
    result["sensor_accuracy"] = round(sensor_accuracy(model.sensor, batches, precision), 4)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pip-train", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a TOML file in training/configs/")
    parser.add_argument("--resume", type=Path, help="checkpoint to continue from (exact resume)")
    parser.add_argument("--out", type=Path, help="run folder (default runs/<model>)")
    parser.add_argument("--data", type=Path, help="data root (default: the config's, relative to the config)")
    parser.add_argument("--steps", type=int, help="override the number of steps (0 with --init: validate those weights)")
    parser.add_argument("--minutes", type=float, help="fit the schedule to this wall time (new runs only)")
    parser.add_argument("--stop-after", type=float, help="save and stop after this many minutes (resume later)")
    parser.add_argument("--init", type=Path, help="start a new schedule from these exported weights (model and EMA)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. train.lr=5e-4 (TOML syntax; repeatable)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.init and args.resume:
        parser.error("--init starts a new run and --resume continues one: give one of them")
    started = time.time()

    cfg = apply_overrides(tomllib.loads(args.config.read_text()), args.set)
    tcfg, dcfg = cfg["train"], cfg["data"]
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    else:
        rank, world = 0, 1
    main_process = rank == 0
    out = args.out or Path("runs") / cfg["model"]
    out.mkdir(parents=True, exist_ok=True)
    total_steps = tcfg["steps"] if args.steps is None else args.steps
    if total_steps < 1 and not args.init:
        parser.error("--steps 0 only measures the weights given with --init")
    history = {"wall_minutes": 0.0, "sessions": []}  # accumulated over resumed sessions
    initialised_from = None
    if args.resume:
        previous = read_run(args.resume)["run"]
        total_steps, history = previous["total_steps"], previous.get("history", history)
        initialised_from = previous.get("initialised_from")
    if args.init:
        init_state, init_header = load_weights(args.init)
        if init_header["config"] != get_spec(cfg["model"]).config:
            raise SystemExit(f"{args.init} is not a {cfg['model']} (its architecture differs from the registry's)")
        earlier = init_header["metadata"]
        history = earlier.get("history", history)  # the card keeps the earlier sessions
        initialised_from = {"file": args.init.name, "sha256": file_sha256(args.init), "steps": earlier.get("steps"),
                            "validation_synthetic": earlier.get("validation_synthetic", {})}
    # bf16 autocast pays on some CPUs only: a pip-nafnet-s2 step (batch 8, 256 px) took 1.10 against
    # 1.61 s in float32 on a 2-core AMD EPYC (tools/time_train_step.py), a pip-nafnet-s step 2.25
    # against 2.22 s on a 2-core Intel Xeon (2026-11-27), both with AVX-512 BF16. So float32 on a
    # CPU unless the config opts in (configs from before the key have none); validation there stays
    # float32 either way, so its figures compare across runs.
    cpu_precision = tcfg.get("cpu_precision", "fp32")
    if cpu_precision not in ("fp32", "bf16"):
        raise SystemExit(f"train.cpu_precision is {cpu_precision!r}: use fp32 or bf16")
    on_gpu = device.type == "cuda"
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    precision = dtypes[tcfg["precision"] if on_gpu else cpu_precision]
    val_precision = precision if on_gpu else torch.float32
    torch.manual_seed(tcfg["seed"] + rank)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True

    root = args.data or (args.config.parent / dcfg["root"])
    batcher, val_batches, data_info = build_data(dcfg, Path(root), device, tcfg["seed"], rank)
    microscopy = microscopy_batches(dcfg, Path(root), device) if main_process else []
    spec = get_spec(cfg["model"])
    # channels_last: oneDNN (CPU) and tensor cores (GPU) both prefer it; a training step here
    # ran 1.3-1.5x faster than in NCHW on the 2-core Xeon, still in float32.
    model = build_model(spec.config).to(device, memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    step_module = TrainStep(model)
    if distributed:
        step_module = nn.parallel.DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg["lr"], betas=(0.9, 0.99), weight_decay=tcfg["weight_decay"])
    generators = {"train": batcher.generator, "host": batcher.host_rng}
    step = 0
    if args.init:
        model.load_state_dict(init_state)
        ema.load_state_dict(init_state)
        if main_process:  # the starting point on this run's validation set (the data may have changed since)
            initialised_from["validation_here"] = validate(ema, val_batches, val_precision, microscopy)
            print(f"validation of the starting weights: {json.dumps(initialised_from['validation_here'])}", flush=True)
        if total_steps == 0:  # --steps 0: that validation was the job
            if distributed:
                dist.destroy_process_group()
            return
    if args.resume:
        step = load_checkpoint(args.resume, model=model, ema=ema, optimizer=optimizer, generators=generators)
    run_step = torch.compile(step_module) if tcfg.get("compile") and device.type == "cuda" else step_module
    batch = tcfg["batch_size"] // world  # the config's batch size is the global one
    scaler = torch.amp.GradScaler(enabled=precision == torch.float16)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    log = open(out / "log.jsonl", "a") if main_process else None
    if main_process:
        print(f"{spec.name}: {count_parameters(model) / 1e6:.2f}M parameters, {world} process(es) on {device}, "
              f"global batch {batch * world}, crop {dcfg['crop']}, steps {step}->{total_steps}, data {data_info}", flush=True)

    hardware = device_name(device)
    command = shlex.join(["pip-train"] + [str(a) for a in (argv if argv is not None else sys.argv[1:])])

    def checkpoint(name="last.safetensors"):
        session = {"command": command, "hardware": f"{world} x {hardware}", "minutes": round((time.time() - started) / 60, 2),
                   "steps_to": step}
        run = {"total_steps": total_steps, "config": cfg, "data": data_info, "model": spec.name,
               "history": {"wall_minutes": round(history["wall_minutes"] + session["minutes"], 2),
                           "sessions": history["sessions"] + [session]},
               "global_batch": batch * world, "validation": last_validation, "initialised_from": initialised_from}
        save_checkpoint(out / name, model=model, ema=ema, optimizer=optimizer, step=step, run=run, generators=generators)

    timer, timed_from = time.time(), step
    last_validation = {}
    while step < total_steps:
        lr = learning_rate(step, tcfg, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        degraded, clean, ids = batcher.next(batch)
        degraded = degraded.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=precision, enabled=precision != torch.float32):
            try:
                pixel, sensor, separation = run_step(degraded, clean, ids)
            except Exception as error:  # a compiler failure must not cost a GPU session: go eager
                if run_step is step_module:
                    raise
                print(f"torch.compile failed ({type(error).__name__}: {error}); continuing eager", flush=True)
                run_step = step_module
                pixel, sensor, separation = run_step(degraded, clean, ids)
        loss = pixel + tcfg["sensor_weight"] * sensor + tcfg["prompt_weight"] * separation
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, tcfg["grad_clip"])
        scaler.step(optimizer)
        scaler.update()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - tcfg["ema"])
        step += 1

        if args.minutes and not args.resume and step in (60, 500, 2000) and timed_from == 20:
            # Fit the cosine schedule to the time budget from the speed measured since step 20
            # (re-fitted twice: the first estimate is taken while other processes still compile).
            if device.type == "cuda":
                torch.cuda.synchronize()
            rate = (step - 20) / (time.time() - timer)
            if step < total_steps:
                left = args.minutes * 60 - (time.time() - started) - 45  # leave time to validate and save
                total_steps = max(step + 1, int(step + rate * left))
                if distributed:  # every process must agree on the schedule
                    agreed = torch.tensor([total_steps], device=device)
                    dist.broadcast(agreed, 0)
                    total_steps = int(agreed)
        if step == 20:
            if device.type == "cuda":
                torch.cuda.synchronize()
            timer, timed_from = time.time(), step
        if main_process and (step % tcfg["log_every"] == 0 or step == total_steps):
            elapsed = time.time() - timer
            entry = {"step": step, "loss": round(loss.item(), 5), "pixel": round(pixel.item(), 5),
                     "sensor": round(sensor.item(), 4), "separation": round(separation.item(), 4), "lr": lr,
                     "steps_per_s": round((step - timed_from) / max(elapsed, 1e-9), 2),
                     "minutes": round((time.time() - started) / 60, 2)}
            if step % tcfg["val_every"] == 0 or step == total_steps:
                last_validation = validate(ema, val_batches, val_precision, microscopy)
                entry.update(last_validation)
            print(json.dumps(entry), flush=True)
            log.write(json.dumps(entry) + "\n")
            log.flush()
        if main_process and step % tcfg["ckpt_every"] == 0:
            checkpoint()
        if args.stop_after is not None and time.time() - started > args.stop_after * 60:
            break
    if main_process:
        last_validation = validate(ema, val_batches, val_precision, microscopy)
        checkpoint()
        print(f"step {step}/{total_steps}, validation {json.dumps(last_validation)}", flush=True)
        if step >= total_steps:
            path = export_checkpoint(out / "last.safetensors", out)
            print(f"exported {path}", flush=True)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
