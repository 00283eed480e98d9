"""pip-restore as a user runs it: folders in, same names and formats out, inputs untouched."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import png
import pytest
import tifffile
from PIL import Image

from pip_filters.cli import main
from pip_filters.image_io import read_image

rng = np.random.default_rng(1)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (36, 30, 4), dtype=np.uint8)).save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)).save(folder / "nested" / "photo.jpg")
    Image.fromarray(rng.integers(0, 65535, (30, 34), dtype=np.uint16)).save(folder / "gray16.png")
    rgb16 = rng.integers(0, 65535, (20, 24, 3), dtype=np.uint16)
    with open(folder / "rgb16.png", "wb") as handle:
        png.Writer(24, 20, bitdepth=16, greyscale=False).write(handle, rgb16.reshape(20, -1).tolist())
    tifffile.imwrite(folder / "stack16.tif", rng.integers(0, 4000, (3, 32, 28), dtype=np.uint16), photometric="minisblack")
    tifffile.imwrite(folder / "float.tiff", rng.random((24, 24), dtype=np.float32) * 100)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_restores_a_folder_keeping_names_formats_dtypes_and_inputs(inputs, tmp_path, capsys):
    before = {p: digest(p) for p in inputs.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    assert main([str(inputs), "-o", str(out), "--model", "pip-nafnet-t", "--task", "denoise", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report) == 7
    assert len(report[str(inputs / "stack16.tif")]) == 3  # one reading per page of a stack
    readings = [w for v in report.values() for w in (v if isinstance(v, list) else [v])]
    assert all(abs(sum(w.values()) - 1) < 1e-4 for w in readings)
    for source in [p for p in before if p.suffix != ".txt"]:
        original, restored = read_image(source), read_image(out / source.relative_to(inputs))
        assert restored.array.shape == original.array.shape, source.name
        assert restored.array.dtype == original.array.dtype, source.name
        assert restored.format == original.format
    assert Image.open(out / "nested" / "photo.jpg").format == "JPEG"  # a folder's layout is kept
    assert len(tifffile.TiffFile(out / "stack16.tif").pages) == 3  # a multi-page stack stays one
    assert {p: digest(p) for p in before} == before  # no input was touched



def test_ensemble_flag_restores_with_flipped_copies(inputs, tmp_path):
    photo = inputs / "rgb.png"
    for flag, out in (([], "one"), (["--ensemble"], "ens")):
        assert main([str(photo), "-o", str(tmp_path / out), "--model", "pip-nafnet-t", "--task", "denoise", *flag]) == 0
    one, ens = (read_image(tmp_path / out / "rgb.png").array for out in ("one", "ens"))
    assert ens.shape == one.shape and ens.dtype == one.dtype == np.uint8
    assert np.abs(ens.astype(int) - one).mean() > 0.05

def test_never_overwrites_inputs_or_existing_outputs(inputs, tmp_path):
    target = inputs / "rgb.png"
    before = digest(target)
    assert main([str(target), "-o", str(inputs), "--model", "pip-nafnet-t"]) == 1
    assert digest(target) == before
    out = tmp_path / "out"
    out.mkdir()
    (out / "rgb.png").write_bytes(b"keep me")
    assert main([str(target), "-o", str(out), "--model", "pip-nafnet-t"]) == 1
    assert (out / "rgb.png").read_bytes() == b"keep me"
    assert main([str(target), "-o", str(out), "--model", "pip-nafnet-t", "--overwrite"]) == 0
    assert read_image(out / "rgb.png").array.shape == (40, 52, 3)


def test_same_names_in_two_folders_and_an_outdir_inside_the_input_folder(tmp_path, capsys):
    pictures = {"a/x.png": 10, "b/x.png": 200}
    for name, value in pictures.items():
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 24, 3), value, np.uint8)).save(tmp_path / "in" / name)
    out = tmp_path / "in" / "restored"
    args = [str(tmp_path / "in"), "-o", str(out), "--model", "pip-nafnet-t", "--task", "denoise"]
    assert main(args) == 0
    for name, value in pictures.items():  # each its own output, not one overwriting the other
        assert abs(read_image(out / name).array.mean() - value) < 20
    assert main(args + ["--overwrite"]) == 0  # the outputs inside the input folder are not restored again
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a/x.png", "b/x.png"]
    clash = [str(tmp_path / "in" / "a"), str(tmp_path / "in" / "b"), "-o", str(tmp_path / "flat"), "--model", "pip-nafnet-t"]
    with pytest.raises(SystemExit) as exit_:
        main(clash)
    assert exit_.value.code == 2 and "would both be written" in capsys.readouterr().err
    assert not (tmp_path / "flat").exists()


def test_a_corrupt_file_is_reported_and_the_others_still_restored(inputs, tmp_path, capsys):
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    assert main([str(inputs), "-o", str(out), "--model", "pip-nafnet-t"]) == 1
    assert "broken.png" in capsys.readouterr().err
    assert (out / "rgb.png").exists() and not (out / "broken.png").exists()
    assert not list(out.glob(".*partial"))  # no half-written files left behind


def test_clear_errors_for_missing_files_and_untrained_models(tmp_path):
    run = [sys.executable, "-m", "pip_filters.cli"]
    missing = subprocess.run(run + [str(tmp_path / "nope.png"), "-o", str(tmp_path)], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    untrained = subprocess.run(run + [str(image), "-o", str(tmp_path / "o"), "--model", "pip-restormer"],
                               capture_output=True, text=True)
    assert untrained.returncode == 2 and "no trained weights" in untrained.stderr
    bad_task = subprocess.run(run + [str(image), "-o", str(tmp_path / "o"), "--task", "sharpen"], capture_output=True, text=True)
    assert bad_task.returncode == 2 and "sharpen" in bad_task.stderr
