"""One restoration job: capture a layer, restore it off the GUI thread, add the result layer.

Everything about the source layer (its data, transform, index of the current slice) is captured
when the job starts, so switching or editing layers during a run cannot misplace the result.
The work runs in napari's thread_worker; progress goes to napari's activity bar (with its own
cancel button) after every tile or plane, and cancelling stops at the next one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal

import pip_filters

from . import planes
from .models import get_restorer
from .planes import JobCancelled, RestoreError

# Lazy (dask, zarr, ...) inputs whose result fits in this many bytes are restored plane by plane in
# the worker (progress, cancel, smooth browsing); larger ones give a lazy result, restored in
# napari's slicing as planes are viewed.
EAGER_LIMIT_BYTES = 2**30

# Tasks that change brightness or contrast: their output gets fresh contrast limits.
_TONE_TASKS = ("dehaze", "lowlight")


@dataclass
class Settings:
    model: str = pip_filters.DEFAULT_MODEL
    device: str = "auto"
    task: str | dict = "auto"
    strength: float = 1.0
    tile: int | None = None
    current_slice: bool = False
    ensemble: bool = False  # average flipped copies: better, 2-8x slower


# What the quick commands use: the model and device last chosen in the dock widget.
QUICK = Settings()


def task_label(task) -> str:
    if isinstance(task, dict):
        return " + ".join(f"{name} {weight:.2g}" for name, weight in task.items() if weight > 0)
    return str(task)


def check_layer(layer) -> None:
    """Refuse what PIP cannot restore, with a message for the user."""
    if layer is None:
        raise RestoreError("select an image layer first")
    if not isinstance(layer, Image):
        raise RestoreError(f"{layer.name!r} is a {layer.__class__.__name__} layer; PIP restores Image layers only")
    if layer.multiscale:
        raise RestoreError(f"{layer.name!r} is multiscale; restore one of its levels as a plain image layer")
    data = layer.data
    if any(n == 0 for n in data.shape):
        raise RestoreError(f"{layer.name!r} is empty (shape {tuple(data.shape)})")
    if np.dtype(data.dtype).kind not in "uif":
        raise RestoreError(f"{layer.name!r} has {data.dtype} data; PIP restores integer or float images")


@dataclass
class Result:
    data: object = None
    weights: dict = field(default_factory=dict)
    value_range: tuple | None = None
    seconds: float = 0.0  # restoring, without loading the model
    load_seconds: float = 0.0
    error: str | None = None
    cancelled: bool = False


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (Qt queues the signal)."""

    progressed = Signal(int, int)


