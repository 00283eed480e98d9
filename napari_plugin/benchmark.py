"""Benchmark (not a test): time from clicking Run in the dock widget to the new layer, for one
512 x 512 slice on the CPU, with each shipped model.

    python -m pip_filters.napari_plugin.benchmark [--repeats 5]

Needs a display; without one it starts a virtual one (Xvfb through PyVirtualDisplay) or run it
under ``xvfb-run -a``. The first run of each model includes loading it and is reported apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def ensure_display():
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    from pyvirtualdisplay import Display

    return Display(visible=False, size=(1600, 1000)).start()


def close(viewer, app, display) -> None:
    """Close the viewer, let Qt finish with it, and stop the virtual display if one was started."""
    viewer.close()
    app.processEvents()
    if display is not None:
        display.stop()


def _slice_512() -> np.ndarray:
    """The shipped noisy photo as a 512 x 512 slice of a small gray 16-bit stack."""
    from .samples import noisy

    (rgb, _), = noisy()
    gray = np.pad(rgb.mean(-1), ((64, 64), (0, 0)), mode="reflect")  # 384 -> 512 rows
    return np.stack([gray * 200, gray * 210]).astype(np.uint16)  # (2, 512, 512)


def click_to_layer(viewer, widget, app) -> tuple[float, float]:
    """Click Run; return the seconds until the restored layer is in the viewer, and the seconds
    the worker spent restoring (the rest is the plugin and napari)."""
    before = len(viewer.layers)
    start = time.perf_counter()
    widget.run_button.native.click()
    while len(viewer.layers) == before or not widget.run_button.enabled:
        app.processEvents()
        time.sleep(0.001)
    return time.perf_counter() - start, widget.job.result.seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    display = ensure_display()
    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from .models import trained_models
    from .widget import RestoreWidget

    if args.threads:
        torch.set_num_threads(args.threads)  # on a shared machine, fewer threads than cores can be faster
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    source = viewer.add_image(_slice_512(), name="noisy stack")
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.device.value, widget.task.value, widget.current_slice.value = "cpu", "auto", True
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; slice 512 x 512 of {source.data.shape}, "
          "task auto, current slice only")
    for model in sorted(trained_models()):
        widget.model.value = model
        first, _ = click_to_layer(viewer, widget, app)
        runs = [click_to_layer(viewer, widget, app) for _ in range(args.repeats)]
        times, work = [t for t, _ in runs], [w for _, w in runs]
        print(f"{model}: click Run -> new layer median {statistics.median(times):.3f} s "
              f"(min {min(times):.3f}, max {max(times):.3f}, {args.repeats} runs; of which restoring in the "
              f"worker median {statistics.median(work):.3f} s); first run with loading {first:.3f} s")
    close(viewer, app, display)


if __name__ == "__main__":
    main()
