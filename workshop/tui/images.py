"""Inline images: textual-image widgets (kitty graphics, sixel, or half-block cells), chosen once at start-up.

textual-image asks the terminal what it supports when imported, which only works before the app takes over the
terminal — so ``promptism`` imports this module before running the app.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from textual.widget import Widget
from textual.widgets import Static
from textual_image.widget import HalfcellImage, Image as AutoImage, SixelImage, TGPImage

_WIDGETS = {"auto": AutoImage, "kitty": TGPImage, "sixel": SixelImage, "halfcell": HalfcellImage}


def image_widget(mode: str, source: Path | PILImage.Image | None, **kwargs) -> Widget:
    """An image in the chosen graphics mode; a plain placeholder for ``none`` or a missing image."""
    if mode == "none" or source is None:
        classes = " ".join(filter(None, ["image-placeholder", kwargs.pop("classes", "")]))
        return Static("·" if source is None else "▦", classes=classes, **kwargs)
    if isinstance(source, Path):
        with PILImage.open(source) as im:
            source = im.convert("RGB")
    return _WIDGETS[mode](source, **kwargs)
