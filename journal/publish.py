"""The public gallery: index.html and metadata-free images showing number, title, model credit and date — no prompt.

A gallery directory belongs to promptism: it is rebuilt whole in a temporary sibling and swapped into place, so a
reader never sees a half-written gallery, and a directory that is not a promptism gallery is never touched.
"""

from __future__ import annotations

import glob
import html
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput
from .model import Experiment
from .slug import slugify
from .text import quoted, visible
from .wording import option

GENERATOR = '<meta name="generator" content="promptism">'
_IMAGE_NAME = re.compile(r"\d{4,}-[a-z0-9-]+-\d+\.png")


@dataclass(frozen=True)
class GalleryEntry:
    experiment: Experiment
    images: list[Path]


def stage_gallery(out: Path, entries: list[GalleryEntry]) -> Path:
    """Build the gallery for ``out`` (newest first) in a temporary sibling folder; ``install_gallery`` swaps it in.
    Leftovers of a publish that was killed are removed first."""
    out = out.absolute()
    shown = visible(str(out), keep_newlines=False)
    if out.is_symlink():  # the gallery is swapped in whole: the link itself would be replaced
        raise InvalidInput(f"{shown} is a symbolic link; give the folder it points to as {option('out')}")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _is_gallery(out))):
        raise InvalidInput(f"{shown} exists and is not a promptism gallery; choose a new or empty directory for {option('out')}")
    if out.is_dir() and (foreign := _foreign(out)):  # a gallery is replaced whole: nothing else may be lost with it
        raise InvalidInput(f"{shown} holds files promptism did not write ({', '.join(quoted(f) for f in foreign[:3])}"
                           f"{', …' if len(foreign) > 3 else ''}); move them out, or publish to another {option('out')}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700: a web server running as another user could not read it
    except OSError as exc:
        raise InvalidInput(f"cannot write a gallery at {shown} ({exc.strerror or exc}); choose another {option('out')}") from None
    from .images import clean_png, open_image  # (Pillow: for the commands that publish)

    try:
        figures = []
        for entry in sorted(entries, key=lambda e: -e.experiment.number):
            exp = entry.experiment
            for k, src in enumerate(entry.images, 1):
                name = f"{exp.number:04d}-{slugify(exp.title)}-{k}.png"  # the current title, never an earlier one
                (staging / name).write_bytes(clean_png(open_image(src)).data)
                figures.append(_figure(exp, name, k, len(entry.images)))
        (staging / "index.html").write_text(_page(figures), encoding="utf-8")
    except BaseException:
        discard_staged(staging)
        raise
    return staging


def install_gallery(staging: Path, out: Path) -> None:
    """Swap a staged gallery into place: a reader sees the old gallery or the new one, never half of one."""
    out = out.absolute()
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
        os.replace(out, old / "gallery")
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old)


def discard_staged(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def remove_leftovers(out: Path) -> int:
    """Remove the staging (``.<out>.*.tmp``) and swap (``.<out>.*.old``) folders a killed publish left beside ``out``
    — only folders holding nothing but a gallery's own files, so nothing of anyone else's is ever removed."""
    removed = 0
    for folder in [*out.parent.glob(f".{glob.escape(out.name)}.*.tmp"), *out.parent.glob(f".{glob.escape(out.name)}.*.old")]:
        inner = folder / "gallery" if folder.suffix == ".old" else folder
        if folder.is_dir() and _only_gallery_files(folder, inner):
            shutil.rmtree(folder)
            removed += 1
    return removed


def _only_gallery_files(folder: Path, inner: Path) -> bool:
    if folder != inner and {p.name for p in folder.iterdir()} - {"gallery"}:
        return False
    return not inner.is_dir() or not _foreign(inner)


def _foreign(folder: Path) -> list[str]:
    """The names in ``folder`` that a gallery does not hold (a gallery is index.html and NNNN-slug-K.png)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_symlink() or not (p.is_file() and (p.name == "index.html" or _IMAGE_NAME.fullmatch(p.name))))


def gallery_numbers(out: Path) -> set[int] | None:
    """The experiments a gallery folder shows, with every image it names present; None if it is no gallery."""
    if not _is_gallery(out):
        return None
    page = (out / "index.html").read_text(encoding="utf-8", errors="replace")
    shown = {int(n) for n in re.findall(r"<b>#(\d+)</b>", page)}
    broken = {int(name.split("-")[0]) for name in re.findall(r'<img src="(\d+-[^"]+)"', page)
              if not (out / html.unescape(name)).is_file()}
    return shown - broken


def _is_gallery(path: Path) -> bool:
    index = path / "index.html"
    return index.is_file() and GENERATOR in index.read_text(encoding="utf-8", errors="replace")


def _figure(exp: Experiment, name: str, k: int, count: int) -> str:
    e = html.escape
    label = f"#{exp.number} {visible(exp.title)}" + (f" ({k}/{count})" if count > 1 else "")
    date = (exp.published or exp.created)[:10]
    return (
        f'<figure><img src="{e(name)}" alt="{e(label)}" width="{256}" loading="lazy">'
        f'<figcaption><b>#{exp.number}</b> <cite>{e(visible(exp.title))}</cite><br>'
        f"Generated with {e(visible(exp.credit))} · <time>{e(date)}</time></figcaption></figure>"
    )


def _page(figures: list[str]) -> str:
    body = "\n".join(figures) or "<p>Nothing published yet.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{GENERATOR}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gallery</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; background: #111; color: #eee; }}
main {{ display: flex; flex-wrap: wrap; gap: 1.5rem; }}
figure {{ margin: 0; max-width: 256px; }}
img {{ width: 256px; height: auto; image-rendering: pixelated; display: block; }}
figcaption {{ font-size: .9rem; margin-top: .4rem; color: #bbb; }}
cite {{ font-style: normal; color: #fff; }}
</style></head>
<body><main>
{body}
</main></body></html>
"""
