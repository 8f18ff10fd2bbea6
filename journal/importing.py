"""Turning images made elsewhere into experiments: embedded generation metadata first (``metadata``), explicit values
over it. Some images as one experiment (``experiment_from_images``), or a folder (``import_folder``): an experiment
per image, or per generation batch, committed in batches under one hold of the writer lock, images already in the
journal (by their pixels) skipped — so a re-run after a crash completes the import and a second run changes nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from .errors import InvalidInput, JournalError
from .images import CleanImage, clean_png, open_image, pixel_hash
from .journal import Journal, check_new
from .keywords import split_keywords
from .metadata import GenerationInfo, read_generation_info, without_stealth
from .model import Experiment, ModelInfo, NewExperiment, NewImage
from .slug import check_model_name
from .text import quoted, visible
from .wording import option

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
BATCH_EXPERIMENTS = 100  # experiments per commit in a folder import
BATCH_BYTES = 64 * 2**20  # and at most this much image data held for one


@dataclass(frozen=True)
class Overrides:
    """Values the user gave: each one wins over what the images' metadata says — except ``model``, which credits
    only images whose metadata names none (the model that made an image is the one it names)."""

    model: str | None = None
    seed: int | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    name_of_hash: Callable[[str], str | None] = lambda short: None  # a local checkpoint's name for an infotext's
    # `Model hash:`, where the metadata names no model


UNKNOWN_MODEL = "unknown model"  # the credit of images whose metadata names no model, and none was given


@dataclass
class Source:
    """One image file, read once: what its metadata says and its pixels (stealth info wiped), re-encoded without any
    of it only when they are to be kept (``encoded``): a picture the journal has is known by its pixel hash alone."""

    path: Path
    info: GenerationInfo
    pixels: str  # images.pixel_hash
    width: int
    height: int
    image: Image.Image | None  # until encoded
    clean: CleanImage | None = None

    def encoded(self) -> CleanImage:
        if self.clean is None:
            assert self.image is not None, "a released source has no pixels"
            self.clean, self.image = clean_png(self.image), None
        return self.clean

    def release(self) -> None:
        """Let go of the pixels (a dry run keeps only what it lists)."""
        self.image = self.clean = None


def read_source(path: Path) -> Source:
    """Decode ``path`` (InvalidInput naming the file if it cannot be) and read its metadata; stealth info in the
    alpha channel is wiped from the pixels the journal will keep."""
    im = open_image(Path(path))
    info = read_generation_info(im, Path(path).name)
    if info.in_pixels:
        im = without_stealth(im)
    return Source(Path(path), info, pixel_hash(im), im.width, im.height, im)


def left_out(source: Source, given: Overrides = Overrides()) -> str | None:
    """What of ``source``'s metadata an import does not keep, and why (never its content) — and a ``given`` model
    that does not apply to it; None: nothing."""
    notes = ([f"{source.info.problem}: its metadata is left out"] if source.info.problem else []) + list(source.info.left_out)
    named = source.info.models[0].id if source.info.models else None
    short = source.info.models[0].hash if source.info.models else None
    if not named and not given.model and source.info.source:
        credit = (given.name_of_hash(short) if short else None) or UNKNOWN_MODEL
        notes.append(f"its metadata names no model{f', only its hash {short}' if short else ''}: credited as "
                     f"{quoted(credit)}" + (" (the local checkpoint with that hash)" if credit != UNKNOWN_MODEL else
                                            f" (name it with {option('model', 'NAME')})"))
    if given.model and named and named != given.model:
        notes.append(f"its metadata names the model {quoted(named)}, which is credited (the model given, "
                     f"{quoted(given.model)}, is for images that name none)" if _creditable(source.info.models) else
                     f"its metadata's model name cannot be credited: {quoted(given.model)} is")
    return "; ".join(notes) or None


def _creditable(models: Sequence[ModelInfo]) -> bool:
    """Whether models read from metadata can be credited as they are (a name with control characters cannot)."""
    try:
        for model in models:
            check_model_name(model.id)
    except InvalidInput:
        return False
    return True


def experiment_from_images(paths: Sequence[Path], title: str, given: Overrides = Overrides()) -> NewExperiment:
    """``paths`` as one experiment."""
    if not paths:
        raise InvalidInput("name at least one image to import")
    return experiment_from_sources([read_source(Path(p)) for p in paths], title, given)


def experiment_from_sources(sources: Sequence[Source], title: str, given: Overrides = Overrides(), *,
                            keep_pixels: bool = True) -> NewExperiment:
    """``sources`` as one experiment; without ``keep_pixels`` (a dry run) its images carry no encoded copy."""
    infos = [s.info for s in sources]
    first = next((i for i in infos if i.source), GenerationInfo())
    models = next((i.models for i in infos if i.models), ())  # the model an image names made it: credited
    short = models[0].hash if models else None
    if given.model and not (models and models[0].id and _creditable(models)):
        models = (ModelInfo(id=given.model, hash=None if models and models[0].id else short),)
    elif not models and first.source:  # a generator's metadata without a model: credited so, and said (left_out)
        models = (ModelInfo(id=UNKNOWN_MODEL),)
    elif not models:  # no generator's metadata at all: nothing says this is a model's picture
        why = next((f" ({i.problem})" for i in infos if i.problem), "")
        raise InvalidInput(f"{visible(str(sources[0].path), keep_newlines=False)} does not say which model made it{why}; "
                           f"pass {option('model', 'NAME')} (the model is always credited)")
    elif not models[0].id:  # an infotext's `Model hash:` alone: the local checkpoint that has it, else unknown
        models = (ModelInfo(id=(given.name_of_hash(short) if short else None) or UNKNOWN_MODEL, hash=short),
                  *(m for m in models[1:] if m.id))
    prompt = given.prompt if given.prompt is not None else (first.prompt or "")
    images = [NewImage(path=s.path, seed=given.seed if given.seed is not None else s.info.seed,
                       prompt=given.prompt if given.prompt is not None else s.info.prompt, clean=s.encoded() if keep_pixels else None)
              for s in sources]
    params = {"width": sources[0].width, "height": sources[0].height} | first.params
    if first.source:
        params["imported_from"] = first.source
    return NewExperiment(
        title=title,
        model=models[0],
        extra_models=tuple(models[1:]),
        images=images,
        prompt=prompt,
        negative_prompt=given.negative_prompt if given.negative_prompt is not None else (first.negative_prompt or ""),
        keywords=_keywords(prompt, () if given.prompt is not None else first.networks),
        params=params,
    )


def _keywords(prompt: str, networks: Sequence[str]) -> list[str]:
    """``prompt``'s keywords; the LoRA tags an import wrote at its end (a ComfyUI graph's LoRA loaders) each a
    keyword of its own, the text before them as it was written."""
    tail = " ".join(networks)
    if tail and prompt.endswith(tail):
        return list(dict.fromkeys([*split_keywords(prompt[: -len(tail)]), *networks]))
    return split_keywords(prompt)


# ---------------------------------------------------------------------------------------------------- folders

@dataclass(frozen=True)
class FolderOptions:
    given: Overrides = Overrides()
    group: bool = False  # one experiment per generation batch, not per image
    title: str | None = None  # titles "TITLE 1", "TITLE 2" … in folder order, after the journal's last "TITLE N"
    titles: Mapping[str, str] = field(default_factory=dict)  # a file's path (relative to its folder) or name → its title
    allow_title_overlap: bool = False


@dataclass(frozen=True)
class Planned:
    """An experiment a folder import makes (or would make, in a dry run)."""

    new: NewExperiment
    sources: tuple[Source, ...]


@dataclass
class FolderResult:
    imported: list[Experiment] = field(default_factory=list)
    planned: list[Planned] = field(default_factory=list)  # a dry run's
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # nothing wrong: already imported, not an image
    failed: list[tuple[Path, str]] = field(default_factory=list)  # an image that could not be imported, and why
    noted: list[tuple[Path, str]] = field(default_factory=list)  # an image read with some of its metadata left out
    present: int = 0  # images skipped because the journal has them already
    commits: int = 0


def folder_files(roots: Sequence[Path], recursive: bool) -> list[tuple[Path, str]]:
    """Every file under ``roots`` (a file given itself counts too) with its name relative to its root, in name order
    within each root; hidden files and folders are left out."""
    found: list[tuple[Path, str]] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            found.append((root, root.name))
            continue
        here: list[tuple[Path, str]] = []
        for folder, dirs, files in os.walk(root, onerror=_raise):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
            here += [(Path(folder) / f, (Path(folder) / f).relative_to(root).as_posix()) for f in files if not f.startswith(".")]
        found += sorted(here, key=lambda pair: pair[1])
    return found


def _raise(error: OSError) -> None:
    raise InvalidInput(f"cannot read the folder {visible(str(error.filename), keep_newlines=False)} ({error.strerror}); "
                       "check its permissions") from None


def import_folder(journal: Journal | None, files: Sequence[tuple[Path, str]], options: FolderOptions, *, dry_run: bool = False,
                  on_file: Callable[[Path], None] = lambda path: None) -> FolderResult:
    """Import ``files`` (from ``folder_files``) into ``journal``: a commit per ``BATCH_EXPERIMENTS`` experiments,
    one hold of the writer lock throughout. ``on_file`` is called as each file is read (a progress bar)."""
    result = FolderResult()
    if dry_run:
        known = (*journal.image_numbers(), _last_numbered(journal, options.title)) if journal is not None else ({}, {}, 0)

        def listed(planned: Planned) -> None:
            for source in planned.sources:
                source.release()
            result.planned.append(planned)

        _plan(files, options, known, result, on_file, listed, keep_pixels=False)
        return result
    assert journal is not None, "a folder import needs a journal to import into"
    with journal.holding():
        known = (*journal.image_numbers(), _last_numbered(journal, options.title))
        pending: list[Planned] = []

        def flush() -> None:
            if not pending:
                return
            try:
                result.imported += journal.accept_many([p.new for p in pending], allow_title_overlap=options.allow_title_overlap)
                result.commits += 1
            except InvalidInput:  # refused before anything was written: find which, accept the others one by one
                for planned in pending:
                    try:
                        result.imported += journal.accept_many([planned.new], allow_title_overlap=options.allow_title_overlap)
                        result.commits += 1
                    except InvalidInput as exc:
                        result.failed += [(s.path, str(exc)) for s in planned.sources]
            pending.clear()

        def take(planned: Planned) -> None:
            pending.append(planned)
            if len(pending) >= BATCH_EXPERIMENTS or sum(len(s.encoded().data) for p in pending for s in p.sources) >= BATCH_BYTES:
                flush()

        _plan(files, options, known, result, on_file, take)
        flush()
    return result


def _plan(files, options: FolderOptions, known: tuple[dict[str, int], dict[str, int], int], result: FolderResult,
          on_file, take, keep_pixels: bool = True) -> None:
    """Read ``files`` in order, group them, and hand each experiment to ``take``; what cannot be goes in ``result``.
    ``known``: the journal's images by pixels and by file, and the last N of its "TITLE N" experiments."""
    by_pixels, by_file, counter = known
    seen: dict[str, Path] = {}
    for group in _groups(_sources(files, result, on_file, options.given), options.group):
        fresh = []
        for source, name in group:
            number = by_pixels.get(source.pixels)
            if number is None and by_file:  # images recorded before pixel hashes: compare the journal's encoding
                number = by_file.get(source.encoded().sha256)
            if number is not None:
                result.present += 1
                result.skipped.append((source.path, f"already in the journal (#{number})"))
            elif (twin := seen.get(source.pixels)) is not None:
                result.skipped.append((source.path, f"the same pixels as {visible(str(twin), keep_newlines=False)}"))
            else:
                seen[source.pixels] = source.path
                fresh.append((source, name))
        if not fresh:
            continue
        title = next((options.titles[k] for _, name in group for k in (name, Path(name).name) if k in options.titles), None)
        if title is None and options.title is not None:
            counter += 1  # after the journal's last "TITLE N": a re-run of a cut-short import goes on from there
            title = f"{options.title} {counter}"
        try:
            if title is None:
                raise InvalidInput(f"it is not in {option('titles', 'FILE')} and no {option('title')} was given")
            new = experiment_from_sources([s for s, _ in fresh], title, options.given, keep_pixels=keep_pixels)
            check_new(new, options.allow_title_overlap)  # refused now: one bad experiment must not sink a batch
        except JournalError as exc:
            result.failed += [(s.path, str(exc)) for s, _ in fresh]
            continue
        take(Planned(new, tuple(s for s, _ in fresh)))


