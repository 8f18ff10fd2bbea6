"""The Journal: numbered experiments in a git repository, indexed in TinyDB, written crash-safely by one writer.

Layout of a journal directory::

    journal.toml                      marker (tracked)
    .gitignore                        ignores journal.json and .promptism/ (tracked)
    experiments/0001-<slug>/          one folder per experiment (tracked)
        experiment.json               the full document, private prompt included — the source of truth
        01-s1234.png …                images, re-encoded with no metadata
    journal.json                      TinyDB index of the same documents (ignored; rebuilt from git when missing)
    .promptism/                       lock, pending-write intent, commit message, run scratch area (ignored)

Every change follows one protocol: write an intent naming the folders it touches, write the files, ``git add``,
``git commit`` (the atomic point), update the TinyDB index, tag, delete the intent. After a crash at any step the
next writer (or ``open``) restores those folders to what HEAD holds and re-syncs the index from them: a change
whose commit landed is completed, one whose commit did not is rolled back. Readers only ever read the index, which
is replaced atomically and updated after the commit, so they never see an experiment that is not committed.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import operator
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import orjson
from tinydb import Query

from . import failpoints
from .atomic import write_atomic
from .errors import ExperimentNotFound, InvalidInput, JournalError, NotAJournal
from .index import Index
from .storage import CorruptIndex
from .keywords import plain, split_keywords
from .lock import WriterLock
from .model import Experiment, ImageRecord, NewExperiment
from .privacy import check_title_keeps_secrets
from .slug import check_model_name, check_new_title, fold, slugify
from .text import visible
from .wording import option

MARKER = "journal.toml"
DB_FILE = "journal.json"
SCRATCH = ".promptism"
EXPERIMENTS = "experiments"
EXPERIMENT_FILE = "experiment.json"
INTENT_FILE = "intent.json"
GALLERY_FILE = "gallery.json"  # where the last publish wrote, for doctor
COMMIT_SCRATCH = "commit"  # prefix of a write's commit message, private git index (and its lock) in the scratch area

_MARKER_TEXT = "# A promptism journal: numbered text-to-image experiments. Managed by `promptism`.\nschema = 1\n"
_GITIGNORE_TEXT = f"/{DB_FILE}\n/.{DB_FILE}.*.tmp\n/{SCRATCH}/\n"


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # (imported when a write records it)

    try:
        return version("promptism")
    except PackageNotFoundError:
        return "0+unknown"


def is_journal(path: Path) -> bool:
    return (path / MARKER).is_file() and (path / ".git").exists()


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Finding:
    """One thing ``doctor`` noticed; ``repaired`` is None when it needs no repair, False when it could not be."""

    problem: str
    repaired: bool | None


class Journal:
    def __init__(self, path: Path, lock_timeout: float = 0.0):
        self.path = path
        self.lock_timeout = lock_timeout
        self._lock = WriterLock(path / SCRATCH / "lock", path)
        self._index = Index(path / DB_FILE)
        self._held = False  # inside ``holding``: the lock is held and recovery done

    @functools.cached_property
    def _git(self):
        """The journal's git repository, opened (GitPython imported) when a command first needs it: reading
        experiments and runs needs no git."""
        from .gitrepo import GitRepo

        return GitRepo(self.path, self._lock.inherited_fds)

    # ------------------------------------------------------------------ opening

    @classmethod
    def init(cls, path: str | os.PathLike) -> "Journal":
        """Create a journal in a new or empty directory (a no-op open if it already is one)."""
        path = Path(path).expanduser().absolute()
        if is_journal(path):
            return cls.open(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise NotAJournal(f"{path} is not empty and is not a journal; choose a new or empty directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / SCRATCH).mkdir()
        except OSError as exc:
            raise NotAJournal(f"cannot create a journal at {visible(str(path))} ({exc.strerror}); choose a directory you can write") from None
        from .gitrepo import GitRepo

        repo = GitRepo.init(path)
        (path / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
        (path / ".gitignore").write_text(_GITIGNORE_TEXT, encoding="utf-8")
        repo.commit_paths([MARKER, ".gitignore"], "Start a promptism journal\n", path / SCRATCH / COMMIT_SCRATCH)
        journal = cls(path)
        journal._index.replace_all([])
        return journal

    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = False, lock_timeout: float = 0.0, recover: bool = True) -> "Journal":
        """Open a journal; with ``create``, a missing or empty directory becomes a new journal.

        Finishes an interrupted write (or rebuilds a missing index) first, if no other writer is active — unless
        ``recover`` is False, as for ``doctor``, which does that itself and more.
        """
        path = Path(path).expanduser().absolute()
        if not is_journal(path):
            if create and (not path.exists() or (path.is_dir() and not any(path.iterdir()))):
                return cls.init(path)
            if not path.exists():
                raise NotAJournal(f"no journal at {path}; create one with `promptism init {path}`")
            raise NotAJournal(f"{path} is not a promptism journal (no {MARKER}); pass {option('journal', 'DIR')} or run `promptism init`")
        journal = cls(path, lock_timeout)
        if recover and (journal._intent_path.exists() or not journal._index_readable() or journal._temp_files()
                        or journal._index_empty_but_experiments_exist()):
            try:
                with journal._writing():
                    pass  # _writing recovers and rebuilds on entry
            except (JournalError, OSError):  # busy, read-only, disk full: reading needs no write while the index reads
                if not journal._index_readable():
                    raise
        return journal

    def _index_readable(self) -> bool:
        try:
            self._index.check()
        except CorruptIndex:
            return False
        return (self.path / DB_FILE).exists()

    def _index_empty_but_experiments_exist(self) -> bool:
        """An index emptied by hand while experiments exist (and no write is under way) is stale, not a fresh journal."""
        return (len(self._index) == 0 and not self._intent_path.exists()
                and any((self.path / EXPERIMENTS).glob(f"*/{EXPERIMENT_FILE}")))

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._index)

    def get(self, number: int) -> Experiment:
        doc = self._index.get(number) if isinstance(number, int) and number > 0 else None
        if doc is None:
            last = self.last_number()
            hint = f"the journal has #1 to #{last}" if last else "the journal is empty"
            raise ExperimentNotFound(f"no experiment #{number}; {hint} (see `promptism log`)")
        return Experiment.from_doc(doc)

    def last_number(self) -> int:
        return self._index.last_number()

    def list(self, offset: int = 0, limit: int | None = 20) -> list[Experiment]:
        """Experiments newest first."""
        return self.search(offset=offset, limit=limit)

    def search(
        self,
        text: str | None = None,
        *,
        model: str | None = None,
        keyword: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        offset: int = 0,
        limit: int | None = 20,
    ) -> list[Experiment]:
        """Newest first. ``text`` matches title or model (case and letter style ignored); ``keyword`` an exact keyword;
        ``since``/``until`` are inclusive ``YYYY-MM-DD`` dates (UTC)."""
        q = Query()
        conditions = []
        if text:
            needle = fold(text)
            conditions.append(q.title.test(lambda t: needle in fold(t)) | q.model.id.test(lambda m: needle in fold(m)))
        if model:
            wanted = fold(model)
            conditions.append(q.model.id.test(lambda m: wanted in fold(m))
                              | q.extra_models.test(lambda ms: any(wanted in fold(m.get("id", "")) for m in ms)))
        if keyword:  # a keyword, or a part of the prompt (imports from before keywords were split), weights ignored
            wanted_kw = fold(plain(keyword))
            conditions.append(q.keywords.test(lambda ks: any(fold(plain(k)) == wanted_kw for k in ks))
                              | q.prompt.test(lambda p: any(fold(plain(part)) == wanted_kw for part in split_keywords(p))))
        if status:
            conditions.append(q.status == status)
        if since:
            conditions.append(q.created.test(lambda c: c[:10] >= since))
        if until:
            conditions.append(q.created.test(lambda c: c[:10] <= until))
        docs = self._index.search(functools.reduce(operator.and_, conditions) if conditions else None)
        docs.sort(key=lambda d: d.doc_id, reverse=True)
        end = None if limit is None else offset + limit
        return [Experiment.from_doc(d) for d in docs[offset:end]]

    def folder(self, exp: Experiment) -> Path:
        return self.path / exp.dir

    def image_path(self, exp: Experiment, image: ImageRecord) -> Path:
        return self.path / exp.dir / image.file

    @property
    def scratch(self) -> Path:
        """The git-ignored working area (runs, locks) inside the journal."""
        return self.path / SCRATCH

    # ------------------------------------------------------------------ writing

    def accept(self, new: NewExperiment, *, allow_title_overlap: bool = False) -> Experiment:
        """Record ``new`` as the next numbered experiment: one commit ``#N <title>`` and a tag ``exp/NNNN``.

        A title that contains the prompt, a keyword or an image's prompt is refused (TitleRevealsPrompt) unless
        ``allow_title_overlap``."""
        return self.accept_many([new], allow_title_overlap=allow_title_overlap)[0]

    def accept_many(self, news: Sequence[NewExperiment], *, allow_title_overlap: bool = False) -> list[Experiment]:
        """Record ``news`` as the next numbered experiments in one commit (a tag each): all of them or, after a
        crash, none. Each is checked as ``accept`` checks it before anything is written."""
        from .images import clean_gif, clean_png, open_frames, open_image  # (Pillow: for the commands that decode)

        for new in news:
            check_new(new, allow_title_overlap)
        cleaned = [[img.clean or clean_png(open_image(Path(img.path))) for img in new.images] for new in news]  # all decoded first
        animations = [[clean_gif(open_frames(Path(img.animation))) if img.animation else None for img in new.images] for new in news]
        if not news:
            return []
        with self._writing():
            parents = {new.parent for new in news if new.parent is not None}
            for parent in parents:
                self.get(parent)
            first = self.last_number() + 1
            if any(next((self.path / EXPERIMENTS).glob(f"{n:04d}-*"), None) for n in range(first, first + len(news))):
                raise JournalError(f"a folder for #{first} or later already exists outside the index; run `promptism doctor`")
            now = _now()
            accepted, images = [], {}
            for number, new, clean, anims in zip(range(first, first + len(news)), news, cleaned, animations):
                exp = self._experiment(number, new, clean, anims, now)
                accepted.append(exp)
                names = [i.file for i in exp.images]
                images[exp.dir] = {name: c.data for name, c in zip(names, clean)} | {
                    _gif_name(name): a.data for name, a in zip(names, anims) if a}
            if len(accepted) == 1:
                exp = accepted[0]
                lines = [f"Model: {_model_line(exp)}", f"Images: {len(exp.images)}" + _seeds(exp)]
                if exp.parent:
                    lines.append(f"Parent: #{exp.parent}")
                message = f"#{exp.number} {exp.title}\n\n" + "\n".join(lines) + "\n"
            else:
                message = (f"#{first}–#{accepted[-1].number}: {len(accepted)} experiments\n\n"
                           + "".join(f"#{e.number} {e.title} — {_model_line(e)}; {len(e.images)} image(s){_seeds(e)}\n" for e in accepted))
            self._commit(accepted, message, images=images, tag=True)
            return accepted

    def _experiment(self, number: int, new: NewExperiment, cleaned: list, animations: list, now: str) -> Experiment:
        slug = slugify(new.title)
        names = [f"{i:02d}" + (f"-s{img.seed}" if img.seed is not None else "") + ".png" for i, img in enumerate(new.images, 1)]
        return Experiment.from_doc(Experiment(
            number=number,
            title=new.title,
            slug=slug,
            dir=f"{EXPERIMENTS}/{number:04d}-{slug}",
            model=new.model,
            extra_models=tuple(new.extra_models),
            images=tuple(
                ImageRecord(file=name, sha256=c.sha256, width=c.width, height=c.height, seed=img.seed, prompt=img.prompt,
                            score=img.score, animation=_gif_name(name) if a else None, animation_sha256=a.sha256 if a else None,
                            pixels=c.pixels)
                for name, c, img, a in zip(names, cleaned, new.images, animations)
            ),
            created=now,
            updated=now,
            prompt=new.prompt,
            negative_prompt=new.negative_prompt,
            keywords=tuple(new.keywords),
            terms=tuple(t for t in dict.fromkeys(new.terms) if t.strip() and t not in (new.prompt, *new.keywords)),
            grid=new.grid,
            params=dict(new.params),
            parent=new.parent,
            compute=new.compute,
            tool_version=tool_version(),
        ).to_doc())

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Hold the writer lock across several writes (a folder import: one hold, a commit per batch); each write
        inside still follows the whole protocol, so a crash loses at most the batch under way."""
        with self._writing():
            self._held = True
            try:
                yield
            finally:
                self._held = False

    def image_numbers(self) -> tuple[dict[str, int], dict[str, int]]:
        """Which experiment holds each image (an import skips what is there): by pixel hash, and by file sha256 for
        images recorded before pixel hashes were."""
        by_pixels: dict[str, int] = {}
        by_file: dict[str, int] = {}
        for doc in self._index.search():
            for image in doc.get("images", []):
                if image.get("pixels"):
                    by_pixels[image["pixels"]] = doc.doc_id
                else:
                    by_file[image["sha256"]] = doc.doc_id
        return by_pixels, by_file

    def retitle(self, number: int, title: str, *, allow_title_overlap: bool = False) -> Experiment:
        """A new title for #number (one commit ``#N retitled``: the old title is never repeated)."""
        check_new_title(title)
        with self._writing():
            old = self.get(number)
            if not allow_title_overlap:
                check_title_keeps_secrets(title, old.secrets, number)
            self._refuse_edits([old.dir])  # someone's edit there would be overwritten: doctor keeps it first
            slug = slugify(title)
            exp = old.replace(title=title, slug=slug, dir=f"{EXPERIMENTS}/{number:04d}-{slug}", updated=_now())
            moved = {number: old.dir} if exp.dir != old.dir else {}
            if moved and (self.path / exp.dir).exists():
                raise JournalError(f"{exp.dir} already exists outside the journal's history; run `promptism doctor`")
            self._commit([exp], f"#{number} {title}\n\n#{number} retitled\nModel: {_model_line(exp)}\n", moved_from=moved)
            return exp

    def publish(self, numbers: Iterable[int], out: Path, *, allow_title_overlap: bool = False) -> list[Experiment]:
        """Write the gallery of every published experiment plus ``numbers`` to ``out``; mark ``numbers`` published."""
        with self._writing():
            targets = [self.get(n) for n in dict.fromkeys(numbers)]  # none: rewrite the gallery of what is published
            return self._publish(targets, Path(out).absolute(), allow_title_overlap)

    def _publish(self, targets: list[Experiment], out: Path, allow_title_overlap: bool) -> list[Experiment]:
        if out.resolve() == self.path.resolve() or self.path.resolve() in out.resolve().parents:
            raise InvalidInput(f"{option('out')} {visible(str(out))} is inside the journal; publish to a folder outside it")
        now = _now()
        changed = [e.replace(status="published", published=now, updated=now) for e in targets if e.status != "published"]
        shown = {e.number: e for e in self.search(status="published", limit=None)}
        shown.update({e.number: e for e in targets})
        shown.update({e.number: e for e in changed})
        if not allow_title_overlap:  # every title the gallery will show: an allowed overlap may be older than this
            for e in shown.values():
                check_title_keeps_secrets(e.title, e.secrets, e.number)
        for e in shown.values():
            if missing := [i.file for i in e.images if not self.image_path(e, i).is_file()]:
                raise JournalError(f"#{e.number}: {missing[0]} is missing from {e.dir}; run `promptism doctor` (it restores it from git)")
        self._refuse_edits([e.dir for e in shown.values()])  # publish exactly what was committed
        from .publish import GalleryEntry, discard_staged, install_gallery, stage_gallery

        staged = stage_gallery(out, [GalleryEntry(e, [self.image_path(e, i) for i in e.images]) for e in shown.values()])
        try:
            write_atomic(self._gallery_record, json.dumps({"out": str(out)}).encode())  # so doctor can check it
            if changed:
                subject = "Publish " + ", ".join(f"#{e.number}" for e in changed)
                self._commit(changed, subject + "\n\n" + "".join(f"#{e.number} {e.title} — {_model_line(e)}\n" for e in changed))
        except BaseException:
            discard_staged(staged)
            raise
        install_gallery(staged, out)
        return [shown[e.number] for e in targets]

    @property
    def _gallery_record(self) -> Path:
        return self.path / SCRATCH / GALLERY_FILE

    @property
    def gallery(self) -> Path | None:
        """The gallery folder last published to, if any."""
        try:
            return Path(json.loads(self._gallery_record.read_bytes())["out"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _check_gallery(self, repair: bool) -> list[Finding]:
        """The last gallery published to: leftovers of a killed publish, and published experiments it does not show."""
        from .publish import gallery_numbers, remove_leftovers

        if (out := self.gallery) is None:
            return []
        shown_out = visible(str(out), keep_newlines=False)
        findings = []
        leftovers = [*out.parent.glob(f".{glob.escape(out.name)}.*.tmp"), *out.parent.glob(f".{glob.escape(out.name)}.*.old")]
        if leftovers:
            removed = remove_leftovers(out) if repair else 0
            findings.append(Finding(f"{len(leftovers)} folder(s) left beside the gallery {shown_out} by a publish that was cut short"
                                    + (f"; removed {removed}" if repair else ""), repair and removed == len(leftovers)))
        published = {e.number for e in self.search(status="published", limit=None)}
        shown = gallery_numbers(out) if out.exists() else set()
        if shown is None or not published <= shown:
            missing = sorted(published - (shown or set()))
            findings.append(Finding(f"the gallery {shown_out} does not show published " + ", ".join(f"#{n}" for n in missing)
                                    + ("; rewrote it" if repair else " (doctor without --check rewrites it)"), repair))
            if repair:
                self._publish([], out, allow_title_overlap=True)  # titles were checked when they were published
        return findings

    def unpublish(self, numbers: Iterable[int]) -> list[Experiment]:
        with self._writing():
            targets = [self.get(n) for n in dict.fromkeys(numbers)]
            now = _now()
            changed = [e.replace(status="unreleased", published=None, updated=now) for e in targets if e.status == "published"]
            self._refuse_edits([e.dir for e in changed])
            if changed:
                self._commit(changed, "Unpublish " + ", ".join(f"#{e.number}" for e in changed) + "\n")
            return [e.replace(status="unreleased", published=None) for e in targets]

    # ------------------------------------------------------------------ the write protocol

    @property
    def _intent_path(self) -> Path:
        return self.path / SCRATCH / INTENT_FILE

    @contextlib.contextmanager
    def _writing(self, rebuild: bool = True) -> Iterator[list[Finding]]:
        """Hold the writer lock; on entry set an unreadable index aside, finish any interrupted write and rebuild a
        missing index (yields what it did)."""
        if self._held:
            yield []
            return
        (self.path / SCRATCH).mkdir(exist_ok=True)
        self._lock.acquire(self.lock_timeout)
        try:
            self._git.check_usable()
            findings = self._set_aside_corrupt_index()
            missing = not (self.path / DB_FILE).exists() or self._index_empty_but_experiments_exist()
            findings += self._recover(update_index=not missing)
            if rebuild and missing:
                what = "unreadable" if findings and findings[0].problem.startswith(DB_FILE) else "missing"
                findings.append(Finding(f"rebuilt the {what} index of {self._rebuild_index()} experiment(s) from git", True))
            yield findings
        finally:
            self._lock.release()

    def _set_aside_corrupt_index(self) -> list[Finding]:
        """An index that cannot be read is derived data gone bad: keep it under orphans/ (it is rebuilt from git)."""
        try:
            self._index.check()
            return []
        except CorruptIndex as exc:
            kept = self._orphans() / DB_FILE
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path / DB_FILE, kept)
            return [Finding(f"{DB_FILE} was unreadable ({exc.reason}); kept it as {kept.relative_to(self.path)}", True)]

    def _orphans(self) -> Path:
        """Where doctor and recovery keep what they take out of the journal: nothing is ever deleted."""
        return self.path / SCRATCH / "orphans" / time.strftime("%Y%m%d-%H%M%S")

    def _commit(self, experiments: list[Experiment], message: str, *, images: dict[str, dict[str, bytes]] | None = None,
                tag: bool = False, moved_from: dict[int, str] | None = None) -> None:
        """Write ``experiments`` (their documents, ``images[folder]`` into each folder) and commit exactly their folders.

        ``moved_from`` maps a number to the folder it leaves: the folder is renamed in the same commit (a retitle)."""
        moved_from = moved_from or {}
        paths = [e.dir for e in experiments] + [moved_from[e.number] for e in experiments if e.number in moved_from]
        documents = {e.number: _encode(e) for e in experiments}  # every byte is encoded before anything is written
        message = visible(message)  # the one escaping path: nothing in a commit message can drive a terminal
        _encodable(message)
        write_atomic(self._intent_path, json.dumps({"numbers": [e.number for e in experiments], "paths": paths, "tag": tag}).encode())
        failpoints.hit("intent-written")
        for exp in experiments:
            folder = self.path / exp.dir
            if exp.number in moved_from:
                os.rename(self.path / moved_from[exp.number], folder)
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in (images or {}).get(exp.dir, {}).items():
                write_atomic(folder / name, data)
                failpoints.hit("image-written")
            write_atomic(folder / EXPERIMENT_FILE, documents[exp.number])
        failpoints.hit("files-written")
        sha = self._git.commit_paths(paths, message, self.path / SCRATCH / COMMIT_SCRATCH)
        failpoints.hit("committed")
        self._index.put(e.to_doc() for e in experiments)
        failpoints.hit("indexed")
        if tag:
            self._git.tag_all([_tag(exp.number) for exp in experiments], sha, self.path / SCRATCH / COMMIT_SCRATCH)
            failpoints.hit("tagged")
        self._intent_path.unlink()

    def _refuse_edits(self, paths: list[str]) -> None:
        """Refuse to go on while a file under ``paths`` differs from what git holds (an edit by hand, a stray file)."""
        if paths and (edited := self._git.changes(*paths)):
            raise JournalError(f"{visible(edited[0][1])} has changes git does not have; run `promptism doctor` first (it keeps "
                               "them in .promptism/orphans/ and restores the committed version)")

    def _recover(self, update_index: bool = True) -> list[Finding]:
        """Finish or undo an interrupted write: the folders it touched become what HEAD holds, the index follows
        (unless it is about to be rebuilt whole)."""
        findings = [Finding(f"removed stale git lock {lock}", True) for lock in self._git.remove_stale_locks()]
        for leftover in self._commit_leftovers():  # a killed write's private index (its lock would block every write)
            leftover.unlink()
            findings.append(Finding(f"removed {leftover.relative_to(self.path)}, left by a write that was cut short", True))
        for tmp in self._temp_files():
            tmp.unlink()  # half-written replacements from a killed writer; the files they were replacing are intact
        try:
            intent = json.loads(self._intent_path.read_bytes())
        except FileNotFoundError:
            return findings
        except ValueError:  # write_atomic makes this impossible short of disk corruption
            intent = {"numbers": [], "paths": []}
        if self._git.head_exists() and intent["paths"]:
            self._git.restore_to_head(*intent["paths"])
        for number in intent["numbers"]:
            doc_files = sorted((self.path / EXPERIMENTS).glob(f"{number:04d}-*/{EXPERIMENT_FILE}"))
            if doc_files:
                exp = self._read_experiment(doc_files[0])
                if update_index:
                    self._index.put([exp.to_doc()])
                if intent.get("tag"):
                    self._ensure_tag(exp)
                findings.append(Finding(f"completed an interrupted write of #{number} (it was committed)", True))
            else:
                if update_index:
                    self._index.drop(number)
                findings.append(Finding(f"rolled back an interrupted write of #{number} (it was never committed)", True))
        self._intent_path.unlink()
        return findings

    def _commit_leftovers(self) -> list[Path]:
        return sorted((self.path / SCRATCH).glob(f"{COMMIT_SCRATCH}*"))

    def _temp_files(self) -> list[Path]:
        return [*self.path.glob(f".{DB_FILE}.*.tmp"), *(self.path / SCRATCH).glob(".*.tmp")]

    def _ensure_tag(self, exp: Experiment) -> bool:
        name = _tag(exp.number)
        if name in self._git.tags(name):
            return False
        sha = self._git.first_commit_adding(f"{EXPERIMENTS}/{exp.number:04d}-*/{EXPERIMENT_FILE}")  # retitles rename folders
        if sha:
            self._git.tag(name, sha)
        return True

    def _read_experiment(self, doc_file: Path) -> Experiment:
        rel = doc_file.relative_to(self.path).as_posix()
        try:
            return Experiment.from_doc(json.loads(doc_file.read_bytes()))
        except ValueError as exc:
            reason = f"is not valid JSON ({exc})"
        except InvalidInput as exc:
            reason = f"is not a valid experiment document ({exc})"
        raise JournalError(f"{visible(rel, keep_newlines=False)} {reason}; run `promptism doctor`")

    def _tree_documents(self) -> tuple[dict[int, Experiment], dict[str, str]]:
        """The experiments in the work tree by number, and the folders whose document is unreadable (with why)."""
        found: dict[int, Experiment] = {}
        bad: dict[str, str] = {}
        for doc_file in sorted((self.path / EXPERIMENTS).glob(f"*/{EXPERIMENT_FILE}")):
            try:
                exp = self._read_experiment(doc_file)
            except JournalError as exc:
                bad[doc_file.parent.relative_to(self.path).as_posix()] = str(exc)
                continue
            found[exp.number] = exp
        return found, bad

    def _tree_experiments(self) -> dict[int, Experiment]:
        found, bad = self._tree_documents()
        if bad:
            raise JournalError(next(iter(bad.values())))
        return found

    def _rebuild_index(self) -> int:
        """Replace the whole index, in one atomic write, with the documents in the experiment folders."""
        tree = self._tree_experiments()
        self._index.replace_all(e.to_doc() for e in tree.values())
        return len(tree)

    # ------------------------------------------------------------------ doctor

    def doctor(self, repair: bool = True, gc: bool = False) -> list[Finding]:
        """Check index ↔ files ↔ git history, and that the history is its owner's alone; with ``repair``, fix what can
        be fixed without losing anything; with ``gc`` too, prune the objects no commit reaches (they may hold a
        prompt)."""
        if not repair:
            return self._diagnose(repair=False)
        with self._writing(rebuild=False) as recovered:  # _diagnose restores files from git before it rebuilds
            findings = recovered + self._diagnose(repair=True)
            if gc and (pruned := self._git.prune_unreachable()):
                findings.append(Finding(f"pruned {pruned} object(s) no commit reaches (what writes rolled back leave; "
                                        "they may hold a prompt)", True))
            return findings

    def _diagnose(self, repair: bool) -> list[Finding]:
        from .images import sha256_file  # (Pillow comes with it: doctor alone needs it here)

        findings: list[Finding] = []
        if exposed := self._git.exposed():
            if repair:
                self._git.make_private()
            findings.append(Finding(f"other users can read the journal's git history, which holds every prompt ({exposed} "
                                    "file(s), folder(s) or settings under .git)" + ("; made it yours alone "
                                    "(core.sharedRepository 0600)" if repair else ""), repair))
        pending: list[str] = []
        pending_numbers: set[int] = set()
        if self._intent_path.exists():  # only with --check: a repair has finished or undone it already
            try:
                intent = json.loads(self._intent_path.read_bytes())
                pending, pending_numbers = list(intent.get("paths", [])), set(intent.get("numbers", []))
            except (OSError, ValueError, AttributeError, TypeError):
                pending = []
            findings.append(Finding("a write was cut short; its changes to " + (", ".join(map(visible, pending)) or "the journal")
                                    + " are not checked further (doctor without --check finishes or undoes it)", False))
        for leftover in self._commit_leftovers() if not repair and not pending else []:  # a pending write's own
            findings.append(Finding(f"{leftover.relative_to(self.path)} was left by a write that was cut short (doctor "
                                    "without --check removes it)", False))
        orphans = self._orphans()
        reported = set()
        for status, rel in self._git.changes(EXPERIMENTS, MARKER, ".gitignore"):
            reported.add(rel)
            if any(rel == p or rel.startswith(p + "/") for p in pending):
                continue  # the cut-short write's own files: said once above
            shown = visible(rel, keep_newlines=False)
            kept = ""
            if repair and (self.path / rel).is_file():  # nothing is deleted: the file as it was goes to orphans/
                (orphans / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.path / rel, orphans / rel)
                kept = f"{(orphans / rel).relative_to(self.path)}"
            if status == "??" or "A" in status:
                if repair:
                    self._git.restore_to_head(rel)  # unstaged if staged, then gone from the work tree
                    _remove_empty_parents(self.path / rel, self.path / EXPERIMENTS)
                findings.append(Finding(f"{shown} is not part of any committed experiment" + (f"; moved to {kept}" if repair else ""), repair))
            elif "D" in status:
                if repair:
                    self._git.restore_to_head(rel)
                findings.append(Finding(f"{shown} is missing" + ("; restored from git" if repair else ""), repair))
            else:
                if repair:
                    self._git.restore_to_head(rel)
                findings.append(Finding(f"{shown} differs from the committed version" + (f"; restored from git (the changed file is kept in {kept})" if repair else ""), repair))
        tree, bad = self._tree_documents()
        for folder, problem in bad.items():
            findings.append(self._repair_document(folder) if repair else Finding(problem, False))
        if repair and bad:
            tree, bad = self._tree_documents()
        expected = set(range(1, max(tree, default=0) + 1))
        if missing := sorted(expected - set(tree)):
            findings.append(Finding("numbering has gaps: no experiment " + ", ".join(f"#{n}" for n in missing), False))
        for number, exp in sorted(tree.items()):
            if number in pending_numbers:
                continue
            folder = self.path / exp.dir
            if not (folder / EXPERIMENT_FILE).exists():
                findings.append(Finding(f"#{number} lives in the wrong folder (its document says {visible(exp.dir)})", False))
                continue
            for image in exp.images:
                for file, sha in ((image.file, image.sha256), (image.animation, image.animation_sha256)):
                    if not file or f"{exp.dir}/{file}" in reported and not repair:  # said above, with what doctor does
                        continue
                    if (folder / file).exists() and sha256_file(folder / file) != sha:
                        findings.append(Finding(f"#{number}: {file} does not match its recorded sha256", False))
                    elif not (folder / file).exists():
                        findings.append(Finding(f"#{number}: {file} is missing and not in git history", False))
        try:
            index = {doc.doc_id: doc for doc in self._index.search()}
        except CorruptIndex as exc:  # only with --check: a repair has set it aside already
            return findings + [Finding(f"{DB_FILE} is unreadable ({exc.reason}); doctor without --check rebuilds it from git", False)]
        stale = sorted(n for n in (set(index) | set(tree)) - pending_numbers if n not in tree or index.get(n) != tree[n].to_doc())
        if stale:
            if repair and not bad:
                self._rebuild_index()
            findings.append(Finding(f"the index disagreed with git on {len(stale)} experiment(s) (" + ", ".join(f"#{n}" for n in stale[:10])
                                    + ")" + ("; rebuilt it from the committed documents" if repair and not bad else ""), repair and not bad))
        known = self._git.tags("exp/*")
        for number, exp in sorted(tree.items()):
            if _tag(number) not in known:
                if repair:
                    self._ensure_tag(exp)
                findings.append(Finding(f"tag {_tag(number)} was missing" + ("; created it" if repair else ""), repair))
        return findings + self._check_gallery(repair and not bad)

    def _repair_document(self, folder: str) -> Finding:
        """A committed experiment.json that does not read: the newest version in git history that does comes back (one
        commit); a folder that never held an experiment leaves the journal for orphans/ (one commit)."""

        shown = visible(folder, keep_newlines=False)
        rel = f"{folder}/{EXPERIMENT_FILE}"
        for sha in self._git.run("log", "--format=%H", "--", rel).split():
            try:
                exp = Experiment.from_doc(json.loads(self._git.run("show", f"{sha}:{rel}")))
            except (JournalError, ValueError):
                continue
            if exp.dir == folder:
                self._commit([exp], f"#{exp.number} repaired\n\nRestored {EXPERIMENT_FILE} as of {sha[:12]}\n")
                return Finding(f"{shown}/{EXPERIMENT_FILE} was not a valid experiment document; restored the version of commit {sha[:12]}", True)
        kept = self._orphans() / folder
        write_atomic(self._intent_path, json.dumps({"numbers": [], "paths": [folder], "tag": False}).encode())
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.path / folder, kept)
        if self._git.in_head(folder):
            self._git.commit_paths([folder], f"Remove {folder}\n\nIt never held a valid experiment; kept in {kept.relative_to(self.path)}\n",
                                   self.path / SCRATCH / COMMIT_SCRATCH)
        self._intent_path.unlink()
        return Finding(f"{shown} never held a valid experiment document; moved to {kept.relative_to(self.path)}", True)


