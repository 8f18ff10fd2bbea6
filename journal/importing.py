"""Turning images made elsewhere into a NewExperiment: embedded generation metadata first, explicit values over it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import InvalidInput
from .images import open_image
from .metadata import GenerationInfo, read_generation_info
from .model import ModelInfo, NewExperiment, NewImage


@dataclass(frozen=True)
class Overrides:
    """Values the user gave; each one wins over what the images' metadata says."""

    model: str | None = None
    seed: int | None = None
    prompt: str | None = None
    negative_prompt: str | None = None


def experiment_from_images(paths: Sequence[Path], title: str, given: Overrides = Overrides()) -> NewExperiment:
    if not paths:
        raise InvalidInput("name at least one image to import")
    infos = [read_generation_info(open_image(Path(path))) for path in paths]
    first = next((i for i in infos if i.source), GenerationInfo())
    model_id = given.model or next((i.model for i in infos if i.model), None)
    if not model_id:
        raise InvalidInput(f"{paths[0]} does not say which model made it; pass --model NAME (the model is always credited)")
    model_hash = None if given.model else next((i.model_hash for i in infos if i.model_hash), None)
    images = [
        NewImage(path=Path(path), seed=given.seed if given.seed is not None else info.seed,
                 prompt=given.prompt if given.prompt is not None else info.prompt)
        for path, info in zip(paths, infos)
    ]
    params = dict(first.params)
    if first.source:
        params["imported_from"] = first.source
    return NewExperiment(
        title=title,
        model=ModelInfo(id=model_id, hash=model_hash),
        images=images,
        prompt=given.prompt if given.prompt is not None else (first.prompt or ""),
        negative_prompt=given.negative_prompt if given.negative_prompt is not None else (first.negative_prompt or ""),
        params=params,
    )