def _last_numbered(journal: Journal, title: str | None) -> int:
    """The highest N of the journal's experiments titled "TITLE N" (0: none)."""
    if title is None:
        return 0
    numbered = re.compile(re.escape(title) + r" (\d+)")
    return max((int(m.group(1)) for e in journal.search(limit=None) if (m := numbered.fullmatch(e.title))), default=0)


def _sources(files, result: FolderResult, on_file, given: Overrides) -> Iterator[tuple[Source, str]]:
    for path, name in files:
        on_file(path)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            result.skipped.append((path, "not a PNG, JPEG or WebP image"))
            continue
        try:
            source = read_source(path)
        except InvalidInput as exc:
            result.failed.append((path, str(exc)))
            continue
        if note := left_out(source, given):
            result.noted.append((path, note))
        yield source, name


def _groups(sources: Iterator[tuple[Source, str]], group: bool) -> Iterator[list[tuple[Source, str]]]:
    """Each source alone, or (``group``) runs of consecutive sources made alike with consecutive seeds: a batch as
    A1111, ComfyUI and the others save one, image after image."""
    current: list[tuple[Source, str]] = []
    for source, name in sources:
        if current and not (group and _continues(current[-1][0].info, source.info)):
            yield current
            current = []
        current.append((source, name))
    if current:
        yield current


def _continues(last: GenerationInfo, info: GenerationInfo) -> bool:
    return (last.seed is not None and info.seed == last.seed + 1 and last.source is not None
            and replace(last, seed=None) == replace(info, seed=None))
