"""The accelerator's paths against the CPU's, on what users pass in. Skipped without CUDA (CI has
none): `tools/gpu_bench.sh` runs this file first on a lent GPU."""

import numpy as np
import pytest
import torch

import pip_filters

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def pair():
    cpu = pip_filters.load("pip-nafnet-t", device="cpu", precision="fp32")
    gpu = pip_filters.load("pip-nafnet-t", device="cuda", precision="fp32")
    return cpu, gpu


def _frames(n=4, h=136, w=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_video_batch_is_converted_on_the_gpu_and_matches_the_cpu(pair):
    cpu, gpu = pair
    frames = _frames()
    assert gpu._work_device((4, 3, 136, 200), None).type == "cuda"
    prompt_cpu, prompt_gpu = cpu.prompt(frames[0]), gpu.prompt(frames[0])
    a = cpu.restore(frames, prompt=prompt_cpu)
    b = gpu.restore(frames, prompt=prompt_gpu)
    assert b.dtype == np.uint8 and b.shape == frames.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # TF32/cuDNN against the CPU's float32


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float16])
def test_other_dtypes_and_nan_match_the_cpu(pair, dtype):
    cpu, gpu = pair
    rng = np.random.default_rng(1)
    if dtype == np.uint16:
        image = rng.integers(100, 4000, (96, 120), dtype=np.uint16)
    else:
        image = rng.random((96, 120, 3)).astype(dtype)
        image[5, 7, 1] = np.nan
    a = cpu.restore(image, task="denoise")
    b = gpu.restore(image, task="denoise")
    assert b.dtype == image.dtype and b.shape == image.shape
    if dtype != np.uint16:
        assert np.isnan(b[5, 7, 1]) and np.isfinite(np.delete(b.ravel(), np.ravel_multi_index((5, 7, 1), b.shape))).all()
    scale = 40 if dtype == np.uint16 else 0.01
    assert np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64))) <= scale


def test_tiled_image_stays_on_the_host_and_matches(pair):
    cpu, gpu = pair
    image = _frames(1, 300, 260)[0]
    assert gpu._work_device((1, 3, 300, 260), 128).type == "cpu"
    a = cpu.restore(image, task="denoise", tile=128, overlap=16)
    b = gpu.restore(image, task="denoise", tile=128, overlap=16)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_torch_input_comes_back_on_its_device(pair):
    _, gpu = pair
    x = torch.rand(2, 3, 64, 80, device="cuda")
    out = gpu.restore(x, task="denoise", channel_axis=1)
    assert out.device == x.device and out.shape == x.shape and out.dtype == x.dtype


def test_fp16_and_graphs_match_fp32():
    frames = _frames(4, 128, 192)
    ref = pip_filters.load(device="cuda", precision="fp32")  # the default model
    prompt = ref.prompt("denoise")
    a = ref.restore(frames, prompt=prompt)
    for fast in (pip_filters.load(device="cuda", precision="fp16"),
                 pip_filters.load(device="cuda", precision="fp16", compile="reduce-overhead")):
        for _ in range(3):  # CUDA graphs are recorded after warm-up calls
            b = fast.restore(frames, prompt=prompt)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 0.5


def long_products(network, x: torch.Tensor) -> list:
    """The matrix products over more pixels than one chunk of the GPU form (the CPU form's
    single product over all pixels of a feature map) that one call of the network runs."""
    from torch.profiler import ProfilerActivity, profile

    from pip_filters.models.layers import GRAM_CHUNK

    weights = torch.full((x.shape[0], 5), 0.2, device=x.device)
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        network(x, weights)
    return [e.input_shapes for e in prof.events()
            if e.name == "aten::bmm" and e.input_shapes and e.input_shapes[0][-1] > GRAM_CHUNK]


def test_compiled_network_takes_the_gpu_forms():
    """torch.compile once traced the CPU form of the channel attention on GPUs (dynamo before
    torch 2.14 reads torch.compiler.is_exporting() as True): 61 % of an H100's time at 1080p."""
    gpu = pip_filters.load("pip-nafnet-t", device="cuda", precision="fp16")
    x = gpu._input(torch.rand(1, 3, 256, 256))  # 65,536 pixels at the first level, > GRAM_CHUNK
    assert long_products(torch.compile(gpu.model, backend="eager"), x) == []  # dynamo's graph, no inductor


def test_submitting_a_video_batch_does_not_wait_for_the_gpu(pair):
    _, gpu = pair
    frames = _frames()
    prompt = gpu.prompt(frames[0])
    expected = gpu.restore(frames, prompt=prompt)  # also warms up (cuDNN plans, the prompt's copy)
    torch.cuda.set_sync_debug_mode("error")  # any host-device synchronisation raises
    try:
        pending = gpu.submit(frames, prompt=prompt)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert np.array_equal(pending.result(), expected)


def test_batches_in_flight_come_back_each_with_its_own_frames(pair):
    _, gpu = pair
    batches = [_frames(seed=s) for s in range(3)]
    prompt = gpu.prompt(batches[0][0])
    one_by_one = [gpu.restore(b, prompt=prompt) for b in batches]
    pending = [gpu.submit(b, prompt=prompt) for b in batches]  # all queued before any result
    for p, expected in zip(pending, one_by_one):
        assert np.array_equal(p.result(), expected)
