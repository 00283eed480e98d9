"""pip-train on a tiny made-up data set: it trains, resumes exactly, runs under torchrun (gloo)
and exports weights the restorer loads."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import pip_filters
from pip_filters.training.train import main as train
from pip_filters.weights_io import load_weights, save_weights

CONFIG = """
model = "pip-nafnet-t"
[data]
root = "unused"
clean = ["clean"]
lowlight_pairs = "lol"
kernels = "kernels.npz"
val_fraction = 0.25
crop = 32
[train]
batch_size = 4
steps = 4
lr = 1e-3
min_lr = 1e-5
warmup = 2
weight_decay = 0.0
grad_clip = 0.5
ema = 0.9
precision = "bf16"
cpu_precision = "fp32"
compile = false
seed = 0
sensor_weight = 0.1
prompt_weight = 0.01
log_every = 1
val_every = 2
ckpt_every = 100
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "clean").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(root / "clean" / f"{i}.png")
    for sub in ("input", "target"):
        (root / "lol" / sub).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256 if sub == "target" else 40, (40, 40, 3), dtype=np.uint8)).save(
                root / "lol" / sub / f"{i}.png")
    np.savez(root / "kernels.npz", k1=np.ones((5, 5)), k2=np.eye(7))
    config = root / "tiny.toml"
    config.write_text(CONFIG)
    return root, config


def run(config, root, out, *extra):
    train([str(config), "--data", str(root), "--out", str(out), "--device", "cpu", *extra])
    return load_file(str(out / "last.safetensors"))


def test_training_resumes_exactly_where_it_stopped(setup, tmp_path):
    root, config = setup
    straight = run(config, root, tmp_path / "straight")
    first = run(config, root, tmp_path / "split", "--stop-after", "0")  # stops after one step
    assert not torch.equal(first["ema.backbone.intro.weight"], straight["ema.backbone.intro.weight"])
    resumed = run(config, root, tmp_path / "split", "--resume", str(tmp_path / "split" / "last.safetensors"))
    for name, tensor in straight.items():
        if not name.startswith("rng."):
            assert torch.equal(tensor, resumed[name]), name
    log = (tmp_path / "straight" / "log.jsonl").read_text().splitlines()
    assert len(log) == 4 and '"sensor_accuracy"' in log[1] and '"psnr_microscopy"' in log[1]


def test_export_writes_weights_the_restorer_loads(setup, tmp_path):
    root, config = setup
    run(config, root, tmp_path / "run")
    exported = tmp_path / "run" / "pip-nafnet-t.safetensors"
    assert exported.exists() and (tmp_path / "run" / "pip-nafnet-t.md").read_text().startswith("# pip-nafnet-t")
    restorer = pip_filters.load(weights=exported, device="cpu")
    assert restorer.trained and restorer.info["steps"] == 4
    assert restorer.restore(np.zeros((20, 20, 3), np.uint8), task="denoise").shape == (20, 20, 3)


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_distributed_training_with_gloo(setup, tmp_path):
    root, config = setup
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29571", "-m", "pip_filters.training.train", str(config),
         "--data", str(root), "--out", str(tmp_path / "ddp"), "--device", "cpu"],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    assert (tmp_path / "ddp" / "pip-nafnet-t.safetensors").exists()


def test_sensor_finetune_trains_only_the_sensor(setup, tmp_path):
    from pip_filters.training.finetune_sensor import SHARPNESS_GRID, main as finetune

    root, config = setup
    weights = tmp_path / "pip-nafnet-t.safetensors"
    shutil.copy(pip_filters.MODELS["pip-nafnet-t"].weights_path, weights)
    before = load_file(str(weights))
    finetune([str(config), "--weights", str(weights), "--data", str(root), "--steps", "3", "--lr", "0.05",
              "--calibration-crop", "48", "--calibration-batches", "1"])
    after = load_file(str(weights))
    for name, tensor in before.items():
        if not name.startswith("sensor."):
            assert torch.equal(tensor, after[name]), name
    restorer = pip_filters.load(weights=weights, device="cpu")
    card = (tmp_path / "pip-nafnet-t.md").read_text()
    assert "sensor_finetune" in restorer.info and "pip-finetune-sensor" in card
    # The sharpness task="auto" uses was picked from the grid by restoring held-out crops.
    tune = restorer.info["sensor_finetune"]
    assert float(after["sensor.sharpness"]) == tune["sharpness"] and tune["sharpness"] in SHARPNESS_GRID
    assert set(tune["auto_psnr_by_sharpness"]) == {"true task"} | {str(s) for s in SHARPNESS_GRID}
    assert "sharpness" in card


