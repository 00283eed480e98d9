"""pip-export-weights: turn a training checkpoint into the weights file the restorer loads.

    pip-export-weights runs/pip-nafnet-s/last.safetensors --to pip_filters/weights

Writes NAME.safetensors (the EMA weights, config and training record in its header), the model
card NAME.md beside it, and the file's sha256 into SHA256SUMS there (which the registry checks).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from pip_filters.models import build_model, count_parameters
from pip_filters.registry import WEIGHTS_DIR, get_spec
from pip_filters.tasks import TASKS
from pip_filters.weights_io import save_weights

from .checkpoint import read_run


def export_checkpoint(checkpoint: Path, to: Path, metrics: dict | None = None) -> Path:
    header = read_run(checkpoint)
    run = header["run"]
    spec = get_spec(run["model"])
    ema = {k[len("ema."):]: v for k, v in load_file(str(checkpoint)).items() if k.startswith("ema.")}
    model = build_model(spec.config)
    model.load_state_dict(ema)  # fails loudly if the checkpoint does not fit the registry's config
    metadata = {
        "name": spec.name, "trained": True, "steps": header["step"], "scheduled_steps": run["total_steps"],
        "global_batch": run["global_batch"], "data": run["config"]["data"], "data_counts": run["data"],
        "train": run["config"]["train"], "validation_synthetic": run.get("validation", {}),
        "history": run["history"], "parameters": count_parameters(model), "benchmarks": metrics or {},
        "initialised_from": run.get("initialised_from"),
    }
    return write_release(to, spec, ema, spec.config, metadata)


def write_release(to: Path, spec, state: dict, config: dict, metadata: dict) -> Path:
    """Write NAME.safetensors, its model card NAME.md and its line in SHA256SUMS into ``to``."""
    to.mkdir(parents=True, exist_ok=True)
    path = to / f"{spec.name}.safetensors"
    digest = save_weights(path, state, config, metadata)
    _record_sha(to / "SHA256SUMS", path.name, digest)
    (to / f"{spec.name}.md").write_text(model_card(spec, metadata, digest))
    return path


def _record_sha(sums: Path, name: str, digest: str) -> None:
    lines = [l for l in (sums.read_text().splitlines() if sums.exists() else []) if not l.endswith("  " + name)]
    sums.write_text("\n".join(sorted(lines + [f"{digest}  {name}"])) + "\n")


def _sensor_line(meta: dict) -> str:
    tune = meta.get("sensor_finetune")
    if not tune:
        return ""
    start = tune.get("sensor_from")
    taken = (f" It started from the sensor of `{start['file']}` (sha256 `{start['sha256'][:12]}...`), not the one this"
             " run trained." if start else "")
    return (f"\n- Sensor fine-tuned afterwards with the restoration network frozen (pip-finetune-sensor): {tune['steps']}"
            f" steps, batch {tune['batch']}, labels: {tune.get('labels', 'the degradation applied')}; validation accuracy against those labels"
            f" {tune['val_accuracy_before']} -> {tune['val_accuracy_after']}." + taken
            + (" No step beat the sensor it started from, so that one was kept." if tune["steps"]
               and tune["val_accuracy_after"] <= tune["val_accuracy_before"] else "")
            + _sharpness_text(tune))


def _sharpness_text(tune: dict) -> str:
    scores = tune.get("auto_psnr_by_sharpness")
    if not scores:
        return ""
    # The true task first, then by sharpness (a header read back has its keys sorted as text).
    order = sorted(scores, key=lambda k: (k != "true task", float(k) if k != "true task" else 0.0))
    rows = "; ".join(f"{k}: {', '.join(map(str, scores[k]))}" for k in order)
    return (f" Sensor sharpness (logit scale of task=\"auto\") {tune['sharpness']:g}, the best mean of the"
            f" PSNR per task on {tune.get('calibration', 'held-out crops')} ({', '.join(TASKS + ('clear',) * (len(scores['true task']) > len(TASKS)))}) restored with the sensor's weights; by sharpness: {rows}.")


def _init_line(meta: dict) -> str:
    start = meta.get("initialised_from")
    if not start:
        return ""

    def listed(scores):
        # a run stopped before its first validation recorded none
        return ", ".join(f"{k.removeprefix('psnr_')} {v}" for k, v in scores.items()) or "none"

    here = start.get("validation_here")
    return (f"\n- Started from trained weights `{start['file']}` (sha256 `{start['sha256'][:12]}...`, {start['steps']} steps"
            f" in its own last run; its validation as recorded then: {listed(start.get('validation_synthetic', {}))}"
            + (f"; on this run's validation set at the start: {listed(here)}" if here else "")
            + "); the iterations above count this run only, the sessions table every run.")


def model_card(spec, meta: dict, digest: str) -> str:
    history = meta["history"]
    sessions = "\n".join(f"| {s['command']} | {s['hardware']} | {s['minutes']} | {s['steps_to']} |" for s in history["sessions"])
    val = "\n".join(f"| {k} | {v} |" for k, v in meta["validation_synthetic"].items())
    bench = "\n".join(f"| {k} | {v} |" for k, v in meta["benchmarks"].items()) or "| (see README) | |"
    return f"""# {spec.name}

{spec.description}

- File: `{spec.name}.safetensors`, sha256 `{digest}`; {meta['parameters']:,} parameters; EMA weights.
- Architecture config: stored in the file's header (`pip_filters.weights_io.read_metadata`).
- Training data: {json.dumps(meta['data'])} ({json.dumps(meta['data_counts'])}; a validation split of
  train/ is held out; `test/` is never used for training or selection). Degradations are synthesised
  on the training device by `pip_filters.training.degrade` (noise, rain, haze, blur, under-exposure)
  plus the real LOL low-light pairs. The settings' `precision` applies on GPUs, `cpu_precision` (float32 unless set) on a CPU.
- Iterations: {meta['steps']} of {meta['scheduled_steps']} scheduled, global batch {meta['global_batch']},
  crop {meta['data']['crop']}; optimiser settings: {json.dumps(meta['train'])}.
- Wall time in all: {history['wall_minutes']} minutes.{_init_line(meta)}{_sensor_line(meta)}

## Sessions (exact commands)
| command | hardware | minutes | reached step |
|---|---|---|---|
{sessions}

## Validation (synthetic, held-out part of train/, PSNR dB per task with the true task; sensor accuracy)
| metric | value |
|---|---|
{val}

## Benchmarks (pip-eval on the test sets)
| metric | value |
|---|---|
{bench}
"""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pip-export-weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--to", type=Path, default=WEIGHTS_DIR, help="default: the package's weights folder")
    parser.add_argument("--metrics", type=Path, help="JSON of benchmark figures to put in the model card")
    args = parser.parse_args(argv)
    metrics = json.loads(args.metrics.read_text()) if args.metrics else None
    print(export_checkpoint(args.checkpoint, args.to, metrics))


if __name__ == "__main__":
    main()
