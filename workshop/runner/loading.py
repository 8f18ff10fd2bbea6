"""The one way a new run, a rerun and a resume get their models: each decides from its own inputs what to load (a
``LoadPlan``: the models, the device, the speed-ups, the scorer) and ``load_plan`` loads it — resolve, pick the device,
load each model, then the scorer — said (``Loading`` events) and timed (the phases ``--verbose`` lists) the same way
for all three. Nothing is written here: a model that fails to load or a check that fails leaves no run behind. Where
a run's batches are dealt to workers elsewhere (Ray), its ``Dispatch`` loads the models there (``loader``): this
process then holds none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import events as ev
from .backends import Backend, load, resolve
from .checks import NO_SCORER
from .devices import device_name, pick_device
from .models import ModelSource
from .scoring import load_scorer
from .speedups import Speedups
from .timing import phase



@dataclass(frozen=True)
class LoadPlan:
    """What a run loads: ``model`` (a name, folder or repo id) and, for a model axis, ``others`` by their axis
    names; on ``device`` ("auto", "cpu", "cuda" …) with ``speedups``; ``clip`` its scorer (None: the model's own,
    ``NO_SCORER``: none)."""

    model: str
    device: str
    speedups: Speedups
    allow_pickle: bool = False
    allow_download: bool = False
    clip: str | None = NO_SCORER
    others: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Loaded:
    """A plan loaded: the run's own model, a model axis's others by name, the scorer (or None), the device."""

    source: ModelSource
    backend: Backend
    sources: dict[str, ModelSource]  # the others' sources by name
    others: dict[str, Backend]
    scorer: object | None
    clip: str | None  # the scorer's name, where one was loaded
    device: object  # torch.device
    where: str  # the device as shown


# A check of each model as it is loaded (its name on a model axis, None for the run's own), before the next loads
Check = Callable[[str | None, Backend], None]
# How a model is loaded: ``backends.load`` (here), or a dispatch's ``load`` (in its workers)
Loader = Callable[..., Backend]


def load_plan(plan: LoadPlan, *, on_event: Callable[[ev.Event], None] = lambda e: None,
              check_source: Callable[[ModelSource], None] = lambda source: None,
              check: Check = lambda name, backend: None, loader: Loader = load) -> Loaded:
    """Load ``plan``: RunError (or the model's own error) for a model that is not there or does not load.
    ``check_source`` sees the run's own model before any loading, ``check`` each model once it is loaded; each is
    loaded by ``loader``."""
    with phase("resolve the model"):
        source = resolve(plan.model, allow_download=plan.allow_download)
        sources = {name: resolve(text, allow_download=plan.allow_download) for name, text in plan.others.items()}
    check_source(source)
    with phase("pick the device"):  # (picking one starts CUDA)
        device = pick_device(plan.device)
        where = device_name(device)

    def loaded(what: ModelSource, name: str | None) -> Backend:
        if name is not None and what == source:  # the run's own model under its axis name
            check(name, backend)
            return backend
        on_event(ev.Loading(model=what.id, device=where))
        with phase("load the model"):
            made = loader(what, device, allow_pickle=plan.allow_pickle, speedups=plan.speedups)
        if note := getattr(made, "note", None):
            on_event(ev.Note(text=note))
        check(name, made)
        return made

    backend = loaded(source, None)
    others = {name: loaded(other, name) for name, other in sources.items()}  # one after another: the warm pool keeps them
    clip = source.clip if plan.clip is None else plan.clip
    scorer = None
    if clip and clip != NO_SCORER:
        on_event(ev.Loading(model=clip, device=where, part="scorer"))
        with phase("load the scorer"):
            scorer = load_scorer(clip, device, allow_pickle=plan.allow_pickle, allow_download=plan.allow_download)
    return Loaded(source, backend, sources, others, scorer, clip if scorer is not None else None, device, where)
