"""Run folders: every run's images and manifest under the journal's git-ignored ``.promptism/runs/<run-id>/``.

Each finished batch is written at once (PNG pixels only, then the manifest, atomically), so after a crash, a kill or
a lost SSH session the images made so far are still there and ``promptism runs`` lists them. ``accept`` turns a run
(or picked cells) into the next numbered experiment; ``discard`` deletes the folder.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from journal import Compute, Experiment, Journal, ModelInfo, NewExperiment, NewImage, failpoints
from journal.atomic import write_atomic
from journal.grid_record import GridRecord
from journal.lock import pid_alive
from journal.text import quoted

from ..errors import RunError, option
from .records import CellRecord, ModelRecord, RunRecord

MANIFEST = "manifest.json"


def runs_dir(journal: Journal) -> Path:
    return journal.scratch / "runs"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclass
class Run:
    folder: Path
    record: RunRecord
    accepted: list[int] = field(default_factory=list)  # the experiments made from it, as the journal records them

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def state(self) -> str:
        """running, finished, cancelled or failed — and ``interrupted`` for a run whose process died (recorded as
        such once it is settled: see ``execution.settle``)."""
        if self.record.state == "running" and not self.live:
            return "interrupted"
        return self.record.state

    @property
    def live(self) -> bool:
        """Whether the process that runs it is alive."""
        pid = self.record.pid
        return isinstance(pid, int) and pid_alive(pid)

    @property
    def done(self) -> list[CellRecord]:
        return self.record.done

    def image(self, cell: CellRecord) -> Path:
        return self.folder / cell.file

    @classmethod
    def create(cls, journal: Journal, record: RunRecord) -> "Run":
        """A new run of ``record`` in ``journal``, under a new id (``new_run_id``; drawn again where two runs of one
        second drew the same: a service making small A1111 jobs starts several a second)."""
        for attempt in range(16):
            record.id = new_run_id()
            folder = runs_dir(journal) / record.id
            try:
                folder.mkdir(parents=True)
                break
            except FileExistsError:
                if attempt == 15:
                    raise
        run = cls(folder, record)
        run.claim()
        record.created, record.created_ns = _now(), time.time_ns()
        run.save()
        return run

    def claim(self) -> None:
        """Mark the run as running in this process (a new run, or one being resumed)."""
        self.record.state, self.record.pid = "running", os.getpid()

    def save(self) -> None:
        write_atomic(self.folder / MANIFEST, json.dumps(self.record.dump(), ensure_ascii=False, indent=1).encode("utf-8"))

    def add_images(self, indices: list[int], pngs: list[bytes], animations: dict[int, bytes] | None = None, *,
                   pool: Executor | None = None) -> None:
        """Write a finished batch, encoded: pixels-only PNGs (and GIF animations) first — on ``pool``'s threads, if
        given — then the manifest that points at them (see ``writer``, which encodes them)."""
        cells = self.record.cells
        files: dict[str, bytes] = {}
        for index, png in zip(indices, pngs):
            cell = cells[index]
            cell.file = f"cell-{index:03d}-s{cell.seed}.png"
            files[cell.file] = png
            if gif := (animations or {}).get(index):
                cell.animation = cell.file.removesuffix(".png") + ".gif"
                files[cell.animation] = gif
            if cell.steps_done is not None:  # made again in full (a resumed run)
                cell.steps_done = None
        list((pool.map if pool else map)(lambda item: write_atomic(self.folder / item[0], item[1]), files.items()))
        self.record.layout.append(indices)
        self.save()
        failpoints.hit("batch-written")

    def finish(self, state: str, **fields) -> None:
        """Record how the run ended (and any other fields of its record)."""
        for name, value in {"state": state, "finished": _now(), **fields}.items():
            setattr(self.record, name, value)
        self.save()


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def list_runs(journal: Journal) -> list[Run]:
    """Every run folder with a readable manifest, newest first, each with the experiments accepted from it."""
    found = []
    root = runs_dir(journal)
    accepted = accepted_runs(journal) if root.is_dir() else {}
    for folder in root.iterdir() if root.is_dir() else []:
        try:
            record = RunRecord.model_validate_json((folder / MANIFEST).read_bytes())
        except (OSError, ValueError):  # unreadable, not JSON, or not a run record (pydantic's ValidationError)
            continue
        found.append(Run(folder, record, accepted.get(record.id, [])))
    return sorted(found, key=lambda r: r.record.created_ns, reverse=True)


def accepted_runs(journal: Journal) -> dict[str, list[int]]:
    """Run id → the numbers of the experiments accepted from it, oldest first. The journal is the one record of this
    (an accept completed by crash recovery is there, whatever happened to the run folder)."""
    found: dict[str, list[int]] = {}
    for exp in reversed(journal.search(limit=None)):
        if exp.grid is not None and exp.grid.run is not None:
            found.setdefault(exp.grid.run, []).append(exp.number)
    return found


def load_run(journal: Journal, run_id: str) -> Run:
    """A run by id, or by a unique prefix or suffix of it (``promptism runs`` shows them)."""
    runs = list_runs(journal)  # reads the journal once for what was accepted: a run folder does not know
    exact = [r for r in runs if r.id == run_id]
    matches = exact or [r for r in runs if r.id.startswith(run_id) or r.id.endswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunError(f"no run {quoted(run_id)} in {runs_dir(journal)}; `promptism runs` lists them")
    raise RunError(f"{quoted(run_id)} matches {len(matches)} runs; give more of the id")


def model_source(model: ModelRecord) -> str | None:
    """What rerun and resume resolve (private: it may be a local path): the folder of a local model, the full name of a
    CLIP-guided one; None where the credited id is enough."""
    return {"local": model.source, "file": model.source, "guided": model.id}.get(model.kind)


def discard_run(run: Run) -> None:
    shutil.rmtree(run.folder)


def accept_run(journal: Journal, run: Run, title: str, pick: list[int] | None = None, *, again: bool = False,
               allow_title_overlap: bool = False) -> Experiment:
    """The run's finished cells (or the picked ones) become the next numbered experiment. A run accepted before is
    refused unless ``again``; a title holding the prompt or a keyword unless ``allow_title_overlap``. A run whose
    process died is first settled like a cancelled one (scores, keyword effects, contact sheet)."""
    if run.accepted and not again:
        raise AlreadyAccepted(run.id, run.accepted)
    if run.state == "interrupted":
        from .execution import settle  # scoring needs torch: imported only for a run that needs it

        settle(run)
    done = {c.index: c for c in run.done}
    if not done:
        raise RunError(f"run {run.id} has no finished images to accept")
    if pick:
        missing = [i for i in pick if i not in done]
        if missing:
            raise RunError(f"cell {missing[0]} of run {run.id} has no image; finished cells: {', '.join(map(str, sorted(done)))}")
        chosen = [done[i] for i in dict.fromkeys(pick)]
    else:
        chosen = [done[i] for i in sorted(done)]
    r = run.record
    spec = r.spec
    model = _one_model(run, chosen)
    params = {k: v for k, v in r.params.dump().items() if v is not None}
    if model != r.model and r.params.sampler is None:
        params["scheduler"] = model.info.scheduler  # the other model's own scheduler sampled its cells
    grid = GridRecord.model_validate({  # from the records' JSON: the document holds what they hold, no empty fields
        "run": run.id, "mode": spec.mode, "base": spec.base, "model_source": model_source(model), "axes": spec.axes,
        "seeds": spec.seeds, "cells": [c.dump() for c in r.cells], "layout": r.layout, "picked": [c.index for c in chosen],
        "effects": {k: e.dump() for k, e in r.effects.items()} if r.effects is not None else None,
        **({"weight_curves": {k: [p.dump() for p in points] for k, points in r.weight_curves.items()}}
           if r.weight_curves else {})})
    comp = r.compute
    exp = journal.accept(NewExperiment(
        title=title,
        model=ModelInfo(**model.info.dump()),
        images=[NewImage(run.image(c), seed=c.seed, prompt=c.prompt, score=c.score,
                         animation=run.folder / c.animation if c.animation else None) for c in chosen],
        prompt=spec.prompt,
        negative_prompt=spec.negative,
        keywords=spec.keywords,
        terms=spec.terms or [spec.base or ""],
        grid=grid,
        params=params,
        parent=r.params.parent,
        compute=Compute(comp.device, comp.seconds, comp.energy_wh, comp.co2_g, comp.threads) if comp.dump() else None,
    ), allow_title_overlap=allow_title_overlap)
    run.accepted.append(exp.number)
    return exp


def _one_model(run: Run, chosen: list[CellRecord]) -> ModelRecord:
    """The model that made ``chosen`` (a model axis's, or the run's own); RunError where they come from several, so
    that each experiment credits the one model that made it (and reruns with it)."""
    models = run.record.models or {}
    names = list(dict.fromkeys(c.model for c in chosen if c.model in models))
    if len(names) > 1:
        picks = "; ".join(f"{option('pick')} {','.join(str(c.index) for c in chosen if c.model == name)} "
                          f"({models[name].info.id})"
                          for name in names)
        raise RunError(f"accept the cells of each model as an experiment of its own: {picks}")
    return models[names[0]] if names else run.record.model


class AlreadyAccepted(RunError):
    """The run was accepted before: accepting it again makes a second experiment of the same images."""

    def __init__(self, run_id: str, numbers: list[int]):
        self.numbers = numbers
        super().__init__(f"run {run_id} was already accepted as " + ", ".join(f"#{n}" for n in numbers)
                         + f"; pass {option('again')} to make another experiment of it")
