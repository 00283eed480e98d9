"""Reading and writing image files with their dtype, channels and pages intact.

PNG, JPEG, BMP and WebP go through Pillow, 16-bit PNG through pypng (Pillow drops 16-bit colour),
TIFF through tifffile (8/16-bit, float, multi-page). ``read_image`` returns the array and a
``channel_axis`` for ``Restorer.restore``: multi-page files come back as a batch of pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


@dataclass
class ImageFile:
    array: np.ndarray
    channel_axis: int | None  # for Restorer.restore
    format: str  # "png", "jpeg", "tiff", ...


def is_image(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as handle:
        header = handle.read(26)
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    return header[24]


def read_image(path: str | Path) -> ImageFile:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _read_tiff(path)
    if suffix == ".png" and _png_bit_depth(path) == 16:
        import png

        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        planes = info["planes"]
        array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, planes)
        return ImageFile(array[..., 0] if planes == 1 else array, -1 if planes > 1 else None, "png16")
    from PIL import Image

    with Image.open(path) as image:
        fmt = (image.format or suffix.lstrip(".")).lower()
        if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
            image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
        if image.mode == "LA":
            image = image.convert("RGBA")  # gray with alpha: restore as colour, alpha kept
        array = np.asarray(image)
    return ImageFile(array, -1 if array.ndim == 3 else None, fmt)


def _read_tiff(path: Path) -> ImageFile:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        array, axes = series.asarray(), series.axes
    # Put samples (colour channels) last and every other non-spatial axis in front as pages.
    if "S" in axes and axes.index("S") != len(axes) - 1:
        array = np.moveaxis(array, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    has_channels = axes.endswith("S")
    spatial = array.ndim - has_channels
    if spatial > 3:  # e.g. T x Z x Y x X: flatten the leading axes into pages
        array = array.reshape((-1,) + array.shape[spatial - 2:])
    return ImageFile(array, -1 if has_channels else None, "tiff")


def write_image(path: str | Path, image: ImageFile, array: np.ndarray) -> None:
    """Write ``array`` (restored ``image.array``) to ``path`` in the format it was read from."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")  # never a half-written file in place of a real one
    if image.format == "tiff":
        import tifffile

        rgb = array.ndim >= 3 and image.channel_axis is not None and array.shape[-1] in (3, 4)
        tifffile.imwrite(tmp, array, photometric="rgb" if rgb else "minisblack")
    elif image.format == "png16":
        import png

        planes = 1 if array.ndim == 2 else array.shape[-1]
        rows = array.reshape(array.shape[0], -1)
        writer = png.Writer(array.shape[1], array.shape[0], bitdepth=16, greyscale=planes in (1, 2),
                            alpha=planes in (2, 4))
        with open(tmp, "wb") as handle:
            writer.write(handle, rows.tolist())
    else:
        from PIL import Image

        options = {"quality": 95} if image.format in ("jpeg", "webp") else {}
        fmt = {"jpg": "jpeg"}.get(image.format, image.format).upper()
        Image.fromarray(array).save(tmp, format=fmt, **options)
    tmp.replace(path)
