"""pip-eval on a tiny fake data root (no /work/shared needed), and its metrics by hand."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from pip_filters.training import evaluate as ev

warnings.filterwarnings("ignore", message=".*untrained.*")


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _smooth_image(rng, h=48, w=48, channels=3):
    """A smooth random picture (noise then a box blur), so restoration has something to keep."""
    base = rng.random((h // 8 + 2, w // 8 + 2, channels))
    big = np.kron(base, np.ones((8, 8, 1)))[:h, :w]
    img = (big * 200 + 30).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


@pytest.fixture
def fake_root(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for i in range(2):
        clean = _smooth_image(rng)
        _save(root / "test/kodak24" / f"kodim0{i + 1}.png", clean)
        rainy = np.clip(clean.astype(int) + (rng.random(clean.shape[:2]) < 0.03)[..., None] * 120, 0, 255)
        _save(root / "test/rain100l/target" / f"rain-00{i + 1}.png", clean)
        _save(root / "test/rain100l/input" / f"rain-00{i + 1}.png", rainy.astype(np.uint8))
        gray = _smooth_image(rng, channels=1)
        noisy = np.clip(gray + rng.normal(0, 12, gray.shape), 0, 255).astype(np.uint8)
        _save(root / "test/fmd-confocal-20/target" / f"fov0{i + 1}.png", gray)
        _save(root / "test/fmd-confocal-20/input" / f"fov0{i + 1}.png", noisy)
        # a hazy JPEG input whose target is larger (exercises the centre crop)
        target = _smooth_image(rng, 56, 52)
        hazy = (ev._centre_crop(target, 48, 48) * 0.6 + 90).astype(np.uint8)
        _save(root / "test/sots-outdoor-35/target" / f"000{i + 1}.png", target)
        _save(root / "test/sots-outdoor-35/input" / f"000{i + 1}.jpg", hazy)
    # kernels in the layout of levin8_derived.npz: one 2-D float array per key k1, k2, ...
    box = np.ones((5, 5)) / 25
    line = np.zeros((7, 7))
    line[3, :] = 1 / 7
    kdir = root / "test/levin8-kernels"
    kdir.mkdir(parents=True)
    np.savez(kdir / "levin8_derived.npz", k1=box, k2=line)
    return root


SETS = ["kodak24-s25", "fmd-confocal-20", "rain100l", "sots-outdoor-35", "kodak24-levin8"]


def test_evaluate_on_fake_data(tiny, fake_root, tmp_path):
    out = tmp_path / "eval"
    results = ev.evaluate(tiny, fake_root, SETS, out, progress=False, info={"command": "test"})
    md = (out / "results.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert data["sets"].keys() == set(SETS)
    for name in SETS:
        assert f"| {name} |" in md
        s = data["sets"][name]
        for key in ("input_psnr", "auto_psnr", "true_psnr", "input_ssim", "auto_ssim", "true_ssim"):
            assert math.isfinite(s[key]), (name, key)
        assert 0.0 <= s["sensor_accuracy"] <= 1.0
        assert sum(s["sensor_predictions"].values()) == s["n"]
        assert (out / s["contact_sheet"]).stat().st_size < ev.SHEET_MAX_BYTES
    assert "| rain100l (Y) |" in md and math.isfinite(data["sets"]["rain100l"]["auto_y_psnr"])
    assert data["sets"]["kodak24-levin8"]["n"] == 2 * 2  # 2 images x 2 kernels
    assert data["sets"]["kodak24-s25"]["n"] == 2
    assert data["sets"]["sots-outdoor-35"]["notes"] == ["2 target(s) centre-cropped to the input size"]
    assert "seed = 1000 * S + i" in md and "Partial run" not in md
    assert results["sets"]["rain100l"]["n"] == 2

    # --limit is applied per set and said in the table
    limited = ev.evaluate(tiny, fake_root, "kodak24-levin8,rain100l", tmp_path / "lim", limit=1, progress=False)
    assert limited["sets"]["kodak24-levin8"]["n"] == 2 and limited["sets"]["rain100l"]["n"] == 1
    assert "--limit 1" in (tmp_path / "lim" / "results.md").read_text()


def test_degradations_are_seeded(fake_root):
    spec = ev.SETS["kodak24-s25"]
    a = [s.load()[0] for s in ev.build_samples(spec, fake_root)]
    b = [s.load()[0] for s in ev.build_samples(spec, fake_root)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].dtype == np.float32 and 0 <= a[0].min() and a[0].max() <= 1
    clean = np.asarray(Image.open(fake_root / "test/kodak24/kodim01.png")).astype(np.float32) / 255
    noise = np.random.default_rng(25 * 1000 + 0).standard_normal(clean.shape, dtype=np.float32) * np.float32(25 / 255)
    assert np.array_equal(a[0], np.clip(clean + noise, 0, 1))
    blurred = [s.load()[0] for s in ev.build_samples(ev.SETS["kodak24-levin8"], fake_root, limit=1)]
    assert len(blurred) == 2 and not np.array_equal(blurred[0], blurred[1])


def test_convolve_is_a_true_convolution_with_same_size():
    img = np.zeros((21, 21, 3), np.float32)
    img[10, 10] = 1.0
    kernel = torch.zeros(5, 5)
    kernel[0, 1] = 1.0  # off-centre: a convolution shifts the impulse to (10-2, 10-1)
    out = ev.convolve(img, kernel)
    assert out.shape == img.shape
    assert out[8, 9, 0] == pytest.approx(1.0) and out.sum() == pytest.approx(3.0)


def test_psnr_matches_hand_computation():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 10  # MSE = 100 / 48
    expected = 10 * math.log10(255**2 / (100 / 48))
    assert ev.psnr(a, b) == pytest.approx(expected, abs=1e-9)
    assert ev.psnr(b, a) == pytest.approx(expected, abs=1e-9)
    # uint8 arithmetic must not wrap around
    c = np.full((2, 2), 200, np.uint8)
    d = np.full((2, 2), 10, np.uint8)
    assert ev.psnr(c, d) == pytest.approx(10 * math.log10(255**2 / 190**2))
    # identical images: capped, finite
    assert ev.psnr(a, a) == ev.PSNR_CAP == 100.0
    e = np.random.default_rng(1).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    assert ev.ssim(e, e) == pytest.approx(1.0)
    assert ev.ssim(e[..., 0], e[..., 0]) == pytest.approx(1.0)  # gray


def test_y_channel_is_bt601():
    white = np.full((1, 1, 3), 255.0)
    black = np.zeros((1, 1, 3))
    assert ev.rgb_to_y(white)[0, 0] == pytest.approx(235.0, abs=1e-3)
    assert ev.rgb_to_y(black)[0, 0] == pytest.approx(16.0)


def test_set_selection():
    assert [s.name for s in ev.select_sets("cbsd68")] == ["cbsd68-s15", "cbsd68-s25", "cbsd68-s50"]
    assert [s.name for s in ev.select_sets("deblur")] == ["kodak24-levin8"]
    assert len(ev.select_sets("all")) == len(ev.SETS)
    with pytest.raises(ValueError):
        ev.select_sets("nope")


def test_cli_writes_outputs(fake_root, tmp_path):
    out = tmp_path / "cli"
    assert ev.main(["--model", "pip-nafnet-t", "--data", str(fake_root), "--sets", "rain100l",
                    "--out", str(out), "--quiet", "--threads", "1"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert list(data["sets"]) == ["rain100l"] and data["model"] == "pip-nafnet-t"
    assert "pip-eval --model pip-nafnet-t" in (out / "results.md").read_text()
    assert data["ensemble"] is False and "Self-ensemble" not in (out / "results.md").read_text()
    ens = tmp_path / "ensemble"
    assert ev.main(["--model", "pip-nafnet-t", "--data", str(fake_root), "--sets", "rain100l",
                    "--out", str(ens), "--quiet", "--threads", "1", "--ensemble"]) == 0
    with_ensemble = json.loads((ens / "results.json").read_text())
    assert with_ensemble["ensemble"] is True and "Self-ensemble" in (ens / "results.md").read_text()
    one, many = (r["sets"]["rain100l"]["images"][0]["true_psnr"] for r in (data, with_ensemble))
    assert one != many  # the flipped copies change the output


def test_compare_tables(tiny, fake_root, tmp_path):
    for name in ("a", "b"):
        ev.evaluate(tiny, fake_root, "rain100l,kodak24-s25", tmp_path / name, progress=False)
    out = tmp_path / "cmp.md"
    assert ev.main(["--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| rain100l (Y) |" in text and "| kodak24-s25 |" in text and "not comparable" not in text
    # The same model twice, run the same way: the columns are named by the runs' folders.
    assert "| a true PSNR | a true SSIM | b true PSNR |" in text
    # A run whose protocol degraded a set differently is flagged on that set's rows only.
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    results["protocol"] = [line + " (changed)" if "`rain100l`" in line else line for line in results["protocol"]]
    (tmp_path / "b" / "results.json").write_text(json.dumps(results))
    assert ev.main(["--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| rain100l * |" in text and "| rain100l (Y) * |" in text and "| kodak24-s25 |" in text
    assert "degraded rain100l differently" in text
