"""Quick commands of the Layers > Filter > Restore with PIP menu: restore the active layer.

napari injects the viewer from the type hint. They use the model and device last chosen in the
dock widget (jobs.QUICK) and return the started Job (None when the layer was refused).
"""

from __future__ import annotations

from dataclasses import replace

from napari.viewer import Viewer

from .jobs import QUICK, Job, start_job


def restore_active(viewer: Viewer, task="auto") -> Job | None:
    layer = viewer.layers.selection.active
    return start_job(viewer, layer, replace(QUICK, task=task, strength=1.0, tile=None, current_slice=False))


def restore_auto(viewer: Viewer):
    return restore_active(viewer, "auto")


def restore_denoise(viewer: Viewer):
    return restore_active(viewer, "denoise")


def restore_derain(viewer: Viewer):
    return restore_active(viewer, "derain")


def restore_dehaze(viewer: Viewer):
    return restore_active(viewer, "dehaze")


def restore_deblur(viewer: Viewer):
    return restore_active(viewer, "deblur")


def restore_lowlight(viewer: Viewer):
    return restore_active(viewer, "lowlight")
