"""The work folder beside the output: finished segment files and a small state file.

It is what makes a run resumable: segment k holds frames [k * S, (k + 1) * S) of the selection,
and the state file lists the finished ones together with everything that decides their content
(the job key), so `--resume` only continues a run that would produce the same output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .probe import VideoError

STATE = "state.json"


class WorkDir:
    def __init__(self, output: Path):
        self.output = Path(output)
        self.path = self.output.with_name(self.output.name + ".pip-video-parts")
        self.state: dict = {}

    def segment_path(self, index: int) -> Path:
        return self.path / f"segment-{index:05d}.nut"

    @property
    def finished(self) -> list[dict]:
        return self.state.get("segments", [])

    @property
    def finished_frames(self) -> int:
        return sum(s["frames"] for s in self.finished)

    @property
    def complete(self) -> bool:
        return bool(self.state.get("complete"))

    def open(self, key: dict, resume: bool, overwrite: bool) -> None:
        """Start a run, or continue the one found when ``resume`` is set."""
        state_file = self.path / STATE
        if self.path.exists():
            if resume and state_file.exists():
                state = json.loads(state_file.read_text())
                if state.get("key") != key:
                    changed = sorted(k for k in set(key) | set(state.get("key", {}))
                                     if key.get(k) != state.get("key", {}).get(k))
                    raise VideoError(f"cannot resume: the unfinished run in {self.path} had different settings "
                                     f"({', '.join(changed)}); rerun with them or use --overwrite to start over")
                # keep only the segments whose files are really there (a crash may lose the last one)
                segments = []
                for s in state.get("segments", []):
                    if not self.segment_path(s["index"]).exists() or s["index"] != len(segments):
                        break
                    segments.append(s)
                if len(segments) != len(state.get("segments", [])):
                    state["complete"] = False
                state["segments"] = segments
                self.state = state
                return
            if not overwrite and not resume:
                raise VideoError(f"an unfinished run of this output exists in {self.path}: use --resume to "
                                 "continue it or --overwrite to start over")
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        self.state = {"key": key, "segments": [], "complete": False}
        self.save()

    def save(self) -> None:
        # write-then-rename: a crash leaves the old state or the new one, never half a file
        tmp = self.path / (STATE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.path / STATE)

    def add_segment(self, index: int, frames: int) -> None:
        self.state["segments"].append({"index": index, "frames": frames})
        self.save()

    def set(self, **values) -> None:
        self.state.update(values)
        self.save()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
