"""Behaviour of the synthetic degradations (training/degrade.py) and the on-device batching
(training/data.py). CPU only, small tensors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pip_filters.tasks import TASKS
from pip_filters.training import degrade as D
from pip_filters.training.data import ImageBank, PairedBank, TrainingBatcher, split_files

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared/data"
SHARED_KERNELS = SHARED / "train/usrnet12-kernels/kernels12_derived.npz"
TEST_KERNELS = SHARED / "test/levin8-kernels/levin8_derived.npz"   # read only to check no training pool holds them


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """4 x 3 x 64 x 64 natural-ish images: smooth colour ramps plus texture and edges."""
    g = gen(123)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    base = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.5 - 0.3 * xx * yy])
    texture = 0.15 * torch.rand(4, 1, 64, 64, generator=g)
    edges = 0.2 * ((xx * 8).floor() % 2)
    return (base + texture + edges).clamp(0, 1)


@pytest.fixture(scope="module")
def kernels() -> torch.Tensor:
    k = torch.zeros(3, 1, 9, 9)
    k[0, 0, 4, 4] = 1                       # identity
    k[1, 0, 4, :] = 1 / 9                   # horizontal motion
    k[2, 0, 2:7, 2:7] = 1 / 25              # box
    return k


def hf_energy(x: torch.Tensor) -> torch.Tensor:
    """Mean squared horizontal + vertical differences per image."""
    return (x.diff(dim=-1) ** 2).mean(dim=(1, 2, 3)) + (x.diff(dim=-2) ** 2).mean(dim=(1, 2, 3))


FUNCS = {
    "gaussian_noise": lambda x, g, k: D.gaussian_noise(x, generator=g),
    "poisson_gaussian_noise": lambda x, g, k: D.poisson_gaussian_noise(x, generator=g),
    "rain": lambda x, g, k: D.rain(x, generator=g),
    "haze": lambda x, g, k: D.haze(x, generator=g),
    "blur": lambda x, g, k: D.blur(x, k, generator=g),
    "underexpose": lambda x, g, k: D.underexpose(x, generator=g),
    "degrade": lambda x, g, k: D.degrade(x, torch.tensor([0, 1, 3, 4]), k, generator=g),
}


# ----------------------------------------------------------------------------- common contract

@pytest.mark.parametrize("name", FUNCS)
def test_shape_dtype_device_range(name, images, kernels):
    y = FUNCS[name](images, gen(), kernels)
    assert y.shape == images.shape and y.dtype == images.dtype and y.device == images.device
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.equal(y, images)


@pytest.mark.parametrize("name", FUNCS)
def test_seeded_determinism(name, images, kernels):
    a = FUNCS[name](images, gen(7), kernels)
    b = FUNCS[name](images, gen(7), kernels)
    c = FUNCS[name](images, gen(8), kernels)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_half_precision_roundtrip(images, kernels):
    y = D.degrade(images.half(), torch.tensor([0, 1, 2, 3]), kernels, generator=gen())
    assert y.dtype == torch.float16 and torch.isfinite(y).all()


# ----------------------------------------------------------------------------- each degradation

def test_gaussian_noise_matches_sigma():
    x = torch.full((4, 3, 64, 64), 0.5)
    y = D.gaussian_noise(x, generator=gen(), sigma=torch.tensor([0.02, 0.05, 0.08, 0.1]))
    std = (y - x).std(dim=(1, 2, 3))
    assert torch.allclose(std, torch.tensor([0.02, 0.05, 0.08, 0.1]), rtol=0.06)
    # drawn sigmas stay within [0, sigma_max] and differ between images
    y = D.gaussian_noise(torch.full((16, 3, 32, 32), 0.5), sigma_max=0.1, generator=gen())
    std = (y - 0.5).std(dim=(1, 2, 3))
    assert std.max() < 0.1 * 1.08 and std.max() - std.min() > 0.02
    assert D.gaussian_noise(x, generator=gen(), sigma=0.2, clip=False).min() < 0


def test_poisson_gaussian_is_signal_dependent_and_can_be_gray():
    x = torch.cat([torch.full((8, 3, 32, 32), 0.05), torch.full((8, 3, 32, 32), 0.4)])
    g = gen()
    y = D.poisson_gaussian_noise(x, generator=g, read_sigma_max=0.0, peak_range=(30.0, 30.0), gray_prob=0.0)
    std = (y - x).std(dim=(1, 2, 3))
    assert std[8:].mean() > 2.5 * std[:8].mean()          # shot noise grows like sqrt(signal)
    assert torch.allclose(std[8:].mean(), torch.tensor((0.4 / 30) ** 0.5), rtol=0.05)   # var = x / peak
    gray = D.poisson_gaussian_noise(x, generator=g, gray_prob=1.0)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    colour = D.poisson_gaussian_noise(x, generator=g, gray_prob=0.0)
    assert not torch.equal(colour[:, 0], colour[:, 1])


def test_microscope_noise_is_gray_pulse_noise_on_a_dark_offset():
    x = torch.full((16, 3, 64, 64), 0.2)
    fixed = dict(peak_range=(80.0, 80.0), gain_shape_range=(3.5, 3.5), read_range=(0.0, 0.0),
                 correlation_range=(0.0, 0.0))
    y, target = D.microscope_noise(x, generator=gen(), offset_range=(0.0, 0.0), quantize_prob=0.0, **fixed)
    assert torch.equal(target, x)
    assert abs((y - x).mean()) < 1e-3                                     # unbiased
    # pulses of random height: 1 + 1/shape times the variance of plain shot noise
    assert torch.allclose((y - x).var(), torch.tensor(0.2 / 80 * (1 + 1 / 3.5)), rtol=0.05)
    y, target = D.microscope_noise(x, generator=gen(), quantize_prob=1.0, **fixed)
    offset = (target - x)[:, 0, 0, 0]
    assert (offset >= 0).all() and offset.max() <= 0.03 and offset.std() > 0   # a dark level per image
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])    # gray
    assert torch.equal(y, (y * 255).round() / 255)                             # 8-bit frames
    black = torch.zeros(4, 3, 64, 64)
    y, target = D.microscope_noise(black, generator=gen(), peak_range=(80.0, 80.0))
    clip = (target[:, :1, :1, :1] - 1.5 / 255).clamp_min(0)
    assert (y >= clip).all()                          # the black clip sits just below the offset
    assert torch.allclose(y.median(), target.median(), atol=3 / 255)   # a dark frame reads its offset


def test_rain_brightens_sparse_streaks(images):
    y = D.rain(images, generator=gen())
    diff = (y - images).mean(dim=1)
    assert (y >= images - 1e-5).all()                      # screen blending never darkens
    changed = (diff > 0.03).float().mean(dim=(1, 2))
    assert (changed > 0.005).all() and (changed < 0.6).all()
    # streaks are elongated: the rain layer is much smoother along its direction than across
    # (angles are within 30 degrees of vertical)
    layer = y - images
    assert ((layer.diff(dim=-2) ** 2).mean() < (layer.diff(dim=-1) ** 2).mean())


def test_heavy_rain_adds_mist_and_more_streaks(images):
    light = D.rain(images, generator=gen())
    heavy = D.rain(images, generator=gen(), heavy_share=1.0)
    # the veil of mist lowers contrast, and there is much more rain over it
    assert (heavy.std(dim=(1, 2, 3)) < light.std(dim=(1, 2, 3))).all()
    assert (heavy - images).mean() > 2 * (light - images).mean()
    # without heavy rain the random stream is untouched: earlier runs' crops stay the same
    assert torch.equal(D.rain(images, generator=gen(), heavy_share=0.0), light)


def test_haze_lowers_contrast_raises_mean(images):
    y = D.haze(images, generator=gen())
    assert (y.mean(dim=(1, 2, 3)) > images.mean(dim=(1, 2, 3))).all()
    assert (y.std(dim=(1, 2, 3)) < images.std(dim=(1, 2, 3))).all()


def test_clear_share_gives_light_haze_down_to_none(images):
    # the dehaze prompt must also see clear images, so that it learns to leave them alone
    hazy = D.haze(images, generator=gen())
    light = D.haze(images, generator=gen(), clear_share=1.0)
    assert (light - images).abs().mean() < 0.5 * (hazy - images).abs().mean()
    clear = D.haze(images, generator=gen(), beta_range=(0.0, 1.0), clear_share=1.0)  # beta = 0
    assert torch.allclose(clear, images, atol=1e-5)


def test_blur_removes_high_frequencies(images, kernels):
    y = D.blur(images, kernels[1:], generator=gen(), noise_max=0.0)
    assert (hf_energy(y) < 0.6 * hf_energy(images)).all()
    assert torch.allclose(y.mean(dim=(1, 2, 3)), images.mean(dim=(1, 2, 3)), atol=0.02)
    ident = D.blur(images, kernels[:1], generator=gen(), motion_prob=0.0, noise_max=0.0)
    assert torch.allclose(ident, images, atol=1e-4)     # the delta kernel leaves images alone
    motion = D.blur(images, None, generator=gen(), noise_max=0.0)   # trajectories only
    assert (hf_energy(motion) < hf_energy(images)).all()


def test_motion_kernels_are_normalised_trajectories():
    k = D.motion_kernels(16, gen())
    assert k.shape == (16, 1, D.KERNEL_SIZE, D.KERNEL_SIZE)
    assert (k >= 0).all()
    assert torch.allclose(k.sum(dim=(1, 2, 3)), torch.ones(16), atol=1e-5)
    support = (k > 1e-4).sum(dim=(1, 2, 3))
    assert (support > 5).all() and (support < 0.5 * D.KERNEL_SIZE**2).all()   # a path, not a blob
    assert torch.equal(k, D.motion_kernels(16, gen()))
    assert _centroid_offsets(k).abs().max() < 1e-4     # the blur does not shift the image


def _centroid_offsets(k: torch.Tensor) -> torch.Tensor:
    """Each kernel's centre of mass minus its centre pixel, (row, column), in px."""
    k = k[:, 0].double()
    pos = torch.arange(k.shape[-1], dtype=torch.float64)
    mass = k.sum((1, 2))
    rows, cols = (k.sum(2) * pos).sum(1) / mass, (k.sum(1) * pos).sum(1) / mass
    return torch.stack([rows, cols], 1) - (k.shape[-1] - 1) / 2


