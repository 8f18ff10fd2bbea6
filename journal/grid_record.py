"""An experiment's grid record: what the run it was accepted from made — the cells with the settings each was made
with, the batches, the picked cells, the keyword effects — written by ``accept`` and read by ``rerun``, ``show``,
the composer's "load settings" and the grid screen. Private as the prompt is (the cells hold their prompts): it is
left out of every public view. An imported experiment has none.

Pydantic models that keep what they do not know (a newer promptism's fields survive a rewrite) and write back exactly
the keys they were given, so a document reads and writes the same bytes. A run's manifest uses the same cell and
effect records (``workshop.runner.records``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    def dump(self) -> dict:
        """The JSON form, without the fields that have no value."""
        return self.model_dump(mode="json", exclude_none=True)


class CellRecord(Record):
    """One cell: what decides its pixels, where it sits in the grid, and once made its file and scores."""

    index: int
    prompt: str = ""
    negative: str = ""
    seed: int = 0
    row: int = 0
    col: int = 0
    subgrid: int = 0
    keywords: list[str] = Field(default_factory=list)
    labels: dict[str, list[dict]] = Field(default_factory=dict)
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None  # the settings an axis gave the cell (None: the run's own)
    width: int | None = None
    height: int | None = None
    strength: float | None = None
    weight: float | None = None  # a weight axis's weight of its keyword (with two weight axes, the last one's)
    model: str | None = None  # as the model axis named it (one of the run's models)
    file: str | None = None  # the PNG in the run folder, once made
    animation: str | None = None  # a CLIP-guided run's GIF beside it
    steps_done: int | None = None  # a CLIP-guided image kept from a cancel: the steps it had
    score: float | None = None
    base_score: float | None = None


class KeywordEffect(Record):
    effect: float
    pairs: int


class WeightPoint(Record):
    """A keyword at one weight of a weight axis: the mean CLIP similarity of its images to the keyword, and the mean
    change from the lowest weight's image of the same seed and settings (over ``pairs`` pairs)."""

    weight: float
    effect: float
    similarity: float
    pairs: int


SETTINGS = ("steps", "guidance", "sampler", "width", "height", "strength", "weight")  # an image's own, beside its seed


class ImageSettings(BaseModel):
    """What one image of an experiment was made with: its cell's own settings (an axis's), else the run's. Public:
    no prompt, no keyword."""

    model_config = ConfigDict(defer_build=True)

    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None  # the A1111 name; None: the model's own scheduler
    width: int | None = None
    height: int | None = None
    strength: float | None = None
    weight: float | None = None  # a weight axis's weight of its keyword
    model: str | None = None  # the credited model

    def line(self, keys: Sequence[str] = SETTINGS) -> str:
        """``steps 8 · guidance 5 · 64×64`` — those of ``keys`` it has (width and height as one size)."""
        return " · ".join(_SHOWN[k].format(getattr(self, k), self.height) for k in keys
                          if k in _SHOWN and getattr(self, k) is not None)


_SHOWN = {"steps": "steps {}", "guidance": "guidance {:g}", "sampler": "sampler {}", "width": "{}×{}",
          "strength": "strength {:g}", "weight": "weight {:g}"}  # (height goes with width)


def varying(settings: Sequence[ImageSettings]) -> list[str]:
    """The settings that differ between the images (an axis grid's): shown per image, not as the experiment's."""
    return [key for key in SETTINGS if len({getattr(s, key) for s in settings}) > 1]


def per_image_names(keys: Sequence[str]) -> list[str]:
    """``varying``'s keys as a person names them (width and height: size)."""
    return list(dict.fromkeys("size" if k in ("width", "height") else k for k in keys))


class GridRecord(Record):
    """The private record of the grid an experiment was accepted from."""

    run: str | None = None  # the run it was accepted from
    mode: str = "plain"
    base: str | None = None
    model_source: str | None = None  # what rerun resolves: a local model's folder (private), a CLIP-guided name
    axes: dict[str, str] = Field(default_factory=dict)
    seeds: list[int] | None = None
    cells: list[CellRecord] | None = None  # the run's cells (those its batches made)
    layout: list[list[int]] | None = None  # its batches, by cell index
    picked: list[int] | None = None  # the cells that became the experiment's images, in their order
    effects: dict[str, KeywordEffect] | None = None
    weight_curves: dict[str, list[WeightPoint]] | None = None

    def to_doc(self) -> dict:
        """The document form: the keys it was made with (a document reads and writes the same). Its values are JSON's
        already; a NaN stays a NaN, for the journal to refuse (JSON mode would write it as null)."""
        return self.model_dump(exclude_unset=True)

    @property
    def rerunnable(self) -> bool:
        """Whether the run's cells and batches are recorded (an experiment accepted from a promptism run)."""
        return self.cells is not None and self.picked is not None and self.layout is not None

    def picked_cells(self) -> list[CellRecord]:
        """The cells of the experiment's images, in their order."""
        by_index = {c.index: c for c in self.cells or []}
        return [by_index[i] for i in self.picked or [] if i in by_index]

    def image_settings(self, params: dict, model: str) -> list[ImageSettings]:
        """Each image's settings: its cell's own (an axis's), else the run's ``params`` — so an X/Y grid of steps ×
        guidance shows each image's steps and guidance, not the run's defaults."""
        return [run_settings(params, c.seed, model).model_copy(update={
            key: value for key in SETTINGS if (value := getattr(c, key)) is not None}) for c in self.picked_cells()]


def run_settings(params: dict, seed: int | None, model: str) -> ImageSettings:
    """An image's settings as its experiment's (flat) parameters record them."""
    def value(key: str, kind: type):
        found = params.get(key)
        if isinstance(found, bool):
            return None
        return found if isinstance(found, kind) or kind is float and isinstance(found, int) else None

    return ImageSettings(seed=seed, steps=value("steps", int), guidance=value("guidance", float),
                         sampler=value("sampler", str), width=value("width", int), height=value("height", int),
                         strength=value("strength", float), model=model)
