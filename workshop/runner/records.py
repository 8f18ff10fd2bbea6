"""Typed run records: the run manifest (``manifest.json`` in every run folder) as pydantic models — the one schema the
runner writes and the CLI, the TUI and the service read.

The JSON keeps the field names manifests have always had, so old run folders still list. Unknown fields are kept
(``extra="allow"``: a newer promptism's fields survive a rewrite), missing ones take their defaults, and a field with
no value is left out (``dump``: every field that can be None defaults to None, so it reads back the same).
Torch-free: the CLI and the service import it cheaply.
"""

from __future__ import annotations

from pydantic import Field

from journal.grid_record import CellRecord, KeywordEffect, Record, WeightPoint

STATES = ("running", "finished", "cancelled", "failed", "interrupted")


class ModelInfoRecord(Record):
    """What is credited (``journal.ModelInfo``'s fields)."""

    id: str = ""
    revision: str | None = None
    hash: str | None = None
    pipeline: str | None = None
    scheduler: str | None = None


class ModelRecord(Record):
    id: str = ""  # the name it was asked for (a local folder by its full path: private, like the prompt)
    kind: str = ""  # builtin | local | hf-cache | guided
    description: str = ""
    source: str | None = None  # the folder it was loaded from
    info: ModelInfoRecord = Field(default_factory=ModelInfoRecord)

    @property
    def credited(self) -> str:
        """The name the model is credited by: its own (a local folder's or file's name), never the path it was asked
        for or loaded from."""
        return self.info.id or self.id


class SpecRecord(Record):
    """What the grid was composed from (private: prompts and keywords)."""

    mode: str = "plain"
    prompt: str = ""
    base: str | None = None
    negative: str = ""
    keywords: list[str] = Field(default_factory=list)
    terms: list[str] = Field(default_factory=list)
    seeds: list[int] | None = None
    axes: dict[str, str] = Field(default_factory=dict)


class ParamsRecord(Record):
    """The run parameters, flat as the journal keeps them; a CLIP-guided run's settings are extra fields here
    (backend, decoder, clips, lr, cutouts, tv, latent, quantize, animate_every). The speed-ups that were on are
    true; those that were off are left out (``speedups.Speedups``)."""

    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    strength: float | None = None
    init_image: str | None = None
    mask: str | None = None  # inpainting: the mask as given (masks.py), its sha256, blur, invert and fill
    mask_sha256: str | None = None
    mask_blur: int | None = None
    mask_blur_y: int | None = None  # (down, where it differs from mask_blur: across)
    mask_invert: bool | None = None
    mask_fill: str | None = None
    mask_area: str | None = None  # "masked": A1111's "only masked", with its padding (None: the whole picture)
    mask_padding: int | None = None
    init_sha256: str | None = None
    parent: int | None = None
    scheduler: str | None = None  # the diffusers class that sampled
    sampler: str | None = None  # its A1111 name, where --sampler chose it (see samplers.py); none: the model's own
    emphasis: str | None = None  # how prompts were encoded: "a1111" (emphasis_encoder.A1111Encoder); none: as before
    # it, compel's weights and one window
    clip_skip: int | None = None  # A1111's Clip skip, where it was above 1 (the last layer otherwise)
    emphasis_mode: str | None = None  # A1111's Emphasis mode where not Original: "No norm" or "Ignore"
    hires: float | None = None  # A1111's hires fix (hires.py): its scale; width and height stay the first pass's, the
    hires_steps: int | None = None  # images are hires.made_size; steps of its second pass (none: the first pass's),
    hires_strength: float | None = None  # its denoising strength
    hires_upscaler: str | None = None  # and its upscaler (A1111's name)
    sd_upscale: float | None = None  # A1111's SD upscale (sd_upscale.py): its scale, tile overlap, upscaler, tiles per
    sd_upscale_overlap: int | None = None  # pipeline call and the images' size [w, h]; width and height are the
    sd_upscale_upscaler: str | None = None  # tiles' (A1111's Size)
    sd_upscale_batch: int | None = None
    sd_upscale_size: list[int] | None = None
    loras: list[str] | None = None  # the LoRAs the prompts name, "NAME: HASH" as A1111's `Lora hashes` (12 digits)
    embeddings: list[str] | None = None  # the embeddings the prompts' words are, "NAME: HASH" (A1111's `TI hashes`)
    vae: str | None = None  # the VAE in place of the model's own, "NAME: HASH" (A1111's `VAE`, `VAE hash`; vae.py)
    tiling: bool | None = None  # A1111's Tiling (true where it was on)
    variation_seed: int | None = None  # A1111's Variation seed, the same for every image of the run …
    variation_strength: float | None = None  # … and its strength (engine.starting_noise)
    compile: bool | None = None
    channels_last: bool | None = None
    tf32: bool | None = None


class GridShape(Record):
    rows: int = 1
    cols: int = 1
    subgrids: int = 1


class ComputeRecord(Record):
    device: str | None = None  # its name, as shown
    device_type: str | None = None  # cpu | cuda | mps: where a resume runs (older runs: read from the name)
    threads: int | None = None  # torch's CPU threads on a CPU run: they decide the pixels
    seconds: float | None = None
    energy_wh: float | None = None
    co2_g: float | None = None
    co2_g_per_kwh: float | None = None

    @property
    def kind(self) -> str:
        """The device type, also for runs recorded before ``device_type`` was."""
        if self.device_type:
            return self.device_type
        name = self.device or ""
        return "cpu" if name.startswith("CPU") else "mps" if "(mps)" in name else "cuda"


class RunRecord(Record):
    """A run's manifest."""

    id: str
    state: str = "running"
    pid: int | None = None
    created: str | None = None
    created_ns: int = 0
    finished: str | None = None
    model: ModelRecord = Field(default_factory=ModelRecord)  # with a model axis: its first model
    models: dict[str, ModelRecord] | None = None  # a model axis's models, by the names the cells give
    spec: SpecRecord = Field(default_factory=SpecRecord)
    params: ParamsRecord = Field(default_factory=ParamsRecord)
    grid: GridShape = Field(default_factory=GridShape)
    cells: list[CellRecord] = Field(default_factory=list)
    planned_layout: list[list[int]] = Field(default_factory=list)  # the batches as planned
    layout: list[list[int]] = Field(default_factory=list)  # the batches as run (split by prompt length or out of memory)
    clip: str | None = None  # the scorer
    allow_pickle: bool = False  # what the scorer may load: settling or resuming the run needs it again
    compute: ComputeRecord = Field(default_factory=ComputeRecord)
    effects: dict[str, KeywordEffect] | None = None
    weight_curves: dict[str, list[WeightPoint]] | None = None  # keyword → its points, in weight order (private)
    rerun_of: int | None = None
    verified: bool | None = None
    mismatched: list[int] | None = None
    error: str | None = None

    @property
    def done(self) -> list[CellRecord]:
        return [c for c in self.cells if c.file]