def test_centre_kernels_moves_the_centre_of_mass_to_the_centre():
    k = torch.zeros(2, 1, 9, 9)
    k[0, 0, 0, 0:3] = torch.tensor([1.0, 2.0, 0.5])   # a short stroke in a corner
    k[1, 0, 4, 4] = 1.0                                 # already centred: left alone
    centred = D.centre_kernels(k / k.sum((2, 3), keepdim=True))
    assert centred.shape[-1] % 2 == 1 and centred.shape[-1] >= 9
    assert (centred >= 0).all() and torch.allclose(centred.sum((1, 2, 3)), torch.ones(2))
    assert _centroid_offsets(centred).abs().max() < 1e-6
    half = centred.shape[-1] // 2
    assert centred[1, 0, half, half] == pytest.approx(1.0)


def test_a_loaded_off_centre_kernel_blurs_without_shifting(tmp_path):
    stroke = np.zeros((15, 15))
    stroke[2, 9:14] = 1.0                                # mass 5 px above and 4 px right of the centre
    np.savez(tmp_path / "k.npz", k1=stroke)
    dot = torch.zeros(1, 3, 64, 64)
    dot[..., 30, 20] = 1.0
    for centre, expected in ((True, (30.0, 20.0)), (False, (25.0, 24.0))):
        y = D.blur(dot, D.load_kernels(tmp_path / "k.npz", centre=centre), generator=gen(),
                   motion_prob=0.0, noise_max=0.0)[0, 0].double()
        pos = torch.arange(64, dtype=torch.float64)
        where = ((y.sum(1) * pos).sum() / y.sum(), (y.sum(0) * pos).sum() / y.sum())
        assert where == pytest.approx(expected, abs=1e-3)