def test_sensor_finetune_can_start_from_another_runs_sensor(setup, tmp_path):
    from pip_filters.training.finetune_sensor import main as finetune

    root, config = setup
    weights, donor = tmp_path / "pip-nafnet-t.safetensors", tmp_path / "donor" / "pip-nafnet-t.safetensors"
    donor.parent.mkdir()
    shutil.copy(pip_filters.MODELS["pip-nafnet-t"].weights_path, weights)
    state, header = load_weights(weights)
    donor_state = {k: v + 0.01 * torch.randn_like(v) if k.startswith("sensor.") and v.is_floating_point() else v
                   for k, v in state.items()}                                 # a donor with another sensor
    save_weights(donor, donor_state, header["config"], header["metadata"])
    before, other = load_file(str(weights)), load_file(str(donor))
    finetune([str(config), "--weights", str(weights), "--sensor-from", str(donor), "--data", str(root),
              "--steps", "0", "--calibration-crop", "48", "--calibration-batches", "1"])
    after = load_file(str(weights))
    for name, tensor in after.items():
        source = other if name.startswith("sensor.") and name != "sensor.sharpness" else before
        if name != "sensor.sharpness":
            assert torch.equal(tensor, source[name]), name
    tune = pip_filters.load(weights=weights, device="cpu").info["sensor_finetune"]
    assert tune["sensor_from"]["file"] == donor.name
    assert "started from the sensor of" in (tmp_path / "pip-nafnet-t.md").read_text()


def test_sensor_loss_ignores_undegraded_crops():
    from pip_filters.models import build_model
    from pip_filters.training.train import TrainStep

    torch.manual_seed(0)
    step = TrainStep(build_model(pip_filters.MODELS["pip-nafnet-t"].config).eval())
    clean = torch.rand(4, 3, 32, 32)
    degraded = clean.clone()
    degraded[2:] = (clean[2:] + 0.2 * torch.randn(2, 3, 32, 32)).clamp(0, 1)   # crops 0 and 1 left clean
    labels = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        _, sensor, _ = step(degraded, clean, labels)
        _, relabelled_clean, _ = step(degraded, clean, torch.tensor([4, 4, 2, 3]))
        _, relabelled_noisy, _ = step(degraded, clean, torch.tensor([0, 1, 4, 4]))
    assert torch.equal(sensor, relabelled_clean)          # the undegraded crops' labels do not count
    assert not torch.equal(sensor, relabelled_noisy)


def test_sensor_finetune_can_learn_the_prompt_that_restores_best(setup, tmp_path):
    from pip_filters.training.finetune_sensor import main as finetune

    root, config = setup
    weights = tmp_path / "pip-nafnet-t.safetensors"
    shutil.copy(pip_filters.MODELS["pip-nafnet-t"].weights_path, weights)
    finetune([str(config), "--weights", str(weights), "--data", str(root), "--steps", "2", "--labels", "best",
              "--pool", "8", "--batch", "4", "--calibration-crop", "48", "--calibration-batches", "1"])
    tune = pip_filters.load(weights=weights, device="cpu").info["sensor_finetune"]
    assert "restores best by more than 0.5 dB" in tune["labels"] and "pool of 8" in tune["labels"]
    assert "restores best" in (tmp_path / "pip-nafnet-t.md").read_text()


def test_sensor_finetune_can_learn_to_leave_clear_crops_to_the_gentlest_prompt(setup, tmp_path):
    from pip_filters.training.finetune_sensor import main as finetune

    root, config = setup
    weights = tmp_path / "pip-nafnet-t.safetensors"
    shutil.copy(pip_filters.MODELS["pip-nafnet-t"].weights_path, weights)
    finetune([str(config), "--weights", str(weights), "--data", str(root), "--steps", "2", "--clear-share", "0.5",
              "--batch", "8", "--calibration-crop", "48", "--calibration-batches", "1"])
    tune = pip_filters.load(weights=weights, device="cpu").info["sensor_finetune"]
    clear = tune["clear"]
    by_prompt = clear["psnr_to_input_by_prompt"]
    assert clear["label"] == max(by_prompt, key=by_prompt.get) and 0 <= clear["held_out_accuracy"] <= 1
    # The sharpness was picked with the clear crops as a sixth group, and the card says so.
    assert all(len(scores) == 6 for scores in tune["auto_psnr_by_sharpness"].values())
    card = (tmp_path / "pip-nafnet-t.md").read_text()
    assert f"undegraded and labelled {clear['label']}" in card and "lowlight, clear)" in card


def test_gentlest_prompt_is_the_one_that_changes_clear_crops_least():
    from pip_filters.training.finetune_sensor import gentlest_prompt

    class OnlyDeblurSpares(torch.nn.Module):
        """Returns the input with the deblur prompt (index 3) and darkens it by the prompt's index otherwise."""
        def forward(self, x, prompt):
            index = prompt.argmax(1).view(-1, 1, 1, 1).float()
            return torch.where(index == 3, x, x - 0.01 * (index + 1))

    label, scores = gentlest_prompt(OnlyDeblurSpares(), torch.rand(4, 3, 8, 8) * 0.5 + 0.25)
    assert label == 3 and scores[3] == max(scores) and scores[0] > scores[1] > scores[2]


