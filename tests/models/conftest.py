"""Fixtures for model tests: rendered images (the tiny model comes from tests/conftest.py)."""

from __future__ import annotations

import pytest


def render_text_image(text: str, size: tuple[int, int], color: str = "white"):
    """A real rendered image: `text` drawn in black on a plain background."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).text((size[0] // 4, size[1] // 3), text, fill="black")
    return image


@pytest.fixture(scope="session")
def digit_images() -> list:
    """Eight rendered images of two-digit sums, 56 to 224 px on a side (4 to 64 visual tokens)."""
    sizes = [(56, 56), (84, 56), (112, 112), (224, 224), (56, 168), (140, 84), (196, 196), (112, 56)]
    colors = ["white", "lightyellow", "lightblue", "white", "pink", "lightgreen", "white", "lavender"]
    return [
        render_text_image(f"{i} + {7 - i}", s, c) for i, (s, c) in enumerate(zip(sizes, colors, strict=True))
    ]