def test_underexpose_darkens_and_quantises(images):
    y = D.underexpose(images, generator=gen())
    assert (y.mean(dim=(1, 2, 3)) < 0.4 * images.mean(dim=(1, 2, 3))).all()
    assert (y.mean(dim=(1, 2, 3)) < 0.25).all()
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-3)


def test_load_kernels_pads_and_normalises(tmp_path):
    a = np.zeros((5, 5))
    a[2, 1:4] = 2.0
    b = np.ones((7, 7))
    np.savez(tmp_path / "k.npz", k1=a, k2=b, k10=np.ones((3, 3)))
    k = D.load_kernels(tmp_path / "k.npz")
    assert k.shape == (3, 1, 7, 7) and k.dtype == torch.float32
    assert torch.allclose(k.sum(dim=(1, 2, 3)), torch.ones(3))
    assert k[0, 0, 3, 2:5].sum() == pytest.approx(1.0)      # centred in the bigger support
    assert torch.allclose(k[2, 0, 2:5, 2:5], torch.full((3, 3), 1 / 9))   # k10 sorts after k2
    np.savez(tmp_path / "stack.npz", kernels=np.ones((4, 5, 5)))
    assert D.load_kernels(tmp_path / "stack.npz").shape == (4, 1, 5, 5)
    skipped = D.load_kernels(tmp_path / "k.npz", skip=["k2"])
    assert skipped.shape == (2, 1, 5, 5) and torch.equal(skipped[1], k[2, :, 1:6, 1:6])
    with pytest.raises(ValueError, match="k11"):
        D.load_kernels(tmp_path / "k.npz", skip=["k11"])