class Job:
    """Restore ``layer`` of ``viewer`` with ``settings``; ``start()`` runs it in a thread."""

    def __init__(self, viewer, layer, settings: Settings, on_finished=None):
        check_layer(layer)
        self.on_finished = on_finished  # called with the job once it is over, in the GUI thread
        self.viewer, self.source, self.settings = viewer, layer, settings
        self.rgb = bool(layer.rgb)
        self.source_data = self.data = layer.data
        lead = planes.leading_shape(self.data.shape, self.rgb)
        self.index = _current_index(viewer, layer, lead)
        self.offset = np.zeros(layer.ndim)
        if settings.current_slice and lead:
            # Keep the plane's leading axes (length 1) and shift it to where it was.
            self.data = self.data[tuple(slice(i, i + 1) for i in self.index)]
            self.offset[: len(lead)] = self.index
            self.index = (0,) * len(lead)
        self.layer_kwargs = _layer_kwargs(layer, self.offset)
        self.result: Result | None = None
        self.added: Image | None = None
        self._cancel = threading.Event()
        self._relay = _Relay()
        self.progress = cancelable_progress(total=0, desc=f"Restore with PIP: {layer.name}")
        self._relay.progressed.connect(self._on_progress)
        self.worker = create_worker(self._work, _start_thread=False)
        self.worker.returned.connect(self._on_returned)
        self.worker.finished.connect(self._on_finished)
        self.done = False

    # -- GUI thread ---------------------------------------------------------------------------

    def start(self) -> "Job":
        self.worker.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set() or self.progress.is_canceled

    def _on_progress(self, done: int, total: int) -> None:
        if total != self.progress.total:
            self.progress.total = total
        self.progress.update(done - self.progress.n)

    def _on_finished(self) -> None:
        self.progress.close()
        self.done = True
        if self.on_finished:
            self.on_finished(self)

    def _on_returned(self, result: Result) -> None:
        self.result = result
        if result.error:
            show_error(f"Restore with PIP: {result.error}")
            return
        if result.cancelled:
            show_info(f"Restore with PIP: cancelled {self.source.name!r}")
            return
        kwargs = dict(self.layer_kwargs)
        kwargs["metadata"]["pip_filters"] = {
            "model": self.settings.model, "task": self.settings.task, "weights": result.weights,
            "strength": self.settings.strength, "tile": self.settings.tile, "ensemble": self.settings.ensemble,
            "value_range": list(result.value_range) if result.value_range else None,
            "source": self.source.name,
            "slice": [int(i) for i in self.offset[: len(self.index)]] if self.settings.current_slice else None,
            "version": pip_filters.__version__,
        }
        kwargs["name"] = f"{self.source.name} (PIP {task_label(self.settings.task)})"
        if sum(result.weights.get(task, 0.0) for task in _TONE_TASKS) >= 0.5:
            # Brightness changed: show the whole output range instead of the source's limits.
            kwargs["contrast_limits"] = planes.output_range(self.data, result.value_range)
        self.added = Image(result.data, **kwargs)
        layers = self.viewer.layers
        if self.source in layers:  # right above its source, wherever the selection is now
            layers.insert(layers.index(self.source) + 1, self.added)
        else:
            layers.append(self.added)

    # -- worker thread ------------------------------------------------------------------------

    def _report(self, done: int, total: int) -> None:
        if self.cancelled:
            raise JobCancelled
        self._relay.progressed.emit(done, total)

    def _work(self) -> Result:
        s = self.settings
        try:
            start = time.perf_counter()
            restorer = get_restorer(s.model, s.device)
            loaded = time.perf_counter()
            value_range = planes.value_range(self.source_data, self.rgb)  # the whole stack's
            reference = np.asarray(self.data[self.index])  # the plane on screen decides "auto"
            prompt = restorer.prompt(planes.to_unit(reference, value_range), task=s.task,
                                     channel_axis=-1 if self.rgb else None)
            self._report(0, 1)
            too_large = planes.nbytes(self.data) > EAGER_LIMIT_BYTES and not s.current_slice
            if planes.is_lazy(self.data) and too_large:
                data = planes.restore_lazy(restorer, self.data, self.rgb, prompt, s.strength, s.tile, value_range,
                                           s.ensemble)
            else:  # reads one plane at a time, also from lazy arrays
                data = planes.restore_eager(restorer, self.data, self.rgb, prompt, s.strength, s.tile,
                                            value_range, self._report, s.ensemble)
        except (RestoreError, ValueError) as error:  # bad input or settings: a message, no traceback
            return Result(error=str(error))
        except JobCancelled:
            return Result(cancelled=True)
        return Result(data, prompt.as_dict(), value_range, time.perf_counter() - loaded, loaded - start)


def start_job(viewer, layer, settings: Settings, on_finished=None) -> Job | None:
    """Start a job, or show why not (a notification, not a traceback) and return None."""
    try:
        return Job(viewer, layer, settings, on_finished).start()
    except RestoreError as error:
        show_error(f"Restore with PIP: {error}")
        return None


def _current_index(viewer, layer, lead: tuple[int, ...]) -> tuple[int, ...]:
    """The index of the plane on screen along the layer's leading axes."""
    if not lead:
        return ()
    position = layer.world_to_data(viewer.dims.point)[: len(lead)]
    return tuple(int(np.clip(np.round(p), 0, n - 1)) for p, n in zip(position, lead))


def _layer_kwargs(layer: Image, offset: np.ndarray) -> dict:
    """The source's look and place, for the result layer. offset: a shift in data pixels (the
    preview of one slice); leading axes are assumed not rotated or sheared into the image axes."""
    kwargs = dict(
        scale=layer.scale, translate=np.asarray(layer.translate) + offset * np.asarray(layer.scale),
        rotate=layer.rotate, shear=layer.shear, affine=layer.affine, units=layer.units,
        axis_labels=layer.axis_labels, rgb=layer.rgb, contrast_limits=layer.contrast_limits,
        gamma=layer.gamma, blending=layer.blending, opacity=layer.opacity,
        metadata=dict(layer.metadata),
    )
    if not layer.rgb:
        kwargs["colormap"] = layer.colormap
    return kwargs
