"""The public gallery: an index page with one card per experiment, a page per experiment showing its images large and
its lineage (its parent and the experiments derived from it, when they are in the gallery too), and metadata-free
images. Number, title, model credit and date only — never a prompt; plain HTML and CSS, no JavaScript.

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
GALLERY_TITLE = "Gallery"
THUMBNAILS = 6  # the most images a card shows; the experiment's page shows them all
SMALL = 256  # pixels: an image smaller than this is shown grown, pixel by pixel (the built-in shapes model draws 32)
_IMAGE = r"\d{4,}-[a-z0-9-]+-\d+\.png"  # NNNN-slug-K.png
_PAGE = r"\d{4,}-[a-z0-9-]+\.html"  # NNNN-slug.html
_FILE_NAME = re.compile(f"{_IMAGE}|{_PAGE}")
_NAMED = re.compile(f'(?:src|href)="({_IMAGE}|{_PAGE})"')  # the gallery files a page shows or links to
_CARD = re.compile(r'<article class="card" id="e(\d+)">')


@dataclass(frozen=True)
class GalleryEntry:
    experiment: Experiment
    images: list[Path]


@dataclass(frozen=True)
class _Picture:
    """An image as the gallery holds it: its file name and size."""

    name: str
    width: int
    height: int


@dataclass(frozen=True)
class _Shown:
    """An experiment as the gallery shows it: its page's file name and its pictures."""

    experiment: Experiment
    page: str
    pictures: list[_Picture]


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
    try:
        _write_gallery(staging, entries)
    except BaseException:
        discard_staged(staging)
        raise
    return staging


def _write_gallery(folder: Path, entries: list[GalleryEntry]) -> None:
    """The images, a page per experiment and the index, into ``folder``."""
    shown = [_write_pictures(folder, entry) for entry in sorted(entries, key=lambda e: -e.experiment.number)]
    by_number = {s.experiment.number: s for s in shown}
    for s in shown:
        (folder / s.page).write_text(_experiment_page(s, by_number), encoding="utf-8")
    (folder / "index.html").write_text(_index_page(shown), encoding="utf-8")


