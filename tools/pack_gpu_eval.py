"""Copy the first 12 images of three test sets (what `pip-eval --limit 12` reads) into .gpu/eval
(git-ignored, about 17 MiB) so that a lent GPU machine can check the fp16/bf16 PSNR against fp32
(issue 6) in the same call as the speed rows: `bash tools/gpu_bench.sh` with carry [".gpu/eval"].
Files are copied byte for byte; this is evaluation only, nothing here is trained on."""

import shutil
import sys
from pathlib import Path

from pip_filters.training.evaluate import _image_files  # pip-eval's own listing and order

LIMIT = 12
CLEAN_SETS = ["test/cbsd68"]                                  # noise is added by pip-eval, seeded
PAIRED_SETS = ["test/sots-outdoor-35", "test/lol-eval15"]


def first(folder: Path) -> list[Path]:
    return _image_files(folder)[:LIMIT]


def main(src=Path("../shared/data"), dst=Path(".gpu/eval")):
    for name in CLEAN_SETS:
        (dst / name).mkdir(parents=True, exist_ok=True)
        for f in first(src / name):
            shutil.copy(f, dst / name / f.name)
    for name in PAIRED_SETS:
        targets = {p.stem: p for p in (src / name / "target").iterdir()}
        for part in ("input", "target"):
            (dst / name / part).mkdir(parents=True, exist_ok=True)
        for f in first(src / name / "input"):
            shutil.copy(f, dst / name / "input" / f.name)
            shutil.copy(targets[f.stem], dst / name / "target" / targets[f.stem].name)
    total = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"{dst}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:]))