@pytest.mark.skipif(not SHARED_KERNELS.exists(), reason="shared data not present (../shared/data)")
def test_load_real_usrnet_kernels():
    k = D.load_kernels(SHARED_KERNELS)
    assert k.shape == (12, 1, 25, 25)
    assert torch.allclose(k.sum(dim=(1, 2, 3)), torch.ones(12), atol=1e-5)


def _support(kernel: torch.Tensor) -> torch.Tensor:
    """A kernel cut to its non-zero rows and columns (so padding does not hide a match)."""
    k = kernel.reshape(kernel.shape[-2:])
    rows, cols = k.sum(1).nonzero().flatten(), k.sum(0).nonzero().flatten()
    return k[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


@pytest.mark.skipif(not SHARED_KERNELS.exists() or not TEST_KERNELS.exists(), reason="shared data not present (../shared/data)")
@pytest.mark.parametrize("config", sorted((REPO / "training" / "configs").glob("*.toml")), ids=lambda p: p.stem)
def test_no_training_config_blurs_with_a_test_kernel(config):
    """The USRNet set repeats two of the Levin kernels, which are test data: every config must
    leave them out of its training (and validation) pool."""
    data = tomllib.loads(config.read_text())["data"]
    # As stored (not centred: centring interpolates, which would hide a match).
    pool = [_support(k) for k in D.load_kernels(SHARED / data["kernels"], skip=data.get("kernels_skip", ()), centre=False)]
    for t, test_kernel in enumerate(D.load_kernels(TEST_KERNELS, centre=False)):
        test_kernel = _support(test_kernel)
        for i, k in enumerate(pool):
            same = k.shape == test_kernel.shape and torch.allclose(k, test_kernel, atol=1e-6)
            assert not same, f"{config.name}: training kernel {i + 1} of the pool is Levin test kernel k{t + 1}"


def test_degrade_routes_each_task(monkeypatch, images, kernels):
    marks = {"gaussian_noise": 0.01, "poisson_gaussian_noise": 0.02, "rain": 0.1,
             "haze": 0.2, "blur": 0.3, "underexpose": 0.4}
    for name, value in marks.items():
        monkeypatch.setattr(D, name, lambda x, *a, v=value, **k: torch.full_like(x, v))
    x = images.repeat(2, 1, 1, 1)[:6]
    ids = torch.tensor([4, 0, 2, 1, 3, 2])
    y = D.degrade(x, ids, kernels, generator=gen(), gaussian_prob=1.0)
    expected = torch.tensor([0.4, 0.01, 0.2, 0.1, 0.3, 0.2])
    assert torch.allclose(y[:, 0, 0, 0], expected)
    y = D.degrade(x, torch.zeros(6, dtype=torch.long), kernels, generator=gen(), gaussian_prob=0.0)
    assert torch.allclose(y, torch.full_like(y, 0.02))
    with pytest.raises(ValueError):
        D.degrade(x, torch.tensor([0, 1, 2, 3, 4, 5]), kernels, generator=gen())
    assert len(TASKS) == 5


# ----------------------------------------------------------------------------- data

def coord_image(h: int, w: int) -> np.ndarray:
    """R = column, G = row, B = 7: every pixel says where it came from."""
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[..., 0] = np.arange(w)[None, :]
    a[..., 1] = np.arange(h)[:, None]
    a[..., 2] = 7
    return a


def test_image_bank_crops_are_dihedral_crops(tmp_path):
    Image.fromarray(coord_image(50, 90)).save(tmp_path / "a.png")
    bank = ImageBank(tmp_path)
    crops = bank.sample(64, 32, gen())
    assert crops.shape == (64, 3, 32, 32) and crops.dtype == torch.float32
    v = (crops[:, :2] * 255).round().long()
    orientations = set()
    for c in v:
        dr, dc = c[:, 1:, :] - c[:, :-1, :], c[:, :, 1:] - c[:, :, :-1]
        # each coordinate channel changes by exactly +-1 along one axis and not along the other
        for ch in (0, 1):
            along_rows = dr[ch].abs().eq(1).all() and dc[ch].eq(0).all()
            along_cols = dc[ch].abs().eq(1).all() and dr[ch].eq(0).all()
            assert along_rows or along_cols
        orientations.add((bool(dr[0].abs().eq(1).all()), int(dr[0].sum().sign()) + int(dc[0].sum().sign()),
                          int(dr[1].sum().sign()) + int(dc[1].sum().sign())))
    assert len(orientations) >= 6                          # flips and rotations both happen
    assert torch.allclose(crops[:, 2], torch.full_like(crops[:, 2], 7 / 255))
    assert torch.equal(crops, bank.sample(64, 32, gen()))


def test_image_bank_small_gray_and_portrait_images(tmp_path):
    Image.fromarray(coord_image(20, 30)[..., 0]).save(tmp_path / "gray.bmp")          # gray, smaller than the crop
    Image.fromarray(coord_image(80, 40)).save(tmp_path / "portrait.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    bank = ImageBank(tmp_path)
    assert len(bank) == 2 and bank.canvas.dtype == torch.uint8
    crops = bank.sample(16, 48, gen(3))
    assert crops.shape == (16, 3, 48, 48)
    assert crops.min() >= 0 and crops.max() <= 1
    small = ImageBank(tmp_path / "gray.bmp").sample(4, 48, gen())   # mirror-padded, not skipped
    assert torch.equal(small[:, 0], small[:, 1]) and torch.equal(small[:, 1], small[:, 2])
    assert set((small[:, 0] * 255).round().unique().tolist()) <= set(range(30))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError):
        ImageBank(empty)


def test_paired_bank_keeps_pairs_aligned(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "gt").mkdir()
    for i, (h, w) in enumerate([(40, 60), (70, 50)]):
        gt = coord_image(h, w)
        Image.fromarray(gt).save(tmp_path / "gt" / f"img{i}.png")
        Image.fromarray(gt // 2).save(tmp_path / "in" / f"img{i}.bmp")                 # extensions differ
    Image.fromarray(coord_image(40, 60)).save(tmp_path / "in" / "unpaired.png")
    pairs = PairedBank(tmp_path / "in", tmp_path / "gt")
    assert pairs.stems == ["img0", "img1"]
    inp, tgt = pairs.sample(12, 32, gen())
    assert inp.shape == tgt.shape == (12, 3, 32, 32)
    assert torch.equal((inp * 255).round(), ((tgt * 255).round() / 2).floor())
    a, b = pairs.sample(12, 32, gen())
    assert torch.equal(a, inp) and torch.equal(b, tgt)
    assert PairedBank(tmp_path / "in", tmp_path / "gt", stems=["img1", "nope"]).stems == ["img1"]


def test_split_files_is_deterministic_and_disjoint():
    files = [f"/data/x/{i:03d}.png" for i in range(50)]
    train, val = split_files(files, 0.2, seed=1)
    assert len(val) == 10 and len(train) == 40
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(files)
    assert split_files(list(reversed(files)), 0.2, seed=1) == (train, val)
    assert split_files(files, 0.2, seed=2)[1] != val


@pytest.fixture()
def banks(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "clean").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "clean" / f"{i}.png")
    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    for i in range(2):   # real low-light pairs: constant 3/255 inputs, easy to spot
        Image.fromarray(np.full((50, 50, 3), 3, np.uint8)).save(tmp_path / "low" / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(tmp_path / "high" / f"{i}.png")
    return ImageBank(tmp_path / "clean"), PairedBank(tmp_path / "low", tmp_path / "high")


def test_training_batcher_balanced_deterministic(banks, kernels):
    clean, pairs = banks
    batcher = TrainingBatcher(clean, pairs, kernels, crop=32, seed=5)
    degraded, target, ids = batcher.next(20)
    assert degraded.shape == target.shape == (20, 3, 32, 32)
    assert ids.dtype == torch.long and ids.shape == (20,)
    assert torch.bincount(ids, minlength=5).tolist() == [4, 4, 4, 4, 4]
    assert degraded.min() >= 0 and degraded.max() <= 1
    low = ids == TASKS.index("lowlight")
    assert (degraded[low].mean(dim=(1, 2, 3)) < 0.5 * target[low].mean(dim=(1, 2, 3))).all()
    again = TrainingBatcher(clean, pairs, kernels, crop=32, seed=5).next(20)
    assert all(torch.equal(a, b) for a, b in zip((degraded, target, ids), again))
    assert not torch.equal(batcher.next(20)[0], degraded)
    # uneven batch sizes still sum up; the remainder varies between tasks
    counts = torch.bincount(batcher.next(7)[2], minlength=5)
    assert counts.sum() == 7 and counts.max() - counts.min() <= 1


def test_training_batcher_lowlight_mix_and_task_probs(banks, kernels):
    clean, pairs = banks
    batcher = TrainingBatcher(clean, pairs, kernels, task_probs=[0, 0, 0, 0, 1], crop=24, seed=0)
    degraded, _, ids = batcher.next(64)
    assert (ids == 4).all()
    real = (degraded.flatten(1) == 3 / 255).all(dim=1)
    assert 16 < int(real.sum()) < 48                       # about half real pairs
    synthetic_only = TrainingBatcher(clean, None, kernels, task_probs=[0, 0, 0, 0, 1], crop=24, seed=0)
    degraded, _, _ = synthetic_only.next(16)
    assert not (degraded.flatten(1) == 3 / 255).all(dim=1).any()
    denoise = TrainingBatcher(clean, pairs, None, task_probs=[1, 0, 0, 0, 0], crop=24)
    assert (denoise.next(8)[2] == 0).all()
    with pytest.raises(ValueError):
        TrainingBatcher(clean, pairs, kernels, task_probs=[1, 1])


def test_heavy_rain_share_reaches_only_the_rain_crops(banks, kernels):
    clean, pairs = banks
    plain = TrainingBatcher(clean, pairs, kernels, crop=32, seed=5).next(20)
    heavy = TrainingBatcher(clean, pairs, kernels, crop=32, seed=5, heavy_rain_share=1.0).next(20)
    assert torch.equal(plain[2], heavy[2])
    rain = plain[2] == TASKS.index("derain")
    assert torch.equal(plain[1][rain], heavy[1][rain])                 # the same clean crops, more rain
    assert (heavy[0][rain] - heavy[1][rain]).mean() > (plain[0][rain] - plain[1][rain]).mean()


def test_gaussian_prob_chooses_the_noise_of_the_denoising_crops(monkeypatch, banks):
    monkeypatch.setattr(D, "gaussian_noise", lambda x, *a, **k: torch.full_like(x, 0.01))
    monkeypatch.setattr(D, "poisson_gaussian_noise", lambda x, *a, **k: torch.full_like(x, 0.02))
    clean, pairs = banks
    for prob, value in ((1.0, 0.01), (0.0, 0.02)):
        degraded, _, _ = TrainingBatcher(clean, pairs, None, task_probs=[1, 0, 0, 0, 0], crop=32,
                                         fluorescence_fraction=0.0, gaussian_prob=prob).next(8)
        assert torch.allclose(degraded, torch.full_like(degraded, value))


def test_clean_share_leaves_synthetic_crops_of_every_task_undegraded(banks, kernels):
    clean, pairs = banks
    plain = TrainingBatcher(clean, pairs, kernels, crop=32, seed=5).next(40)
    assert all(torch.equal(a, b) for a, b in zip(plain, TrainingBatcher(clean, pairs, kernels, crop=32, seed=5,
                                                                         clean_share=0.0).next(40)))
    degraded, target, ids = TrainingBatcher(clean, pairs, kernels, crop=32, seed=5, clean_share=1.0).next(40)
    real = (degraded.flatten(1) == 3 / 255).all(dim=1)                   # the real low-light pairs stay
    assert torch.equal(real, (plain[0].flatten(1) == 3 / 255).all(dim=1)) and real.any()
    assert torch.equal(ids, plain[2]) and torch.equal(target[~real], plain[1][~real])   # same crops, labels
    assert torch.equal(degraded[~real], target[~real])
    degraded, target, ids = TrainingBatcher(clean, pairs, kernels, crop=32, seed=5, clean_share=0.5).next(200)
    spared = (degraded == target).flatten(1).all(dim=1)
    for task in range(len(TASKS)):
        assert spared[ids == task].any() and not spared[ids == task].all(), TASKS[task]


def test_some_denoising_crops_are_dark_gray_like_fluorescence(tmp_path):
    from PIL import Image

    from pip_filters.training.data import ImageBank, TrainingBatcher

    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(100, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    bank = ImageBank(tmp_path)
    batcher = TrainingBatcher(bank, task_probs=[1, 0, 0, 0, 0], crop=32, fluorescence_fraction=1.0)
    degraded, clean, ids = batcher.next(6)
    assert (ids == 0).all()
    for images in (clean, degraded):  # gray, noisy input included (a gray camera records gray noise)
        assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 1], images[:, 2])
    assert clean.mean() < 0.6 * bank.sample(6, 32).mean()  # and dark, target included
    assert not torch.equal(degraded, clean)  # and noisy


def test_real_lowlight_gain_varies_the_real_inputs_not_their_targets(banks, kernels):
    clean, pairs = banks
    options = dict(task_probs=[0, 0, 0, 0, 1], real_lowlight_fraction=1.0, crop=24, seed=3)
    plain = TrainingBatcher(clean, pairs, kernels, **options).next(32)
    assert all(torch.equal(a, b) for a, b in zip(plain, TrainingBatcher(clean, pairs, kernels, real_lowlight_gain=1.0,
                                                                         **options).next(32)))
    degraded, target, ids = TrainingBatcher(clean, pairs, kernels, real_lowlight_gain=2.0, **options).next(32)
    assert torch.equal(ids, plain[2])
    level = degraded.flatten(1)
    assert (level == level[:, :1]).all()                        # one gain per crop, the whole crop
    gains = level[:, 0] / (3 / 255)
    assert gains.min() >= 0.5 - 1e-4 and gains.max() <= 2 + 1e-4
    assert gains.min() < 0.8 and gains.max() > 1.25             # darker and brighter both drawn
    assert torch.equal(target, plain[1])                        # the same crops, the same targets
    with pytest.raises(ValueError):
        TrainingBatcher(clean, pairs, kernels, real_lowlight_gain=0.5)
