"""A perceptual image hash (DCT pHash, 64 bits) that survives re-encoding, resizing and slight crops.

    grey -> 32 x 32 (box filter) -> 2-D DCT -> the 8 x 8 lowest frequencies -> bit = coefficient > their median

Two copies of one picture (JPEG at another quality, half or double the size, a few percent cropped from the
edges) land a few bits apart; different pictures land about 32 bits apart (measured on MATH-Vision testmini:
docs/contamination.md). `SIMILAR_BITS` is the distance at or below which two images count as the same picture.
The thumbnail is square whatever the image's shape, so a hash is kept with the image's aspect ratio, and two
images whose aspect ratios differ by more than `MAX_ASPECT_RATIO` never match (a copy resized or cropped by a few
percent keeps its shape; a small square chart squashed like a wide figure strip otherwise can). A near-flat image
(a blank page, one colour) has no shape to hash: it gets no hash and is compared by its bytes only.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from reasoner.data.records.problem import ImageRef

HASH_SIZE = 8
"""Low frequencies kept per axis: 8 x 8 = 64 bits."""
SAMPLE_SIZE = 32
"""Side of the grey thumbnail the DCT reads."""
SIMILAR_BITS = 10
"""Hamming distance at or below which two hashes are the same picture (of 64 bits)."""
INDEX_CROPS = (0.0, 0.03, 0.06)
"""Centre crops (share of each side) a benchmark image is also indexed at: pHash alone misses crops of 5%."""
MAX_ASPECT_RATIO = 1.25
"""Largest ratio between two images' aspect ratios (width / height) that can still be the same picture."""
MIN_CONTRAST = 4.0
"""Standard deviation (grey levels, 0-255) below which a thumbnail is flat and gets no hash."""


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: `D @ x` transforms the columns of x."""
    k = np.arange(n)[:, None]
    matrix = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix(SAMPLE_SIZE)
_WEIGHTS = (1 << np.arange(HASH_SIZE * HASH_SIZE, dtype=np.uint64)).astype(np.uint64)


def hash_pixels(image: Image.Image) -> int | None:
    """The 64-bit pHash of a decoded image, or None when it is near-flat."""
    grey = image.convert("L").resize((SAMPLE_SIZE, SAMPLE_SIZE), Image.Resampling.BOX)
    pixels = np.asarray(grey, dtype=np.float64)
    if pixels.std() < MIN_CONTRAST:
        return None
    low = (_DCT @ pixels @ _DCT.T)[:HASH_SIZE, :HASH_SIZE].ravel()
    bits = low > np.median(low[1:])  # the DC term (mean brightness) does not set the threshold
    return int(np.sum(_WEIGHTS[bits], dtype=np.uint64))


def crop_variants(image: Image.Image) -> list[Image.Image]:
    """The image and its centre crops by `INDEX_CROPS` of each side: a benchmark image is indexed in each form,
    so a training copy cropped by a few percent still lands near one of them."""
    width, height = image.size
    crops = [(round(width * f), round(height * f)) for f in INDEX_CROPS if f]
    return [image] + [image.crop((dx, dy, width - dx, height - dy)) for dx, dy in crops if 2 * dx < width]


Hash = tuple[int, float]
"""A pHash and the log of its image's aspect ratio."""


def perceptual_hashes(image: ImageRef, *, variants: bool = False) -> list[Hash]:
    """The pHash of an image record (embedded bytes or its file), with `variants` those of its centre crops too;
    empty when the image is absent, unreadable or near-flat."""
    try:
        with _open(image) as opened:
            forms = crop_variants(opened.convert("RGB")) if variants else [opened]
            hashes = [(hash_pixels(form), float(np.log(form.width / form.height))) for form in forms]
            return [(h, aspect) for h, aspect in hashes if h is not None]
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return []  # nothing to compare; the exact hash (if any) still is


def _open(image: ImageRef) -> Image.Image:
    """The image of a record, opened (raises OSError when it has neither readable bytes nor a file)."""
    if image.data is not None:
        return Image.open(io.BytesIO(image.data))
    path = image.resolved_path()
    if path is None:
        raise OSError(f"image of {image.owner or '?'} has no path")
    return Image.open(path)


def hash_arrays(hashes: Iterable[Hash]) -> tuple[np.ndarray, np.ndarray]:
    """Hashes as an unsigned 64-bit array and their log aspect ratios as floats (what `nearest` searches)."""
    pairs = list(hashes)
    return np.array([h for h, _ in pairs], dtype=np.uint64), np.array([a for _, a in pairs], dtype=np.float64)


def nearest(query: Hash, hashes: np.ndarray, aspects: np.ndarray) -> tuple[int, int]:
    """(index, Hamming distance) of the hash nearest to `query` among those of a similar aspect ratio;
    (-1, 65) when there is none."""
    distances = np.bitwise_count(np.bitwise_xor(hashes, np.uint64(query[0]))).astype(np.int64)
    distances[np.abs(aspects - query[1]) > np.log(MAX_ASPECT_RATIO)] = HASH_SIZE * HASH_SIZE + 1
    if distances.size == 0:
        return -1, HASH_SIZE * HASH_SIZE + 1
    best = int(np.argmin(distances))
    return best, int(distances[best])
