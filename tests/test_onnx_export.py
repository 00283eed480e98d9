"""pip-export --onnx: ONNX Runtime must give what PyTorch gives, for any batch, size and task."""

import numpy as np
import pytest
import torch

import pip_filters
from pip_filters.onnx_export import export_onnx, main

ort = pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
pytest.importorskip("onnxscript", reason="the export extra (onnxscript) is not installed")


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_onnx_runtime_matches_pytorch_with_the_prompt_as_an_input(tmp_path):
    restorer = pip_filters.load("pip-nafnet-t", device="cpu", precision="fp32")
    path = export_onnx(restorer, tmp_path / "tiny.onnx")
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["image", "task_weights"]
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["pip_filters.model"] == "pip-nafnet-t" and meta["pip_filters.tasks"].startswith("denoise,derain")

    torch.manual_seed(0)
    for shape in [(1, 3, 48, 64), (3, 3, 80, 40)]:  # batch and size other than the export's example
        image = torch.rand(shape)
        weights = torch.softmax(torch.randn(shape[0], 5) * 3, dim=1)
        with torch.inference_mode():
            expected = restorer.model(image.contiguous(memory_format=torch.channels_last), weights).numpy()
        (got,) = session.run(None, {"image": image.numpy(), "task_weights": weights.numpy()})
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_cli_bakes_a_task_in_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "derain.onnx"
    assert main(["--onnx", str(out), "--model", "pip-nafnet-t", "--task", "derain"]) == 0
    session = _session(out)
    assert [i.name for i in session.get_inputs()] == ["image"]
    restorer = pip_filters.load("pip-nafnet-t", device="cpu", precision="fp32")
    image = torch.rand(2, 3, 32, 56)
    with torch.inference_mode():
        expected = restorer.restore(image, task="derain", channel_axis=1).numpy()
    (got,) = session.run(None, {"image": image.numpy()})
    np.testing.assert_allclose(np.clip(got, 0, 1), expected, atol=1e-4)

    before = out.read_bytes()
    assert main(["--onnx", str(out), "--model", "pip-nafnet-t"]) == 1
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["--onnx", str(tmp_path / "auto.onnx"), "--model", "pip-nafnet-t", "--task", "auto"]) == 1
    assert not (tmp_path / "auto.onnx").exists()
