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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from journal import Compute, Experiment, Journal, ModelInfo, NewExperiment, NewImage
from journal.atomic import write_atomic
from journal.images import clean_gif, clean_png
from journal.lock import pid_alive
from journal.text import quoted

from .errors import RunError

MANIFEST = "manifest.json"


def runs_dir(journal: Journal) -> Path:
    return journal.scratch / "runs"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclass
class Run:
    folder: Path
    manifest: dict
    accepted: list[int] = field(default_factory=list)  # the experiments made from it, as the journal records them

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def state(self) -> str:
        """running, finished, cancelled or failed — and ``interrupted`` for a run whose process died (recorded as
        such once it is settled: see ``session.settle``)."""
        state = self.manifest["state"]
        pid = self.manifest.get("pid")
        if state == "running" and not (isinstance(pid, int) and pid_alive(pid)):
            return "interrupted"
        return state

    @property
    def done(self) -> list[dict]:
        return [c for c in self.manifest["cells"] if c.get("file")]

    def image(self, cell: dict) -> Path:
        return self.folder / cell["file"]

    @classmethod
    def create(cls, journal: Journal, manifest: dict) -> "Run":
        folder = runs_dir(journal) / manifest["id"]
        folder.mkdir(parents=True)
        run = cls(folder, {**manifest, "state": "running", "pid": os.getpid(), "created": _now(), "created_ns": time.time_ns()})
        run.save()
        return run

    def save(self) -> None:
        write_atomic(self.folder / MANIFEST, json.dumps(self.manifest, ensure_ascii=False, indent=1).encode("utf-8"))

    def add_images(self, indices: list[int], images, animations: dict[int, list] | None = None) -> None:
        """Write a finished batch: pixels-only PNGs (and GIF animations) first, then the manifest that points at them."""
        cells = self.manifest["cells"]
        for index, image in zip(indices, images):
            name = f"cell-{index:03d}-s{cells[index]['seed']}.png"
            if frames := (animations or {}).get(index):
                gif = name.removesuffix(".png") + ".gif"
                write_atomic(self.folder / gif, clean_gif(frames).data)
                cells[index]["animation"] = gif
            write_atomic(self.folder / name, clean_png(image).data)
            cells[index]["file"] = name
        self.manifest.setdefault("layout", []).append(indices)
        self.save()

    def finish(self, state: str, **extra) -> None:
        self.manifest.update(state=state, finished=_now(), **extra)
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
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and isinstance(manifest.get("id"), str):
            found.append(Run(folder, manifest, accepted.get(manifest["id"], [])))
    return sorted(found, key=lambda r: r.manifest.get("created_ns", 0), reverse=True)


def accepted_runs(journal: Journal) -> dict[str, list[int]]:
    """Run id → the numbers of the experiments accepted from it, oldest first. The journal is the one record of this
    (an accept completed by crash recovery is there, whatever happened to the run folder)."""
    found: dict[str, list[int]] = {}
    for exp in reversed(journal.search(limit=None)):
        if isinstance(run_id := (exp.grid or {}).get("run"), str):
            found.setdefault(run_id, []).append(exp.number)
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


def _model_source(model: dict) -> str | None:
    """What rerun resolves (private: it may be a local path): the folder of a local model, the full name of a
    CLIP-guided one; None where the credited id is enough."""
    return {"local": model.get("source"), "guided": model["id"]}.get(model.get("kind"))


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
        from .session import settle  # scoring needs torch: imported only for a run that needs it

        settle(run)
    done = {c["index"]: c for c in run.done}
    if not done:
        raise RunError(f"run {run.id} has no finished images to accept")
    if pick:
        missing = [i for i in pick if i not in done]
        if missing:
            raise RunError(f"cell {missing[0]} of run {run.id} has no image; finished cells: {', '.join(map(str, sorted(done)))}")
        chosen = [done[i] for i in dict.fromkeys(pick)]
    else:
        chosen = [done[i] for i in sorted(done)]
    m = run.manifest
    spec = m["spec"]
    params = {k: v for k, v in m["params"].items() if v is not None}
    grid = {"run": run.id, "mode": spec["mode"], "base": spec.get("base"), "model_source": _model_source(m["model"]), "axes": spec.get("axes", {}), "seeds": spec.get("seeds"),
            "cells": m["cells"], "layout": m.get("layout", []), "picked": [c["index"] for c in chosen],
            "effects": m.get("effects")}
    compute = m.get("compute") or {}
    exp = journal.accept(NewExperiment(
        title=title,
        model=ModelInfo(**m["model"]["info"]),
        images=[NewImage(run.image(c), seed=c["seed"], prompt=c["prompt"], score=c.get("score"),
                         animation=run.folder / c["animation"] if c.get("animation") else None) for c in chosen],
        prompt=spec["prompt"],
        negative_prompt=spec.get("negative", ""),
        keywords=spec.get("keywords", []),
        terms=spec.get("terms") or [spec.get("base") or ""],
        grid=grid,
        params=params,
        parent=m["params"].get("parent"),
        compute=Compute(compute.get("device"), compute.get("seconds"), compute.get("energy_wh"), compute.get("co2_g"),
                        compute.get("threads")) if compute else None,
    ), allow_title_overlap=allow_title_overlap)
    run.accepted.append(exp.number)
    return exp


class AlreadyAccepted(RunError):
    """The run was accepted before: accepting it again makes a second experiment of the same images."""

    def __init__(self, run_id: str, numbers: list[int]):
        self.numbers = numbers
        super().__init__(f"run {run_id} was already accepted as " + ", ".join(f"#{n}" for n in numbers)
                         + "; pass --again to make another experiment of it")
