"""The fast paths must restore what the eager float32 reference restores."""

import numpy as np
import pytest
import torch

import pip_filters


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return (rng.random((56, 72, 3)) * 255).astype(np.uint8)


def test_compiled_network_matches_eager(image):
    eager = pip_filters.load("pip-nafnet-t", device="cpu", precision="fp32")
    compiled = pip_filters.load("pip-nafnet-t", device="cpu", precision="fp32", compile=True)
    assert compiled.network is not compiled.model
    for task in ("derain", {"denoise": 0.5, "lowlight": 0.5}):
        a = eager.restore(image.astype(np.float32) / 255, task=task)
        b = compiled.restore(image.astype(np.float32) / 255, task=task)
        assert b.shape == a.shape and b.dtype == a.dtype
        np.testing.assert_allclose(b, a, atol=1e-4)


def test_compiled_network_compiles_once_for_a_short_last_batch(image):
    """A video's last batch is usually short; compiling again for it would cost tens of seconds."""
    from torch._dynamo.utils import counters

    frames = np.stack([np.roll(image, shift, axis=1) for shift in range(5)])
    eager = pip_filters.load("pip-nafnet-t2", device="cpu", precision="fp32")
    compiled = pip_filters.load("pip-nafnet-t2", device="cpu", precision="fp32", compile=True)
    graphs = counters["stats"]["unique_graphs"]
    restored = compiled.restore(frames, task="denoise", batch_size=2)  # batches of 2, 2 and 1
    assert counters["stats"]["unique_graphs"] == graphs + 1
    np.testing.assert_allclose(restored.astype(int), eager.restore(frames, task="denoise", batch_size=2).astype(int), atol=1)


def test_bfloat16_on_cpu_stays_close_to_float32(image):
    reference = pip_filters.load("pip-nafnet-t", device="cpu", precision="fp32").restore(image, task="denoise")
    half = pip_filters.load("pip-nafnet-t", device="cpu", precision="bf16").restore(image, task="denoise")
    assert half.dtype == np.uint8 and half.shape == image.shape
    difference = np.abs(half.astype(int) - reference.astype(int))
    assert difference.mean() < 1.0 and difference.max() <= 12


def test_compiled_bfloat16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="fp32"):
        pip_filters.load("pip-nafnet-t", device="cpu", precision="bf16", compile=True)


def test_bench_row_reports_a_checked_speed():
    from pip_filters.bench import format_table, run_row

    threads = torch.get_num_threads()  # run_row sets its own; give the other tests theirs back
    row = run_row({"model": "pip-nafnet-t", "mode": "eager", "precision": "fp32", "batch": 2, "device": "cpu",
                   "width": 64, "height": 48, "threads": 1, "repeats": 2, "warmup": 1})
    torch.set_num_threads(threads)
    assert row["images_per_s"] > 0 and row["finite"] and row["relative_error"] < 1e-5
    assert 0.5 < row["params_m"] < 0.7 and row["gflops_per_mp"] > 1
    table = format_table([row])
    assert "pip-nafnet-t" in table and "WRONG" not in table


def test_bench_pads_sizes_the_network_cannot_take_as_restore_does():
    from pip_filters.bench import run_row

    threads = torch.get_num_threads()
    # pip-nafnet-t2 needs sides divisible by 16; 1080p rows (1080 = 16 * 67.5) must still run.
    row = run_row({"model": "pip-nafnet-t2", "mode": "eager", "precision": "fp32", "batch": 1, "device": "cpu",
                   "width": 56, "height": 40, "threads": 1, "repeats": 1, "warmup": 0})
    torch.set_num_threads(threads)
    assert row["images_per_s"] > 0 and row["finite"] and row["relative_error"] < 1e-5


def test_bench_names_the_exception_of_a_row_that_fails(capsys):
    from pip_filters.bench import _run_in_subprocess, format_table

    row = _run_in_subprocess({"model": "no-such-model", "mode": "eager", "precision": "fp32", "batch": 1,
                              "device": "cpu", "width": 32, "height": 32, "threads": 1, "repeats": 1,
                              "warmup": 1}, timeout=120)
    assert row["failed"].startswith("ValueError: unknown model 'no-such-model'")
    assert "failed: ValueError: unknown model" in format_table([row])
    assert "Traceback" in capsys.readouterr().err  # the whole error is in the log


def test_bench_failure_names_the_cause_not_the_compiler_hint():
    from pip_filters.bench import failure_message

    stderr = """Traceback (most recent call last):
  File "bench.py", line 1, in <module>
torch._dynamo.exc.Unsupported: Data-dependent branching
  Explanation: the branch depends on a tensor value

Set TORCHDYNAMO_VERBOSE=1 for the internal stack trace (please do this especially if you're reporting a bug to PyTorch).
"""
    assert failure_message(stderr) == "torch._dynamo.exc.Unsupported: Data-dependent branching"
    assert failure_message("") == "no output"


# The GPU forms of layer norm, 1x1 convolutions and channel attention (GPU-only in the model, plain torch, so
# checked here on the CPU): same values as the CPU forms, and no overflow in half precision.
HALF = [(torch.float32, 1e-5), (torch.float16, 5e-3), (torch.bfloat16, 3e-2)]