def _write_pictures(folder: Path, entry: GalleryEntry) -> _Shown:
    """Re-encode an experiment's images with no metadata; file names follow the current title, never an earlier one."""
    from .images import clean_png, open_image  # (Pillow: for the commands that publish)

    exp = entry.experiment
    stem = f"{exp.number:04d}-{slugify(exp.title)}"
    pictures = []
    for k, src in enumerate(entry.images, 1):
        clean = clean_png(open_image(src))
        (folder / f"{stem}-{k}.png").write_bytes(clean.data)
        pictures.append(_Picture(f"{stem}-{k}.png", clean.width, clean.height))
    return _Shown(exp, f"{stem}.html", pictures)


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
    """The names in ``folder`` that a gallery does not hold (a gallery is index.html, NNNN-slug.html pages and
    NNNN-slug-K.png images)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_symlink() or not (p.is_file() and (p.name == "index.html" or _FILE_NAME.fullmatch(p.name))))


def gallery_numbers(out: Path) -> set[int] | None:
    """The experiments a gallery folder shows — a card on the index, with its page and every image and page that the
    index and the pages name present; None if it is no gallery."""
    if not _is_gallery(out):
        return None
    index = _read(out / "index.html")
    linked = {name for name in _NAMED.findall(index) if name.endswith(".html")}
    pages = [index, *(_read(out / name) for name in linked if (out / name).is_file())]
    broken = {int(name.split("-")[0]) for page in pages for name in _NAMED.findall(page) if not (out / name).is_file()}
    return {int(n) for n in _CARD.findall(index)} - broken


def _is_gallery(path: Path) -> bool:
    index = path / "index.html"
    return index.is_file() and GENERATOR in _read(index)


def _read(page: Path) -> str:
    return page.read_text(encoding="utf-8", errors="replace")


def _text(value: str) -> str:
    """User text for the page: through the one escaping path, then HTML-escaped."""
    return html.escape(visible(value))


def _label(exp: Experiment) -> str:
    return f"<b>#{exp.number}</b> <cite>{_text(exp.title)}</cite>"


def _link(s: _Shown) -> str:
    return f'<a href="{s.page}">{_label(s.experiment)}</a>'


def _meta(s: _Shown) -> str:
    """Model credit, date and image count."""
    exp = s.experiment
    date = html.escape((exp.published or exp.created)[:10])
    count = len(s.pictures)
    return (f'<p class="meta">Generated with {_text(exp.credit)} · <time datetime="{date}">{date}</time>'
            f" · {count} image{'' if count == 1 else 's'}</p>")


def _img(s: _Shown, k: int, loading: str) -> str:
    exp, picture = s.experiment, s.pictures[k]
    alt = f"#{exp.number} {visible(exp.title)}" + (f" ({k + 1}/{len(s.pictures)})" if len(s.pictures) > 1 else "")
    small = ' class="small"' if max(picture.width, picture.height) < SMALL else ""  # grown: crisp pixels, not blur
    return (f'<img src="{picture.name}"{small} alt="{html.escape(alt)}" width="{picture.width}" height="{picture.height}"'
            f' loading="{loading}">')


def _card(s: _Shown) -> str:
    """An experiment on the index: its first images as thumbnails, number, title, credit and date, linking to its page."""
    thumbnails = "".join(_img(s, k, "lazy") for k in range(min(THUMBNAILS, len(s.pictures))))
    return (f'<article class="card" id="e{s.experiment.number}">\n<a class="thumbs" href="{s.page}">{thumbnails}</a>\n'
            f"<h2>{_link(s)}</h2>\n{_meta(s)}\n</article>")


def _lineage(s: _Shown, by_number: dict[int, _Shown]) -> str:
    """Links to the parent and to the experiments derived from this one — only those in the gallery."""
    parent = by_number.get(s.experiment.parent)  # (None when it has none: no such key)
    derived = sorted((d for d in by_number.values() if d.experiment.parent == s.experiment.number), key=lambda d: d.experiment.number)
    lines = ([f"<p>Derived from {_link(parent)}</p>"] if parent else []) + (
        ["<p>Derived: " + ", ".join(_link(d) for d in derived) + "</p>"] if derived else [])
    return f'<nav class="lineage">{"".join(lines)}</nav>\n' if lines else ""


def _experiment_page(s: _Shown, by_number: dict[int, _Shown]) -> str:
    figures = "\n".join(f"<figure>{_img(s, k, 'eager' if k == 0 else 'lazy')}</figure>" for k in range(len(s.pictures)))
    body = (f'<article class="experiment">\n<h2>{_label(s.experiment)}</h2>\n{_meta(s)}\n{_lineage(s, by_number)}'
            f'<div class="images">\n{figures}\n</div>\n</article>\n'
            f'<p class="back"><a href="index.html#e{s.experiment.number}">← All experiments</a></p>')
    title = f"#{s.experiment.number} {_text(s.experiment.title)} · {GALLERY_TITLE}"
    return _page(title, f'<a href="index.html">{GALLERY_TITLE}</a>', body)


def _index_page(shown: list[_Shown]) -> str:
    cards = "\n".join(_card(s) for s in shown)
    body = f'<div class="cards">\n{cards}\n</div>' if shown else "<p>Nothing published yet.</p>"
    return _page(GALLERY_TITLE, GALLERY_TITLE, body)


def _page(title: str, heading: str, body: str) -> str:
    """A whole page: ``title`` and ``heading`` are HTML already (escaped by the caller)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{GENERATOR}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 72rem; background: #111; color: #eee; }}
a {{ color: inherit; }}
h1 {{ font-size: 1.6rem; margin: 0 0 1rem; }}
h1 a, h2 a {{ text-decoration: none; }}
h2 {{ font-size: 1.1rem; margin: .6rem 0 .2rem; }}
cite {{ font-style: normal; color: #fff; }}
img {{ display: block; max-width: 100%; height: auto; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(min(16rem, 100%), 1fr)); gap: 1.5rem; }}
.card {{ background: #1e1e1e; border-radius: .5rem; padding: .75rem; }}
.thumbs {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(5rem, 1fr)); gap: .25rem; }}
.thumbs img {{ width: 100%; aspect-ratio: 1; object-fit: cover; }}
.meta, .lineage, .back {{ font-size: .9rem; color: #bbb; }}
.lineage p {{ margin: .3rem 0; }}
.images {{ display: flex; flex-direction: column; align-items: center; gap: 1.5rem; margin-top: 1rem; }}
.images figure {{ margin: 0; width: min(100%, 40rem); }}
.images img {{ width: 100%; }}
img.small {{ image-rendering: pixelated; }}
</style></head>
<body><header><h1>{heading}</h1></header>
<main>
{body}
</main></body></html>
"""
