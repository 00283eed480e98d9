"""The napari plugin with real napari and Qt (under Xvfb through pytest-xvfb), on the tiny model."""

import time

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
da = pytest.importorskip("dask.array")

from app_model.types import SubmenuItem  # noqa: E402
from napari._app_model import get_app_model  # noqa: E402
from napari.layers import Image, Labels  # noqa: E402
from napari.utils.notifications import notification_manager  # noqa: E402

from pip_filters.napari_plugin import jobs, samples  # noqa: E402
from pip_filters.napari_plugin.widget import RestoreWidget  # noqa: E402

TINY = "pip-nafnet-t"
QUICK = ["auto", "denoise", "derain", "dehaze", "deblur", "lowlight"]
WAIT_MS = 30_000


@pytest.fixture(autouse=True)
def tiny_quick_commands(monkeypatch):
    """Quick commands run the tiny model on the CPU here."""
    monkeypatch.setattr(jobs, "QUICK", jobs.Settings(model=TINY, device="cpu"))


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def image(shape=(48, 64, 3), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    high = 255 if dtype == np.uint8 else 4000
    return rng.integers(0, high, shape).astype(dtype)


def finish(qtbot, job):
    assert job is not None
    qtbot.waitUntil(lambda: job.done, timeout=WAIT_MS)
    return job


def errors():
    return [str(n.message) for n in notification_manager.records if n.severity == "error"]


def test_manifest_validates():
    # `npe2 validate pip-filters --imports`, in-process (finds the manifest through the entry point).
    from npe2.cli import app
    from typer.testing import CliRunner

    run = CliRunner().invoke(app, ["validate", "pip-filters", "--imports"])
    assert run.exit_code == 0 and "valid" in run.output, run.output


def test_menu_has_submenu_with_quick_commands_and_widget(viewer):
    menus = get_app_model().menus
    submenus = [item for item in menus.get_menu("napari/layers/filter") if isinstance(item, SubmenuItem)]
    ours = [item for item in submenus if item.submenu == "pip-filters/restore"]
    assert ours and ours[0].title == "Restore with PIP"
    commands = [item.command.id for item in menus.get_menu("pip-filters/restore")]
    assert commands == [f"pip-filters.restore_{task}" for task in QUICK] + ["pip-filters.widget"]
    # The same in the Qt menu bar: Layers > Filter > Restore with PIP.
    filter_menu = next(a.menu() for a in viewer.window.layers_menu.actions() if a.menu() and a.text() == "Filter")
    ours_qt = next(a.menu() for a in filter_menu.actions() if a.menu() and a.text() == "Restore with PIP")
    titles = [a.text() for a in ours_qt.actions() if not a.isSeparator()]
    assert titles[:2] == ["Auto (detect the degradation) (pip-filters)", "Denoise (pip-filters)"] and len(titles) == 7
    # The widget is also under Plugins.
    plugin_items = [getattr(item, "command", None) for item in menus.get_menu("napari/plugins")]
    assert "pip-filters.widget" in [c.id for c in plugin_items if c is not None]


def test_each_quick_command_adds_a_restored_layer(viewer, qtbot):
    source = viewer.add_image(image(), name="photo", scale=(0.5, 2.0), translate=(10, -3),
                              metadata={"origin": "test"})
    for task in QUICK:
        viewer.layers.selection.active = source
        job = finish(qtbot, get_app_model().commands.execute_command(f"pip-filters.restore_{task}").result())
        out = viewer.layers[viewer.layers.index(source) + 1]
        assert out is job.added and out.name == f"photo (PIP {task})"
        assert out.data.shape == source.data.shape and out.data.dtype == np.uint8 and out.rgb
        np.testing.assert_allclose(out.scale, source.scale)
        np.testing.assert_allclose(out.translate, source.translate)
        meta = out.metadata
        assert meta["origin"] == "test"
        assert meta["pip_filters"]["model"] == TINY and meta["pip_filters"]["task"] == task
        assert meta["pip_filters"]["strength"] == 1.0 and meta["pip_filters"]["source"] == "photo"
        weights = meta["pip_filters"]["weights"]
        assert set(weights) == {"denoise", "derain", "dehaze", "deblur", "lowlight"}
        assert abs(sum(weights.values()) - 1) < 1e-4
        if task != "auto":
            assert weights[task] == pytest.approx(1.0)
    assert len(viewer.layers) == 1 + len(QUICK)


def test_quick_command_on_gray_keeps_colormap_and_contrast(viewer, qtbot):
    source = viewer.add_image(image((40, 50), np.uint16), name="gray", colormap="magma",
                              contrast_limits=(100, 3000), rotate=30)
    job = finish(qtbot, get_app_model().commands.execute_command("pip-filters.restore_denoise").result())
    out = job.added
    assert out.colormap.name == "magma" and tuple(out.contrast_limits) == (100, 3000)
    np.testing.assert_allclose(out.rotate, source.rotate)
    assert out.data.dtype == np.uint16 and not out.rgb


def test_widget_restores_a_3d_stack_with_one_value_range(viewer, qtbot):
    stack = image((3, 40, 56), np.uint16)
    source = viewer.add_image(stack, name="cells", scale=(2.0, 0.3, 0.3), axis_labels=("z", "y", "x"),
                              units=("um", "um", "um"))
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.model.value, widget.device.value, widget.task.value = TINY, "cpu", "denoise"
    assert widget.layer.value is source
    job = finish(qtbot, widget.run())
    out = job.added
    assert out.data.shape == stack.shape and out.data.dtype == np.uint16
    assert tuple(out.axis_labels) == ("z", "y", "x") and [str(u) for u in out.units] == ["micrometer"] * 3
    np.testing.assert_allclose(out.scale, source.scale)
    assert out.contrast_limits == pytest.approx(source.contrast_limits)
    lo, hi = out.metadata["pip_filters"]["value_range"]
    assert 0 <= lo < hi <= 4000  # one range for the whole stack
    assert "denoise 100%" in widget.detected.value and widget.run_button.enabled
    assert widget.layer.value is source  # the new layer is selected, but Run stays on the source



def test_widget_best_quality_uses_the_ensemble_and_records_it(viewer, qtbot):
    source = viewer.add_image(image((2, 40, 56), np.uint16), name="cells", scale=(2.0, 0.3, 0.3))
    widget = RestoreWidget(viewer)
    widget.model.value, widget.device.value, widget.task.value = TINY, "cpu", "denoise"
    plain = finish(qtbot, widget.run()).added
    widget.ensemble.value = True
    viewer.layers.selection.active = source
    best = finish(qtbot, widget.run()).added
    assert best.data.shape == source.data.shape and best.data.dtype == np.uint16
    np.testing.assert_allclose(best.scale, source.scale)
    assert best.metadata["pip_filters"]["ensemble"] is True and plain.metadata["pip_filters"]["ensemble"] is False
    assert np.abs(best.data.astype(float) - plain.data).mean() > 1

def test_dask_stack_is_read_plane_by_plane_or_stays_lazy(viewer, qtbot, monkeypatch):
    stack = da.from_array(image((4, 40, 56, 3)), chunks=(2, 20, 28, 3))
    source = viewer.add_image(stack, name="movie", rgb=True, translate=(5, 0, 0))
    viewer.dims.set_point(0, 7)  # world 7 = data index 2
    widget = RestoreWidget(viewer)
    widget.model.value, widget.device.value, widget.task.value = TINY, "cpu", "auto"
    eager = finish(qtbot, widget.run()).added  # small: restored in the worker, plane by plane
    assert isinstance(eager.data, np.ndarray) and eager.data.shape == stack.shape and eager.data.dtype == np.uint8

    monkeypatch.setattr(jobs, "EAGER_LIMIT_BYTES", 0)  # as if it were too large to hold
    viewer.layers.selection.active = source
    out = finish(qtbot, widget.run()).added
    assert isinstance(out.data, da.Array) and out.data.shape == stack.shape
    assert out.data.chunks[1:] == ((40,), (56,), (3,))  # whole planes, restored when read
    plane = np.asarray(out.data[2])
    np.testing.assert_array_equal(plane, eager.data[2])
    assert "restored as you view them" in widget.status.value

    widget.current_slice.value = True
    viewer.layers.selection.active = source
    preview = finish(qtbot, widget.run()).added
    assert isinstance(preview.data, np.ndarray) and preview.data.shape == (1, 40, 56, 3)
    assert preview.translate[0] == pytest.approx(7) and preview.metadata["pip_filters"]["slice"] == [2]
    np.testing.assert_array_equal(preview.data[0], plane)  # the preview is the full run's plane


def test_tiles_report_progress_and_float_range_is_kept(viewer, qtbot):
    data = image((160, 150), np.float32) / 10 - 5  # float outside [0, 1]: about -5 to 395
    viewer.add_image(data, name="big")
    widget = RestoreWidget(viewer)
    widget.model.value, widget.device.value, widget.task.value, widget.tile.value = TINY, "cpu", "denoise", 64
    job = finish(qtbot, widget.run())
    assert job.progress.total > 1  # one step per tile
    out = job.added.data
    assert out.dtype == np.float32 and out.shape == data.shape
    assert -6 < out.min() and out.max() < 396 and out.std() < data.std()  # denoised, range kept


def test_cancel_stops_a_long_job_within_one_plane(viewer, qtbot):
    viewer.add_image(image((60, 96, 96), np.float32), name="long")
    widget = RestoreWidget(viewer)
    widget.model.value, widget.device.value, widget.task.value = TINY, "cpu", "denoise"
    job = widget.run()
    qtbot.waitUntil(lambda: job.progress.n >= 2, timeout=WAIT_MS)
    widget.cancel_button.clicked()
    start = time.perf_counter()
    finish(qtbot, job)
    assert job.result.cancelled and job.added is None
    assert job.progress.n < 10 < job.progress.total
    assert time.perf_counter() - start < 5
    assert widget.status.value == "cancelled" and len(viewer.layers) == 1

    # The cancel button of napari's activity bar works too (here for a quick command).
    job = get_app_model().commands.execute_command("pip-filters.restore_denoise").result()
    qtbot.waitUntil(lambda: job.progress.n >= 1, timeout=WAIT_MS)
    job.progress.cancel()
    assert finish(qtbot, job).result.cancelled and len(viewer.layers) == 1


def test_result_goes_above_the_layer_captured_at_start(viewer, qtbot):
    first = viewer.add_image(image(), name="first")
    second = viewer.add_image(image(seed=1), name="second")
    viewer.layers.selection.active = first
    job = get_app_model().commands.execute_command("pip-filters.restore_denoise").result()
    viewer.layers.selection.active = second  # switch while it runs
    finish(qtbot, job)
    assert [layer.name for layer in viewer.layers] == ["first", "first (PIP denoise)", "second"]


def test_labels_and_empty_images_give_notifications(viewer, qtbot):
    viewer.add_labels(np.zeros((32, 32), np.int32), name="masks")
    before = len(errors())
    assert get_app_model().commands.execute_command("pip-filters.restore_auto").result() is None
    assert "Labels layer" in " ".join(errors()[before:])

    viewer.add_image(np.zeros((32, 32), np.float32), name="blank")
    job = finish(qtbot, get_app_model().commands.execute_command("pip-filters.restore_auto").result())
    assert job.result.error and job.added is None
    assert "empty" in " ".join(errors()[before:])
    assert isinstance(viewer.layers[0], Labels) and len(viewer.layers) == 2


def test_sample_data():
    (movie, meta), = samples.noisy_microscopy()
    assert movie.shape == (5, 384, 512) and movie.dtype == np.uint16 and meta["axis_labels"] == ("t", "y", "x")
    assert not np.array_equal(movie[0], movie[1])  # fresh noise per frame
    for make in (samples.rainy, samples.hazy, samples.dark, samples.noisy, samples.blurry):
        (data, meta), = make()
        assert data.shape == (384, 512, 3) and data.dtype == np.uint8 and meta["rgb"]


def test_sample_opens_in_viewer(viewer):
    viewer.open_sample("pip-filters", "noisy-microscopy")
    assert isinstance(viewer.layers[-1], Image) and viewer.layers[-1].ndim == 3