@pytest.mark.parametrize("dtype,tolerance", HALF)
def test_gpu_layer_norm_matches_the_fused_kernel(dtype, tolerance):
    import torch.nn.functional as F

    from pip_filters.models.layers import layer_norm_over_channels

    generator = torch.Generator().manual_seed(0)
    # Features of 300: their squares (9e4) overflow float16, the normalised values must not.
    x = (torch.randn(2, 24, 9, 13, generator=generator) * 300).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.rand(24, generator=generator) + 0.5, torch.randn(24, generator=generator)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (24,), weight, bias, 1e-6).permute(0, 3, 1, 2)
    got = layer_norm_over_channels(x.to(dtype), weight.to(dtype), bias.to(dtype), 1e-6)
    assert got.dtype == dtype and torch.isfinite(got).all()
    assert ((got.float() - expected).norm() / expected.norm()) < tolerance


@pytest.mark.parametrize("dtype,tolerance", HALF)
def test_gpu_pointwise_conv_matches_the_convolution(dtype, tolerance):
    from pip_filters.models.layers import PointwiseConv, pointwise_as_matmul

    torch.manual_seed(0)
    conv = PointwiseConv(24, 48)
    x = torch.randn(2, 24, 9, 13).contiguous(memory_format=torch.channels_last)
    expected = conv(x)  # on the CPU: the convolution itself
    got = pointwise_as_matmul(x.to(dtype), conv.weight.to(dtype), conv.bias.to(dtype))
    assert got.dtype == dtype and got.shape == (2, 48, 9, 13) and got.is_contiguous(memory_format=torch.channels_last)
    assert ((got.float() - expected).norm() / expected.norm()) < tolerance


@pytest.mark.parametrize("dtype,tolerance", HALF)
def test_chunked_channel_gram_gives_the_cosine_of_one_product(dtype, tolerance, monkeypatch):
    from pip_filters.models import layers

    monkeypatch.setattr(layers, "GRAM_CHUNK", 64)  # many chunks on a small image
    generator = torch.Generator().manual_seed(0)
    q, k = ((torch.randn(2, 8, 12, 20, generator=generator) * 1000).contiguous(memory_format=torch.channels_last)
            for _ in range(2))
    q[1, 3] = 0  # a dead channel: similarity 0, not NaN
    qf, kf = q.flatten(2), k.flatten(2)
    expected = (qf @ kf.transpose(1, 2)) / (qf.norm(dim=-1)[..., None].clamp_min(1e-12) * kf.norm(dim=-1)[:, None, :])
    got = layers.channel_gram(layers._unit_channels(q.to(dtype)), layers._unit_channels(k.to(dtype)))
    assert got.dtype == torch.float32 and got.shape == (2, 8, 8) and torch.isfinite(got).all()
    assert (got - expected).abs().max() < tolerance
    assert (got[1, 3] == 0).all()


@pytest.mark.parametrize("dtype,tolerance", HALF)
def test_gpu_channel_cosine_matches_the_cpu_form_per_head(dtype, tolerance):
    from pip_filters.models import layers

    generator = torch.Generator().manual_seed(1)
    q, k = ((torch.randn(2, 12, 10, 14, generator=generator) * 1000).contiguous(memory_format=torch.channels_last)
            for _ in range(2))
    expected = layers.channel_cosine(q, k, heads=3)  # the CPU form: one float32 product per head
    got = layers._chunked_cosine(q.to(dtype), k.to(dtype), heads=3)
    assert got.dtype == torch.float32 and got.shape == expected.shape == (2, 3, 4, 4)
    assert (got - expected).abs().max() < tolerance


def test_gpu_forms_train_like_the_cpu_forms():
    """Training on a GPU runs the GPU forms' backward: same gradients as the CPU forms (a lent
    H100 once found an in-place op there that autograd refused)."""
    import torch.nn.functional as F

    from pip_filters.models import layers

    generator = torch.Generator().manual_seed(2)
    x = torch.randn(2, 12, 10, 14, generator=generator).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.rand(12, generator=generator) + 0.5, torch.randn(12, generator=generator)
    upstream = torch.randn(2, 12, 10, 14, generator=generator)

    def grad_of(f):
        leaf = x.clone().requires_grad_(True)
        (f(leaf) * upstream).sum().backward()
        return leaf.grad

    fused = grad_of(lambda t: F.layer_norm(t.permute(0, 2, 3, 1), (12,), weight, bias, 1e-6).permute(0, 3, 1, 2))
    written_out = grad_of(lambda t: layers.layer_norm_over_channels(t, weight, bias, 1e-6))
    torch.testing.assert_close(written_out, fused, rtol=1e-4, atol=1e-5)

    conv = layers.PointwiseConv(12, 12)
    as_matmul = grad_of(lambda t: layers.pointwise_as_matmul(t, conv.weight, conv.bias))
    torch.testing.assert_close(as_matmul, grad_of(conv), rtol=1e-4, atol=1e-5)

    k = torch.randn(2, 12, 10, 14, generator=generator)
    upstream = torch.randn(2, 3, 4, 4, generator=generator)
    one_product = grad_of(lambda t: layers.channel_cosine(t, k, heads=3))
    chunked = grad_of(lambda t: layers._chunked_cosine(t, k, heads=3))
    torch.testing.assert_close(chunked, one_product, rtol=1e-4, atol=1e-5)