def test_best_prompt_labels_keep_the_applied_task_unless_another_wins_clearly():
    from pip_filters.training.finetune_sensor import best_prompt_labels

    class OnlyDerainRestores(torch.nn.Module):
        """Restores perfectly with the derain prompt (index 1) and returns the input otherwise."""
        def forward(self, degraded, prompt):
            return torch.where(prompt[:, 1].view(-1, 1, 1, 1) > 0, clean, degraded)

    clean = torch.rand(3, 3, 8, 8)
    degraded = (clean + 0.1 * torch.randn(3, 3, 8, 8)).clamp(0, 1)
    ids = torch.tensor([0, 1, 2])
    labels = best_prompt_labels(OnlyDerainRestores(), degraded, clean, ids, margin=0.5)
    assert labels.tolist() == [1, 1, 1]
    # A crop no prompt restores better than another keeps the degradation it was given.
    labels = best_prompt_labels(OnlyDerainRestores(), clean, clean, ids, margin=0.5)
    assert labels.tolist() == [0, 1, 2]


def test_new_schedule_from_trained_weights_keeps_their_record(setup, tmp_path):
    root, config = setup
    shipped = pip_filters.MODELS["pip-nafnet-t"].weights_path
    start = load_file(str(shipped))
    zero_lr = run(config, root, tmp_path / "still", "--init", str(shipped), "--set", "train.lr=0.0", "--set", "train.min_lr=0")
    for name, tensor in start.items():  # lr 0 leaves the weights where --init put them
        assert torch.equal(zero_lr[f"model.{name}"], tensor) and torch.equal(zero_lr[f"ema.{name}"], tensor), name
    run(config, root, tmp_path / "more", "--init", str(shipped), "--set", "train.warmup=1")
    restorer = pip_filters.load(weights=tmp_path / "more" / "pip-nafnet-t.safetensors", device="cpu")
    earlier = pip_filters.load("pip-nafnet-t", device="cpu").info
    assert restorer.info["train"]["warmup"] == 1 and restorer.info["initialised_from"]["steps"] == earlier["steps"]
    assert len(restorer.info["history"]["sessions"]) == len(earlier["history"]["sessions"]) + 1
    card = (tmp_path / "more" / "pip-nafnet-t.md").read_text()
    assert "Started from trained weights `pip-nafnet-t.safetensors`" in card and "at the start: denoise" in card
    train([str(config), "--data", str(root), "--out", str(tmp_path / "check"), "--device", "cpu",
           "--init", str(shipped), "--steps", "0"])
    assert not any((tmp_path / "check").iterdir())  # --steps 0 only validates: nothing written
    with pytest.raises(SystemExit):
        run(config, root, tmp_path / "bad", "--set", "train.no_such_key=1")
    with pytest.raises(SystemExit):  # weights of another architecture
        run(config, root, tmp_path / "bad", "--init", str(pip_filters.MODELS["pip-nafnet-t2"].weights_path))


def test_cpu_training_in_bf16_is_opt_in_and_keeps_float32_weights(setup, tmp_path):
    root, config = setup
    fp32 = run(config, root, tmp_path / "fp32")
    bf16 = run(config, root, tmp_path / "bf16", "--set", "train.cpu_precision=bf16")
    name = "ema.backbone.intro.weight"
    assert bf16[name].dtype == torch.float32 and torch.isfinite(bf16[name]).all()
    assert not torch.equal(bf16[name], fp32[name])  # the steps ran in bf16, not float32
    restorer = pip_filters.load(weights=tmp_path / "bf16" / "pip-nafnet-t.safetensors", device="cpu")
    assert restorer.info["train"]["cpu_precision"] == "bf16"  # the card's settings say how it trained
    with pytest.raises(SystemExit):
        run(config, root, tmp_path / "bad", "--set", "train.cpu_precision=fp16")


def test_validation_keeps_its_crop_when_training_crops_grow(setup):
    import tomllib

    from pip_filters.training.train import build_data

    root, config = setup
    data = tomllib.loads(config.read_text())["data"]
    data.update(crop=40, val_crop=24, real_lowlight_fraction=1.0, task_probs=[0, 0, 0, 0, 1])
    train_batcher, val, _ = build_data(data, root, torch.device("cpu"), seed=0, rank=0)
    degraded, clean, ids = train_batcher.next(4)
    assert degraded.shape[-2:] == (40, 40)
    # every low-light crop comes from the real pairs: their dark inputs (under 40/255), not synthesis
    assert degraded.max() < 40 / 255 + 1e-6 and clean.max() > 0.5
    assert all(batch[0].shape[-2:] == (24, 24) for batch in val)
