"""Copy the training part of ../shared/data into .gpu/data (git-ignored) small enough to carry to
a lent GPU machine (64 MiB for the whole working tree, the repo's own ~19 MiB included): JPEGs as
they are, PNGs as lossless WebP. Only train/ is packed: nothing from test/ goes near training.
  python tools/pack_gpu_data.py [--clean-every N]   # N=2: every second clean image (~41 MiB)
With N > 1 only the clean images of the full set's training split are packed (then every N-th):
a subset splits differently, and must not train on the images the CPU runs validate on."""

import argparse
import shutil
import tomllib
from pathlib import Path

from PIL import Image

from pip_filters.training.train import _splits

CLEAN = "train/cbsd432"
SETS = [CLEAN, "train/lol-train-50/input", "train/lol-train-50/target", "train/usrnet12-kernels"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path("../shared/data"))
    parser.add_argument("--dst", type=Path, default=Path(".gpu/data"))
    parser.add_argument("--clean-every", type=int, default=1,
                        help="keep every N-th clean training image (the low-light pairs are all kept)")
    parser.add_argument("--config", type=Path, default=Path("training/configs/pip-nafnet-s.toml"),
                        help="whose validation split stays out of a subset")
    args = parser.parse_args()
    (train_clean, _), _, _ = _splits(tomllib.loads(args.config.read_text())["data"], args.src)  # train.py's split
    shutil.rmtree(args.dst, ignore_errors=True)  # a smaller pack must not keep an older pack's files
    for name in SETS:
        out = args.dst / name
        out.mkdir(parents=True, exist_ok=True)
        files = sorted((args.src / name).iterdir())
        if name == CLEAN and args.clean_every > 1:
            files = train_clean[::args.clean_every]
        for f in files:
            if f.suffix.lower() == ".png":
                Image.open(f).save(out / (f.stem + ".webp"), lossless=True, method=4)
            elif f.suffix.lower() in (".jpg", ".jpeg", ".npz"):
                shutil.copy(f, out / f.name)
    total = sum(f.stat().st_size for f in args.dst.rglob("*") if f.is_file())
    print(f"{args.dst}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
