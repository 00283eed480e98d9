"""Deblurring gain per Levin kernel, from the results.json that pip-eval writes.

The kodak24-levin8 set blurs each Kodak image with each of the 8 Levin kernels; pip-eval's table
gives one mean over all of them. This splits it by kernel (true task and auto), which shows, for
example, whether the kernels that the training pool once shared with the test set (Levin k7 and
k8, the USRNet set's k10 and k9) gained more than the others.

    python tools/deblur_by_kernel.py docs/eval/pip-nafnet-s-full-kodak/results.json [more.json ...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

SET = "kodak24-levin8"


def by_kernel(results: Path) -> dict[str, dict[str, float]]:
    """Mean input, true-task and auto PSNR per kernel name (k1 ... k8)."""
    images = json.loads(results.read_text())["sets"][SET]["images"]
    rows: dict[str, list[dict]] = defaultdict(list)
    for image in images:
        rows[image["id"].rsplit("-", 1)[1]].append(image)
    return {k: {key: sum(r[key] for r in rs) / len(rs) for key in ("input_psnr", "true_psnr", "auto_psnr")}
            | {"n": len(rs)} for k, rs in sorted(rows.items(), key=lambda kv: int(kv[0][1:]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="results.json files of pip-eval runs with kodak24-levin8")
    args = parser.parse_args()
    for path in args.results:
        table = by_kernel(path)
        print(f"\n{path}\n| kernel | images | input | true task | gain | auto | gain |\n|---|---:|---:|---:|---:|---:|---:|")
        for name, m in table.items():
            print(f"| {name} | {m['n']} | {m['input_psnr']:.2f} | {m['true_psnr']:.2f} | {m['true_psnr'] - m['input_psnr']:+.2f} "
                  f"| {m['auto_psnr']:.2f} | {m['auto_psnr'] - m['input_psnr']:+.2f} |")


if __name__ == "__main__":
    main()
