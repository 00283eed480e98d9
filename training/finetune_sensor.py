"""pip-finetune-sensor: train only the degradation sensor of an exported model, with the
restoration network frozen. The sensor is 66k parameters on 128 px crops, so this runs on a CPU.

    pip-finetune-sensor training/configs/pip-nafnet-s.toml --steps 1500

Reads the model's weights from the package (or --weights), trains the sensor on the same
synthetic and real training data as pip-train, keeps the sensor with the best accuracy on the
held-out validation split of train/, then picks the sensor's sharpness (the logit scale of
task="auto") by restoring photo-sized held-out crops, and writes the weights back with the session recorded.

With --labels best the sensor learns, instead of the degradation that was applied, the prompt that
restores a crop best where it beats the applied one's prompt by more than --margin dB: a crop that
light haze barely changed is better left to a harmless prompt than to one that darkens it. Those
labels come from restoring a fixed pool of training crops with every prompt (5 forward passes each).

With --clear-share S that share of each batch is undegraded crops, labelled with the prompt that
changes clear crops least (picked on training crops): without them the sensor never sees a clear
image, reads one as the nearest degradation (light haze) and task="auto" dehazes it.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
import tomllib
from pathlib import Path

import torch
import torch.nn.functional as F

from pip_filters.hardware import device_name
from pip_filters.registry import WEIGHTS_DIR, get_spec
from pip_filters.tasks import TASKS
from pip_filters.weights_io import file_sha256, load_weights

from .export import write_release
from .train import build_data, crop_psnr, sensor_accuracy, task_psnr, validation_batches


SHARPNESS_GRID = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def calibrate_sharpness(model, batches, clear: tuple[torch.Tensor, int] | None = None) -> tuple[float, dict]:
    """The sensor's logit scale that restores the held-out images best in task="auto" (mean PSNR over
    tasks, each task weighing the same); the smallest scale wins a tie. Sets it on the sensor and
    returns it with every score. ``clear`` (undegraded crops, the label they were trained under)
    adds a sixth group scored against the crops themselves: what auto does to a clear image."""
    model.eval()
    sensor = model.sensor
    true_task = lambda d, ids: F.one_hot(ids, len(TASKS)).float()  # noqa: E731
    auto = lambda d, ids: sensor.task_weights(d)  # noqa: E731

    @torch.no_grad()
    def scored(weights_of) -> list[float]:
        """task_psnr's scores, then the clear crops' PSNR to themselves when there are clear crops."""
        scores = task_psnr(model, batches, weights_of)
        if clear is None:
            return scores
        crops, label = clear
        restored = model(crops, weights_of(crops, torch.full((len(crops),), label)))
        return scores + [round(float(crop_psnr(restored, crops).mean()), 3)]

    scores = {"true task": scored(true_task)}
    for sharpness in SHARPNESS_GRID:
        sensor.sharpness.fill_(sharpness)  # score exactly the weights task="auto" computes
        scores[sharpness] = scored(auto)
        print(f"sharpness {sharpness:g}: auto PSNR {scores[sharpness]} (true task {scores['true task']})", flush=True)
    best = max(SHARPNESS_GRID, key=lambda s: (round(sum(scores[s]) / len(scores[s]), 3), -s))
    sensor.sharpness.fill_(best)
    return best, scores


@torch.no_grad()
def psnr_by_prompt(model, degraded, clean, chunk: int = 40) -> torch.Tensor:
    """PSNR (N x 5) of each crop restored with each task's one-hot prompt, ``chunk`` crops a pass."""
    model.eval()
    psnr = []
    for start in range(0, len(degraded), chunk):
        d, c = degraded[start:start + chunk], clean[start:start + chunk]
        rows = []
        for t in range(len(TASKS)):
            prompt = F.one_hot(torch.full((len(d),), t, dtype=torch.long), len(TASKS)).float()
            rows.append(crop_psnr(model(d, prompt), c))
        psnr.append(torch.stack(rows, 1))
    return torch.cat(psnr)


def best_prompt_labels(model, degraded, clean, ids, margin: float, chunk: int = 40) -> torch.Tensor:
    """Per crop, the task whose prompt restores it best if that beats the applied task's prompt by
    more than ``margin`` dB, else the applied task (so near-ties keep their true label)."""
    psnr = psnr_by_prompt(model, degraded, clean, chunk)
    best_psnr, best = psnr.max(1)
    own = psnr.gather(1, ids.view(-1, 1)).view(-1)
    return torch.where(best_psnr - own > margin, best, ids)


def _relabelled(model, batches, margin: float) -> list:
    """The batches with their labels replaced by :func:`best_prompt_labels`."""
    return [(d, c, best_prompt_labels(model, d, c, ids, margin)) for d, c, ids in batches]