def check_new(new: NewExperiment, allow_title_overlap: bool = False) -> None:
    """Raise what ``accept`` would refuse about ``new`` (its title, models, images) before anything is read or written."""
    check_new_title(new.title)
    if not allow_title_overlap:
        check_title_keeps_secrets(new.title, new.secrets)
    for model in (new.model, *new.extra_models):
        check_model_name(model.id)
    if not new.images:
        raise InvalidInput("an experiment needs at least one image")


def _encode(exp: Experiment) -> bytes:
    """The experiment.json bytes; InvalidInput for anything JSON or the index cannot hold (NaN, lone surrogates, huge ints)."""
    doc = exp.to_doc()
    try:
        orjson.dumps(doc)  # the index's encoder: the same document must go there after the commit
        return _encodable(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False) + "\n")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"#{exp.number} has a value the journal cannot store ({exc}); check the prompt, seeds and parameters") from None


def _encodable(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("the text contains an unpaired surrogate (invalid Unicode); pass valid UTF-8 text") from None


def _remove_empty_parents(path: Path, top: Path) -> None:
    """Remove the folders above ``path`` that are left empty, up to (not including) ``top``."""
    for folder in path.parents:
        if folder == top or top not in folder.parents:
            return
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop here
            return


def _gif_name(png_name: str) -> str:
    return png_name.removesuffix(".png") + ".gif"


def _tag(number: int) -> str:
    return f"exp/{number:04d}"


def _model_line(exp: Experiment) -> str:
    m = exp.model
    details = ", ".join(x for x in (m.pipeline, m.scheduler) if x)
    models = " + ".join(model.credit for model in (m, *exp.extra_models))
    return models + (f" @ {m.revision}" if m.revision else "") + (f" ({details})" if details else "") + exp.lora_credit


def _seeds(exp: Experiment) -> str:
    seeds = list(dict.fromkeys(i.seed for i in exp.images if i.seed is not None))
    return ("; seeds " + ", ".join(map(str, seeds))) if seeds else ""
