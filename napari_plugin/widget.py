"""The "Restore with PIP" dock widget (magicgui): pick a layer and a task, Run, Cancel, and see
what the degradation sensor read (the interpretable prompt: what the model thinks is wrong)."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSlider, Label, PushButton, SpinBox
from napari.layers import Image

from pip_filters import TASKS

from . import jobs, planes
from .models import devices, trained_models

MIX = "mix of two"


class RestoreWidget(Container):
    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.job: jobs.Job | None = None
        self.layer = ComboBox(label="layer", choices=self._image_layers)
        self.task = ComboBox(label="task", choices=["auto", *TASKS, MIX], value="auto")
        self.task_a = ComboBox(label="mix", choices=list(TASKS), value="derain", visible=False)
        self.task_b = ComboBox(label="with", choices=list(TASKS), value="dehaze", visible=False)
        self.mix = FloatSlider(label="share of first", min=0.0, max=1.0, step=0.05, value=0.5, visible=False)
        self.model = ComboBox(label="model", choices=trained_models(), value=jobs.QUICK.model)
        self.device = ComboBox(label="device", choices=devices(), value=jobs.QUICK.device)
        self.strength = FloatSlider(label="strength", min=0.0, max=1.0, step=0.05, value=1.0)
        self.tile = SpinBox(label="tile (0: auto)", min=0, max=8192, step=64, value=0)
        self.current_slice = CheckBox(text="current slice only (preview)", value=False)
        self.ensemble = CheckBox(text="best quality (flipped copies, 2-8x slower)", value=False)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        self.detected = Label(label="PIP sees", value="(run to detect)")
        self.status = Label(label="status", value="")
        for label in (self.detected, self.status):
            label.native.setWordWrap(True)
        self.extend([self.layer, self.task, self.task_a, self.task_b, self.mix, self.model, self.device, self.strength,
                     self.tile, self.current_slice, self.ensemble, buttons, self.detected, self.status])

        self.task.changed.connect(self._on_task)
        self.model.changed.connect(self._remember_choice)
        self.device.changed.connect(self._remember_choice)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        # Follow the layer the user selects in the layer list (not our own results, which napari
        # selects when they are added: Run again should not restore the result).
        napari_viewer.layers.selection.events.active.connect(self._follow_active)
        self._follow_active()

    def _image_layers(self, _widget=None):
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _follow_active(self, _event=None):
        active = self.viewer.layers.selection.active
        self.layer.reset_choices()
        if isinstance(active, Image) and "pip_filters" not in active.metadata:
            self.layer.value = active

    def _on_task(self, value):
        self.task_a.visible = self.task_b.visible = self.mix.visible = value == MIX

    def _remember_choice(self, _value=None):
        # The quick commands of the Filter menu use the model and device chosen here.
        jobs.QUICK.model, jobs.QUICK.device = self.model.value, self.device.value

    def settings(self) -> jobs.Settings:
        task = self.task.value
        if task == MIX:
            first, second, share = self.task_a.value, self.task_b.value, float(self.mix.value)
            task = first if first == second else {first: share, second: round(1.0 - share, 4)}
        return jobs.Settings(model=self.model.value, device=self.device.value, task=task,
                             strength=float(self.strength.value), tile=int(self.tile.value) or None,
                             current_slice=bool(self.current_slice.value), ensemble=bool(self.ensemble.value))

    def run(self, _value=None) -> jobs.Job | None:
        job = jobs.start_job(self.viewer, self.layer.value, self.settings(), on_finished=self._on_finished)
        if job is None:
            return None
        self.job = job
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = f"restoring {job.source.name!r} ..."
        return job

    def cancel(self, _value=None):
        if self.job is not None:
            self.job.cancel()
            self.status.value = "cancelling ..."

    def _on_finished(self, job: jobs.Job):
        self.run_button.enabled, self.cancel_button.enabled = True, False
        result = job.result
        if result is None:
            self.status.value = "failed (see the notification)"
        elif result.error:
            self.status.value = f"refused: {result.error}"
        elif result.cancelled:
            self.status.value = "cancelled"
        else:
            self.detected.value = ", ".join(f"{name} {weight:.0%}" for name, weight in
                                            sorted(result.weights.items(), key=lambda item: -item[1]))
            lazy = " (too large to hold: planes are restored as you view them)" if planes.is_lazy(result.data) else ""
            loading = f" (+ {result.load_seconds:.1f} s loading the model)" if result.load_seconds > 0.05 else ""
            self.status.value = f"done in {result.seconds:.2f} s{loading}{lazy}"