def gentlest_prompt(model, clear: torch.Tensor) -> tuple[int, list[float]]:
    """The task whose prompt changes clear crops least: the best mean PSNR of the output to its input."""
    scores = [round(float(v), 2) for v in psnr_by_prompt(model, clear, clear).mean(0)]
    return max(range(len(TASKS)), key=scores.__getitem__), scores


def _with_clear(degraded, clean, ids, share: float, label: int, generator: torch.Generator):
    """The batch with about ``share`` of its crops replaced by their undegraded originals under ``label``."""
    swap = torch.rand(len(ids), generator=generator) < share
    return torch.where(swap.view(-1, 1, 1, 1), clean, degraded), torch.where(swap, label, ids)


def _flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random horizontal and vertical flip of the whole batch (the labels do not change)."""
    dims = [d for d, coin in zip((2, 3), torch.rand(2, generator=generator)) if coin < 0.5]
    return x.flip(dims) if dims else x


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pip-finetune-sensor", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--weights", type=Path, help="default: the package's weights for the config's model")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--sensor-from", type=Path,
                        help="start from the sensor of these weights (same model) instead of the one in --weights")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--term-lr-scale", "--colour-lr-scale", dest="term_lr_scale", type=float, default=10.0,
                        help="learning-rate factor for the hand-made colour and noise terms")
    parser.add_argument("--calibration-crop", type=int, default=320,
                        help="side of the held-out images the sharpness is picked on: photo-sized, so the sensor"
                             " averages nine 128 px views as it does on a photo")
    parser.add_argument("--calibration-batches", type=int, default=2, help="batches of 40 held-out images")
    parser.add_argument("--labels", choices=("task", "best"), default="task",
                        help="what the sensor learns: the applied degradation, or the prompt that restores best")
    parser.add_argument("--pool", type=int, default=1600, help="training crops labelled for --labels best")
    parser.add_argument("--margin", type=float, default=0.5, help="dB another prompt must win by to be the label")
    parser.add_argument("--clear-share", type=float, default=0.0,
                        help="share of each training batch given as undegraded crops under the prompt that changes"
                             " clear crops least, so task=auto leaves a clear image alone (0: none)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.clear_share and args.labels == "best":
        parser.error("--clear-share goes with --labels task (--labels best relabels its own pool)")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    cfg = tomllib.loads(args.config.read_text())
    spec = get_spec(cfg["model"])
    path = args.weights or spec.weights_path
    state, header = load_weights(path, expected_sha256=None if args.weights else spec.sha256)
    from pip_filters.models import build_model

    model = build_model(header["config"])
    model.load_state_dict(state)
    sensor_from = None
    if args.sensor_from:
        # The sensor reads only the degraded image, so another run's sensor fits this network as is.
        other, other_header = load_weights(args.sensor_from, expected_sha256=None)
        if other_header["config"] != header["config"]:
            raise SystemExit(f"--sensor-from {args.sensor_from}: not the same model configuration as {path}")
        model.sensor.load_state_dict({k.removeprefix("sensor."): v for k, v in other.items() if k.startswith("sensor.")})
        sensor_from = {"file": args.sensor_from.name, "sha256": file_sha256(args.sensor_from)}
    sensor = model.sensor.train()
    root = args.data or (args.config.parent / cfg["data"]["root"])
    batcher, val_batches, _ = build_data(cfg["data"], Path(root), torch.device("cpu"), seed=777, rank=0)
    val_applied_batches = val_batches  # labelled with the degradation applied, whatever the training labels
    pool = None
    if args.labels == "best":
        labelling = time.time()
        val_applied = torch.cat([ids for _, _, ids in val_batches])
        val_batches = _relabelled(model, val_batches, args.margin)
        val_changed = int((torch.cat([ids for _, _, ids in val_batches]) != val_applied).sum())
        degraded, clean, applied = (torch.cat(parts) for parts in zip(
            *[batcher.next(args.batch) for _ in range(math.ceil(args.pool / args.batch))]))
        pool = degraded, best_prompt_labels(model, degraded, clean, applied, args.margin)
        print(f"labelled {len(applied)} training crops by their best prompt in {time.time() - labelling:.0f} s:"
              f" {int((pool[1] != applied).sum())} of them and {val_changed} of {len(val_applied)} validation"
              f" crops take another prompt than their degradation's", flush=True)
    generator = torch.Generator().manual_seed(778)
    clear_label, clear_scores, val_clear = None, None, []
    if args.clear_share > 0:
        clear_label, clear_scores = gentlest_prompt(model, torch.cat([batcher.next(40)[1] for _ in range(2)]))
        # Held-out clear crops (the originals of the validation crops) count in picking the best sensor.
        val_clear = [(c, c, torch.full((len(c),), clear_label)) for _, c, _ in val_batches[:1]]
        print(f"clear crops labelled {TASKS[clear_label]}: PSNR to the input per prompt {clear_scores}", flush=True)
    # The hand-made terms start at zero in weights saved before they existed; Adam moves a weight
    # by about lr per step, so they get a larger rate to reach their scale within a short fine-tune.
    terms = ("colour.weight", "noise.weight")
    term_weights = [p for n, p in sensor.named_parameters() if n in terms]
    rest = [p for n, p in sensor.named_parameters() if n not in terms]
    optimizer = torch.optim.AdamW([{"params": rest, "lr_scale": 1.0},
                                   {"params": term_weights, "lr_scale": args.term_lr_scale, "weight_decay": 0.0}],
                                  lr=args.lr, weight_decay=1e-4)
    best = before = sensor_accuracy(sensor.eval(), val_batches + val_clear)
    best_state = {k: v.clone() for k, v in sensor.state_dict().items()}
    print(f"validation accuracy before: {before:.4f}", flush=True)
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = group["lr_scale"] * args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        if pool is None:
            degraded, clean, ids = batcher.next(args.batch)
            if clear_label is not None:
                degraded, ids = _with_clear(degraded, clean, ids, args.clear_share, clear_label, generator)
        else:
            pick = torch.randint(len(pool[1]), (args.batch,), generator=generator)
            degraded, ids = _flip(pool[0][pick], generator), pool[1][pick]
        loss = F.cross_entropy(sensor.train()(degraded), ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps:
            acc = sensor_accuracy(sensor.eval(), val_batches + val_clear)
            if acc > best:
                best, best_state = acc, {k: v.clone() for k, v in sensor.state_dict().items()}
            print(f"step {step} loss {loss.item():.4f} val accuracy {acc:.4f} (best {best:.4f})", flush=True)
    sensor.load_state_dict(best_state)
    applied_accuracy = sensor_accuracy(sensor.eval(), val_applied_batches)
    calibration = validation_batches(cfg["data"], Path(root), torch.device("cpu"), crop=args.calibration_crop,
                                     count=args.calibration_batches)
    sharpness, scores = calibrate_sharpness(model, calibration,
                                            None if clear_label is None else (calibration[0][1], clear_label))
    meta = header["metadata"]
    minutes = round((time.time() - started) / 60, 2)
    command = shlex.join(["pip-finetune-sensor"] + [str(a) for a in (argv if argv is not None else sys.argv[1:])])
    meta["history"]["sessions"].append({"command": command, "hardware": f"1 x {device_name('cpu')}",
                                        "minutes": minutes, "steps_to": f"sensor only, {args.steps} steps"})
    meta["history"]["wall_minutes"] = round(meta["history"]["wall_minutes"] + minutes, 2)
    meta.setdefault("validation_synthetic", {})["sensor_accuracy"] = round(applied_accuracy, 4)
    labels = "the degradation applied" if pool is None else \
        f"the prompt that restores best by more than {args.margin} dB (a pool of {len(pool[1])} training crops)"
    if clear_label is not None:
        labels += (f", with {args.clear_share:g} of each batch (and {sum(len(i) for *_, i in val_clear)} held-out"
                   f" crops in validation) undegraded and labelled {TASKS[clear_label]}, the prompt that changes"
                   f" clear training crops least (PSNR to the input per prompt: {', '.join(map(str, clear_scores))})")
    meta["sensor_finetune"] = {"steps": args.steps, "labels": labels, "batch": args.batch, "lr": args.lr,
                               "term_lr_scale": args.term_lr_scale,
                               "val_accuracy_before": round(before, 4), "val_accuracy_after": round(best, 4),
                               "sharpness": sharpness, "calibration": f"{40 * args.calibration_batches} held-out"
                               f" {args.calibration_crop} px crops, every task equally often"
                               + ("" if clear_label is None else ", and the 40 undegraded originals of the first 40 as"
                                  " a sixth group, scored against themselves"),
                               "auto_psnr_by_sharpness": {str(k): v for k, v in scores.items()}}
    if sensor_from:
        meta["sensor_finetune"]["sensor_from"] = sensor_from
    if clear_label is not None:
        meta["sensor_finetune"]["clear"] = {
            "share": args.clear_share, "label": TASKS[clear_label],
            "psnr_to_input_by_prompt": dict(zip(TASKS, clear_scores)),
            "held_out_accuracy": round(sensor_accuracy(sensor.eval(), val_clear), 4)}
    out = write_release(args.weights.parent if args.weights else WEIGHTS_DIR, spec, model.state_dict(), header["config"], meta)
    print(f"sensor accuracy {before:.4f} -> {best:.4f} against {labels}, {applied_accuracy:.4f} against the degradation"
          f" applied; sharpness {sharpness:g}; wrote {out}")


if __name__ == "__main__":
    main()
