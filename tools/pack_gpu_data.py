"""Copy the training part of ../shared/data into .gpu/data (git-ignored) small enough to carry to
a lent GPU machine (64 MiB for the whole working tree): JPEGs as they are, PNGs as lossless WebP.
Only train/ is packed: nothing from test/ goes near training."""

import shutil
import sys
from pathlib import Path

from PIL import Image

SETS = ["train/cbsd432", "train/lol-train-50/input", "train/lol-train-50/target", "train/usrnet12-kernels"]


def main(src=Path("../shared/data"), dst=Path(".gpu/data")):
    for name in SETS:
        out = dst / name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted((src / name).iterdir()):
            if f.suffix.lower() == ".png":
                Image.open(f).save(out / (f.stem + ".webp"), lossless=True, method=4)
            elif f.suffix.lower() in (".jpg", ".jpeg", ".npz"):
                shutil.copy(f, out / f.name)
    total = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"{dst}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:]))
