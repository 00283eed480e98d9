"""Make docs/napari.png: the dock widget next to a sample and its restored layer (grid view).

    python -m pip_filters.napari_plugin.screenshot [--sample rainy] [--out docs/napari.png]

Needs a display (or starts a virtual one, like benchmark.py). The PNG is reduced to a 256-colour
palette so that it stays small in the repository.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .benchmark import close, ensure_display


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="hazy", choices=["rainy", "hazy", "dark", "noisy", "blurry"])
    parser.add_argument("--model", default=None, help="default: the shipped default model")
    parser.add_argument("--out", default="docs/napari.png")
    args = parser.parse_args(argv)
    display = ensure_display()
    import napari
    import napari._qt.qt_main_window as qt_main_window
    from PIL import Image as PILImage
    from qtpy.QtWidgets import QApplication

    from . import samples
    from .widget import RestoreWidget

    qt_main_window.SHOW_QT_WARNING = False  # no "PyQt5 is deprecated" toast over the picture
    viewer = napari.Viewer(show=True, title="Restore with PIP")
    viewer.window.resize(1400, 640)
    (data, meta), = getattr(samples, args.sample)()
    viewer.add_image(data, **meta)
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Restore with PIP")
    if args.model:
        widget.model.value = args.model
    job = widget.run()
    app = QApplication.instance()
    while not job.done:
        app.processEvents()
        time.sleep(0.01)
    grid = viewer.canvas.grid if hasattr(getattr(viewer, "canvas", None), "grid") else viewer.grid
    grid.enabled = True  # source and result side by side
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    PILImage.fromarray(shot[..., :3]).quantize(256).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB); PIP sees: {widget.detected.value}")
    close(viewer, app, display)


if __name__ == "__main__":
    main()
