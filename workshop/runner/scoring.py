"""CLIP scoring with open_clip: how well each image matches its own prompt and the base prompt, each keyword's
measured effect — the mean change, across seeds, in how much images look like the keyword when it is in the prompt —
and a weight axis's dose-response curve: how much images look like the keyword at each of its weights.

A scorer is a built-in — ``shapes-clip`` (trained on the shapes world; shipped in ``weights/``) or ``tiny-clip`` (random
weights: plumbing tests only) — or ``ARCH:/path/to/weights.safetensors`` or ``ARCH:PRETRAINED_TAG`` (open_clip's
pretrained tags, from the local Hugging Face cache). Architectures of the built-ins are in ``clip_configs/``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from journal.text import quoted

from ..compose.emphasis import parse, plain
from ..compose.errors import SpecError
from ..compose.grid import AxisSpec
from ..errors import RunError, option
from .models import BUILTIN_CLIPS, WEIGHTS, Warm, scorer_weights
from .records import CellRecord, KeywordEffect, WeightPoint

_CONFIGS = Path(__file__).parent / "clip_configs"
_CHECKPOINTS = {"shapes-clip": WEIGHTS / "shapes-clip.safetensors"}
SCORERS = Warm()  # kept warm like pipelines


SCORE_BATCH = 64  # images per forward pass of the scorer: a large grid is scored in pieces, each on the device


@dataclass
class Scorer:
    name: str
    model: torch.nn.Module
    preprocess: object
    tokenizer: object
    device: torch.device

    def prepare(self, image: Image.Image) -> torch.Tensor:
        """An image as the scorer takes it (resized, cropped, normalised; on the host): CPU work that the run's
        background writer does for each image as it is written."""
        return self.preprocess(image.convert("RGB"))

    @torch.inference_mode()
    def image_features(self, prepared: list[torch.Tensor]) -> torch.Tensor:
        """Unit-length embeddings of prepared images (rows), computed on the device SCORE_BATCH at a time."""
        chunks = [self.model.encode_image(torch.stack(prepared[i : i + SCORE_BATCH]).to(self.device)).float()
                  for i in range(0, len(prepared), SCORE_BATCH)]
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    @torch.inference_mode()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        return torch.nn.functional.normalize(self.model.encode_text(self.tokenizer(texts).to(self.device)).float(), dim=-1)

    def similarity(self, images: list[Image.Image], texts: list[str]) -> torch.Tensor:
        """Cosine similarity of every image (rows) to every text (columns)."""
        return self.image_features([self.prepare(im) for im in images]) @ self.text_features(texts).T


def load_scorer(name: str, device: torch.device, *, allow_pickle: bool = False, allow_download: bool = False) -> Scorer:
    """A scorer by name, kept warm; a pretrained tag's weights come from the local Hugging Face cache unless
    ``allow_download``."""
    credit = name.rpartition(":")[0] + ":" + Path(name.rpartition(":")[2]).name if ":" in name else name
    return SCORERS.get(("scorer", name, str(device), allow_pickle), f"{credit} (scorer) on {device}", device,
                       lambda: _load_scorer(name, device, allow_pickle, allow_download))


def _load_scorer(name: str, device: torch.device, allow_pickle: bool, allow_download: bool) -> Scorer:
    import open_clip

    open_clip.add_model_config(_CONFIGS)
    if name in BUILTIN_CLIPS:
        arch, pretrained = name, str(_CHECKPOINTS[name]) if name in _CHECKPOINTS else None
        torch.manual_seed(0)
    else:
        arch, pretrained = scorer_weights(name, allow_pickle=allow_pickle)
        if arch not in open_clip.list_models():
            raise RunError(f"unknown CLIP architecture {quoted(arch)}: open_clip knows {', '.join(open_clip.list_models()[:8])}, …")
    tagged = name not in BUILTIN_CLIPS and pretrained is not None and not Path(pretrained).is_file()
    root = logging.getLogger()
    quiet = _Quiet()
    root.addFilter(quiet)
    try:
        with _hub(offline=not allow_download):
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained, device=device)
    except Exception as exc:  # noqa: BLE001 - missing weights offline, bad checkpoint: one line
        if tagged and not allow_download:
            raise RunError(f"the weights of CLIP scorer {quoted(name)} are not in the local Hugging Face cache; fetch them "
                           f"where there is internet, or pass {option('allow-download')}") from None
        raise RunError(f"cannot load CLIP scorer {quoted(name)}: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}") from None
    finally:
        root.removeFilter(quiet)
    model.eval()
    return Scorer(name, model, preprocess, open_clip.get_tokenizer(arch), device)


def score_cells(scorer: Scorer, cells: list[CellRecord], features: dict[int, torch.Tensor], base_prompt: str) -> None:
    """Set ``score`` (vs the cell's own prompt) and ``base_score`` (vs the base prompt) of every cell with image
    ``features`` (``Scorer.image_features``, by cell)."""
    done = [c for c in cells if c.index in features]
    if not done:
        return
    texts = list(dict.fromkeys([plain(base_prompt), *(plain(c.prompt) for c in done)]))  # words, not A1111's weights
    sims = torch.stack([features[c.index] for c in done]) @ scorer.text_features(texts).T
    for row, cell in enumerate(done):
        cell.score = round(float(sims[row, texts.index(plain(cell.prompt))]), 6)
        cell.base_score = round(float(sims[row, 0]), 6)


def keyword_effects(scorer: Scorer, cells: list[CellRecord], features: dict[int, torch.Tensor],
                    keywords: list[str]) -> dict[str, KeywordEffect]:
    """For each keyword: mean over pairs of cells that differ only by that keyword (same seed and settings) of
    sim(image with it, keyword) − sim(image without it, keyword)."""
    done = [c for c in cells if c.index in features]
    if not done or not keywords:
        return {}
    sims = torch.stack([features[c.index] for c in done]) @ scorer.text_features(keywords).T
    row = {c.index: i for i, c in enumerate(done)}
    effects = {}
    for k, keyword in enumerate(keywords):
        deltas = []
        for a in done:
            if keyword not in a.keywords:
                continue
            for b in done:
                if _differ_by(a, b, keyword):
                    deltas.append(float(sims[row[a.index], k] - sims[row[b.index], k]))
        if deltas:
            effects[keyword] = KeywordEffect(effect=round(sum(deltas) / len(deltas), 6), pairs=len(deltas))
    return effects


def weight_curves(scorer: Scorer, cells: list[CellRecord], features: dict[int, torch.Tensor],
                  axes: dict[str, str]) -> dict[str, list[WeightPoint]]:
    """For the keyword of each weight axis (``axes``: a run's, as ``AxisSpec.text`` writes them), at each of its
    weights: the mean similarity of its images to the keyword, and the mean over same-seed, same-settings pairs of
    sim(image at that weight) − sim(image at the axis's lowest weight)."""
    done = [c for c in cells if c.index in features]
    sweeps = [axis for axis in map(_axis, axes.values()) if axis is not None and axis.kind == "weight"]
    if not done or not sweeps:
        return {}
    sims = torch.stack([features[c.index] for c in done]) @ scorer.text_features([a.keyword for a in sweeps]).T
    curves = {}
    for k, axis in enumerate(sweeps):
        lowest = min(axis.values)
        at: dict[float, list[tuple[tuple, float]]] = {}
        for row, cell in enumerate(done):
            weighed = _weighed(cell.prompt, axis.keyword)
            if weighed is not None:
                at.setdefault(weighed[0], []).append((_settings(cell, weighed[1]), float(sims[row, k])))
        base = dict(at.get(lowest, []))
        points = []
        for weight in sorted(w for w in axis.values if w in at):
            deltas = [sim - base[key] for key, sim in at[weight] if key in base]
            points.append(WeightPoint(weight=weight, similarity=round(sum(s for _, s in at[weight]) / len(at[weight]), 6),
                                      effect=round(sum(deltas) / len(deltas), 6) if deltas else 0.0, pairs=len(deltas)))
        curves[axis.keyword] = points
    return curves


def _axis(text: str) -> AxisSpec | None:
    try:
        return AxisSpec.parse(text, "")
    except SpecError:  # an axis a newer or older promptism wrote
        return None


def _weighed(prompt: str, keyword: str) -> tuple[float, str] | None:
    """``keyword``'s weight in ``prompt`` (the part that is the keyword, plain or ``(keyword:w)``) and the prompt
    without it; None where the prompt lacks it."""
    parts = [p.strip() for p in prompt.split(",")]
    for i, part in enumerate(parts):
        segments = [seg for chunk in parse(part) for seg in chunk]
        if len(segments) == 1 and segments[0].text == keyword:
            return segments[0].weight, ",".join(parts[:i] + parts[i + 1:])
    return None


def _settings(cell: CellRecord, rest: str) -> tuple:
    """What decides a cell's pixels besides a keyword's weight (``rest``: its prompt without the keyword)."""
    return (rest, cell.seed, cell.negative, cell.steps, cell.guidance, cell.sampler, cell.width, cell.height,
            cell.strength, cell.model)


def _differ_by(a: CellRecord, b: CellRecord, keyword: str) -> bool:
    """Same seed and settings, and b's prompt is a's with exactly that keyword (at any weight) taken out."""
    if _settings(a, "") != _settings(b, ""):
        return False
    return _parts(a.prompt) - Counter([keyword]) == _parts(b.prompt) and keyword in _parts(a.prompt)


def _parts(prompt: str) -> Counter:
    """The prompt's comma-separated parts, in words (a weighted keyword "(kw:1.3)" is the part "kw")."""
    return Counter(p.strip() for p in plain(prompt).split(","))


@contextmanager
def _hub(offline: bool) -> Iterator[None]:
    """The Hugging Face Hub offline for a while (open_clip's pretrained tags download otherwise): the cache only."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = saved or offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


class _Quiet(logging.Filter):
    """open_clip logs to the root logger while it builds a model (random weights, unknown tags): failures become one
    RunError line instead, so nothing it logs meanwhile is printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False
