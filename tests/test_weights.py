"""Weights are safetensors with their config inside, checked by sha256; pickles are refused."""

import pickle

import pytest
import torch

import pip_filters
from pip_filters import registry
from pip_filters.models import build_model
from pip_filters.weights_io import WeightsError, load_weights, read_metadata, save_weights


@pytest.fixture
def tiny_file(tmp_path):
    config = registry.get_spec("pip-nafnet-t").config
    model = build_model(config)
    path = tmp_path / "tiny.safetensors"
    save_weights(path, model.state_dict(), config, {"name": "pip-nafnet-t", "trained": True})
    return path, model


def test_a_weights_file_round_trips_and_describes_itself(tiny_file):
    path, model = tiny_file
    state, header = load_weights(path)
    assert header["config"] == registry.get_spec("pip-nafnet-t").config
    assert read_metadata(path)["metadata"]["name"] == "pip-nafnet-t"
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor)
    restorer = pip_filters.load(weights=path, device="cpu")
    assert restorer.name == "pip-nafnet-t"


def test_a_tampered_file_is_refused(tiny_file):
    path, _ = tiny_file
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip bits inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="altered"):
        load_weights(path)


def test_a_shipped_file_must_match_its_pinned_sha256(tmp_path, monkeypatch):
    spec = registry.get_spec("pip-nafnet-t")
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    config = spec.config
    save_weights(tmp_path / "pip-nafnet-t.safetensors", build_model(config).state_dict(), config, {"trained": True})
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  pip-nafnet-t.safetensors\n")
    with pytest.raises(WeightsError, match="sha256"):
        pip_filters.load("pip-nafnet-t", device="cpu")
    (tmp_path / "SHA256SUMS").write_text("")
    with pytest.raises(WeightsError, match="SHA256SUMS"):
        pip_filters.load("pip-nafnet-t", device="cpu")


def test_pickle_files_are_refused_without_being_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"weights": Boom()}))
    with pytest.raises(WeightsError, match="pickle"):
        pip_filters.load(weights=path, device="cpu")
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    with pytest.raises(WeightsError):
        load_weights(tmp_path / "model.pt")


def test_missing_and_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(WeightsError, match="not a pip-filters weights file"):
        load_weights(tmp_path / "foreign.safetensors")


def test_shipped_weights_load_and_are_marked_trained():
    shipped = [name for name, spec in registry.MODELS.items() if spec.sha256]
    assert {"pip-nafnet-s", "pip-nafnet-t", "pip-nafnet-t2", "pip-nafnet-s2"} <= set(shipped)
    for name in shipped:
        restorer = pip_filters.load(name, device="cpu")
        assert restorer.trained and restorer.info["steps"] > 0
