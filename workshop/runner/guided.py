"""The CLIP-guided backend ("VQGAN+CLIP"): optimise a decoder's latent so that the decoded image, seen by one or more
open_clip models through random augmented cutouts, matches the prompt.

    model name:  vqgan-clip[:<decoder>[+<clip>…]]        default decoder shapes, default CLIP shapes-clip
    prompt:      "a red circle|pixel art:0.5|blurry:-1"   weighted parts; a negative weight pushes away

The decoder is a diffusers ``VQModel`` (a VQGAN: every step's latent is quantised to the codebook, the gradient
passes straight through; ``quantize=False`` optimises continuous codes) or ``AutoencoderKL`` (an SD VAE, or the
built-in shapes VAE): a built-in model's name (its pipeline's VAE), a component or pipeline folder, or a repo in the
local Hugging Face cache — safetensors only unless pickle is allowed, as for every model.

``GuidedPipeline.__call__`` for a batch of images, each with its own prompt and seed:
1. encode the start image (the init image, or flat grey) to a latent and add the seed's noise;
2. embed every prompt part with every CLIP;
3. each step: decode, cut out, embed; loss = Σ CLIPs Σ parts weight × spherical distance, + total variation
   + latent size; one Adam step (each image's loss is its own, so a batch gives each image its own trajectory);
4. report each step (with a way to get the current frame, for previews and animations); stop early when asked,
   returning the latest frames.
Deterministic on the CPU for a seed: its noise and its cutouts come from its own generator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from journal.text import quoted

from ..contract import GuidedSettings
from ..errors import RunError
from .models import GUIDED, GUIDED_STEPS, ModelSource

PREFIX = GUIDED
DEFAULT_DECODER = "shapes"
DEFAULT_CLIP = "shapes-clip"
DECODERS = ("VQModel", "AutoencoderKL")
START_NOISE = {"grey": 0.5, "init": 0.1}  # the seed's noise on the start latent, in units of the decoder's latent scale


@dataclass(frozen=True)
class GuidedSpec:
    decoder: str
    clips: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{PREFIX}:{self.decoder}+{'+'.join(self.clips)}"

    @property
    def credit(self) -> str:
        """The name with local paths cut to their last part (the full name stays in private records)."""
        def short(part: str) -> str:
            arch, sep, rest = part.rpartition(":")
            return f"{arch}{sep}{Path(rest).name}" if rest.startswith(("/", "~")) else part  # a path, not a repo id
        return f"{PREFIX}:{short(self.decoder)}+{'+'.join(map(short, self.clips))}"


def parse_spec(name: str) -> GuidedSpec | None:
    """The parts of a ``vqgan-clip…`` model name; None for any other name."""
    if name != PREFIX and not name.startswith(PREFIX + ":"):
        return None
    decoder, *clips = name[len(PREFIX) + 1:].split("+") if name != PREFIX else [""]
    if any(not c.strip() for c in clips):
        raise RunError(f"model {quoted(name)}: an empty CLIP name; write vqgan-clip:<decoder>+<clip>[+<clip>…]")
    return GuidedSpec(decoder.strip() or DEFAULT_DECODER, tuple(c.strip() for c in clips) or (DEFAULT_CLIP,))


_WEIGHTED = re.compile(r"^(?P<text>.*):\s*(?P<weight>[-+]?(?:\d+\.?\d*|\.\d+))\s*(?:,(?P<rest>.*))?$", re.DOTALL)


def prompt_parts(prompt: str, negative: str = "") -> list[tuple[str, float]]:
    """``"a|b:0.5|c:-1"`` → ``[("a", 1.0), ("b", 0.5), ("c", -1.0)]``. A weight is a number after a part's last colon
    (so "pixel art: a red circle" keeps its colon); keywords a grid appends after it ("c:-1, glowing") form a part of
    their own with weight 1. A negative prompt is one more part, weight −1."""
    parts = []
    for part in prompt.split("|"):
        match = _WEIGHTED.match(part)
        text, weight, rest = (match["text"], float(match["weight"]), match["rest"]) if match else (part, 1.0, None)
        parts += [(t.strip(" ,"), w) for t, w in ((text, weight), (rest or "", 1.0)) if t.strip(" ,")]
    if negative.strip():
        parts.append((negative.strip(), -1.0))
    if not any(w > 0 for _, w in parts):
        raise RunError("the prompt needs a part with a positive weight, e.g. \"a red circle|blurry:-0.5\"")
    return parts


class Decoder:
    """A VQModel or AutoencoderKL as two differentiable maps: encode(pixels in [-1, 1]) → latent → decode."""

    def __init__(self, model):
        self.model = model.eval().requires_grad_(False)
        self.kind = "vq" if type(model).__name__ == "VQModel" else "kl"
        self.factor = 2 ** (len(model.config.block_out_channels) - 1)
        self.native_size = int(model.config.sample_size if isinstance(model.config.sample_size, int) else model.config.sample_size[0])
        if self.kind == "vq":
            self.latent_scale = float(model.quantize.embedding.weight.std())
        else:
            self.latent_scale = 1 / float(model.config.scaling_factor)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.kind == "vq":
            return self.model.encode(pixels).latents
        return self.model.encode(pixels).latent_dist.mean

    def decode(self, z: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        if self.kind == "vq":
            return self.model.decode(z, force_not_quantize=not quantize).sample
        return self.model.decode(z).sample


@dataclass
class Perceptor:
    """One open_clip model, seen through differentiable cutouts."""

    name: str
    model: torch.nn.Module
    tokenizer: Callable
    size: int
    mean: torch.Tensor
    std: torch.Tensor

    def embed_images(self, pixels01: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image((pixels01 - self.mean) / self.std).float(), dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return F.normalize(self.model.encode_text(self.tokenizer(texts).to(self.mean.device)).float(), dim=-1)


class GuidedPipeline:
    """A decoder and its CLIPs; called like a pipeline, one batch at a time (see the module docstring)."""

    def __init__(self, spec: GuidedSpec, decoder: Decoder, perceptors: list[Perceptor], device: torch.device):
        self.spec = spec
        self.decoder = decoder
        self.perceptors = perceptors
        self.device = device

    @property
    def native_size(self) -> int:
        return self.decoder.native_size

    def __call__(self, prompts: list[str], negatives: list[str], seeds: list[int], *, width: int, height: int, steps: int,
                 settings: GuidedSettings, init_image: Image.Image | None = None,
                 on_step: Callable[[int, torch.Tensor, Callable[[], list[Image.Image]]], bool] = lambda *a: False
                 ) -> tuple[list[Image.Image], int]:
        """The images and the number of steps run (fewer than ``steps`` when ``on_step`` returned True to stop)."""
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        # 1. the start latent
        if init_image is None:
            start = torch.zeros(len(seeds), 3, height, width)  # flat grey, in [-1, 1]
        else:
            start = _to_tensor(init_image.convert("RGB").resize((width, height), Image.LANCZOS)).expand(len(seeds), -1, -1, -1)
        with torch.no_grad():
            z0 = self.decoder.encode(start.to(self.device))
        amount = START_NOISE["grey" if init_image is None else "init"] * self.decoder.latent_scale
        noise = torch.stack([torch.randn(z0.shape[1:], generator=g) for g in gens]).to(self.device)
        z = (z0 + amount * noise).requires_grad_(True)
        # 2. the targets: per CLIP, per image, its prompt parts' embeddings and weights
        parts = [prompt_parts(p, n) for p, n in zip(prompts, negatives)]
        targets = [[(p.embed_texts([t for t, _ in ps]), torch.tensor([w for _, w in ps], device=self.device)) for ps in parts]
                   for p in self.perceptors]
        optimiser = torch.optim.Adam([z], lr=settings.lr)
        done = 0
        for step in range(steps):  # 3. optimise
            decoded = self.decoder.decode(z, settings.quantize).add(1).div(2)
            pixels = decoded + (decoded.clamp(0, 1) - decoded).detach()  # clamped, yet saturated pixels still learn
            losses = settings.tv * _total_variation(pixels) + settings.latent * z.pow(2).mean(dim=(1, 2, 3))
            for perceptor, per_image in zip(self.perceptors, targets):
                cuts = _cutouts(pixels, perceptor.size, settings.cutouts, gens)
                embedded = perceptor.embed_images(cuts.flatten(0, 1)).view(len(seeds), settings.cutouts, -1)
                losses = losses + torch.stack([  # per image: Σ parts weight × mean distance over its cutouts
                    (weights * _spherical_distance(embedded[i][:, None], texts[None]).mean(dim=0)).sum()
                    for i, (texts, weights) in enumerate(per_image)])
            optimiser.zero_grad()
            losses.sum().backward()
            optimiser.step()
            done = step + 1
            if on_step(step, losses.detach(), lambda: self._frames(z, settings.quantize)):  # 4. report; stop when asked
                break
        return self._frames(z, settings.quantize), done

    @torch.no_grad()
    def _frames(self, z: torch.Tensor, quantize: bool) -> list[Image.Image]:
        pixels = self.decoder.decode(z.detach(), quantize).add(1).mul(127.5).clamp(0, 255).round().to(torch.uint8)
        return [Image.fromarray(a) for a in pixels.permute(0, 2, 3, 1).cpu().numpy()]


def load_guided(spec: GuidedSpec, device: torch.device, *, folder: Path | None = None, allow_pickle: bool = False,
                allow_download: bool = False) -> GuidedPipeline:
    """Load the decoder (from ``folder`` when it is already resolved) and every CLIP of ``spec``; one-line RunErrors for
    anything that cannot load."""
    import open_clip

    from .scoring import load_scorer

    folder = folder or decoder_folder(spec.decoder, allow_download=allow_download)
    decoder = Decoder(_load_decoder(spec.decoder, folder, device, allow_pickle))
    perceptors = []
    for name in spec.clips:
        scorer = load_scorer(name, device, allow_pickle=allow_pickle, allow_download=allow_download)
        cfg = open_clip.get_model_preprocess_cfg(scorer.model)
        size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
        mean, std = (torch.tensor(cfg[k], device=device).view(1, 3, 1, 1) for k in ("mean", "std"))
        scorer.model.requires_grad_(False)
        perceptors.append(Perceptor(name, scorer.model, scorer.tokenizer, size, mean, std))
    return GuidedPipeline(spec, decoder, perceptors, device)


def resolve_guided(name: str, *, allow_download: bool = False) -> ModelSource:
    """The decoder's folder; local paths in the name made absolute, so a rerun finds them from anywhere. No default
    scorer: the CLIP that steered the image would grade its own objective (pass --clip for scores)."""
    spec = parse_spec(name)
    folder = decoder_folder(spec.decoder, allow_download=allow_download)
    decoder = str(Path(spec.decoder).expanduser().resolve()) if _is_path(spec.decoder) else spec.decoder
    spec = GuidedSpec(decoder, tuple(map(_absolute_checkpoint, spec.clips)))
    return ModelSource(spec.name, "guided", folder, f"CLIP-guided (VQGAN+CLIP) · {spec.credit}", steps=GUIDED_STEPS)


def _is_path(name: str) -> bool:
    return Path(name).expanduser().exists()


def _absolute_checkpoint(clip: str) -> str:
    arch, sep, rest = clip.partition(":")
    return f"{arch}:{Path(rest).expanduser().resolve()}" if sep and _is_path(rest) else clip


def decoder_folder(name: str, *, allow_download: bool = False) -> Path:
    """The folder holding a decoder's config.json: a component folder or cached repo itself (a VQGAN or a VAE such as
    stabilityai/sd-vae-ft-mse), or a pipeline's ``vqvae``/``vae``."""
    from .models import hf_snapshot, is_repo_id, resolve

    if parse_spec(name) is not None:
        raise RunError(f"decoder {quoted(name)}: a decoder is a VQModel or AutoencoderKL, not another {PREFIX} model")
    folder = Path(name).expanduser()
    if folder.is_dir() and (folder / "config.json").exists():
        return folder.resolve()
    if not folder.exists() and is_repo_id(name):
        snapshot = hf_snapshot(name, allow_download)
        if (snapshot / "config.json").exists():  # a decoder-only repo; a pipeline repo is resolved below
            return snapshot
    try:
        pipeline = resolve(name, allow_download=allow_download).path
    except RunError as exc:
        raise RunError(f"decoder: {exc.message}", code=exc.code, field=exc.field) from None
    for sub in ("vqvae", "vae"):
        if (pipeline / sub / "config.json").exists():
            return pipeline / sub
    raise RunError(f"decoder {quoted(name)} has no vqvae/ or vae/ folder: give a VQModel or AutoencoderKL folder")


def _load_decoder(name: str, folder: Path, device: torch.device, allow_pickle: bool):
    import diffusers

    from .models import check_safetensors, quiet_libraries

    try:
        kind = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError):
        raise RunError(f"decoder {quoted(name)}: {folder / 'config.json'} is not a readable diffusers config") from None
    if kind not in DECODERS:
        raise RunError(f"decoder {quoted(name)} is a {kind or 'model of unknown type'}: use a VQModel (a VQGAN) or an "
                       "AutoencoderKL (a VAE)")
    if not allow_pickle:
        check_safetensors(folder)
    quiet_libraries()
    try:
        model = getattr(diffusers, kind).from_pretrained(folder, torch_dtype=torch.float32, use_safetensors=True if not allow_pickle else None,
                                                         local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - a missing file, a wrong-shape or corrupt checkpoint: one line
        raise RunError(f"cannot load decoder {quoted(name)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return model.to(device)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


def _cutouts(pixels: torch.Tensor, size: int, count: int, gens: list[torch.Generator]) -> torch.Tensor:
    """(batch, count, 3, size, size): random square crops of half to all of each image, resized, some mirrored, with a
    little noise — each image's from its own generator."""
    _, _, height, width = pixels.shape
    side = min(height, width)
    out = []
    for image, gen in zip(pixels, gens):
        cuts = []
        for _ in range(count):
            u = torch.rand(4, generator=gen).tolist()
            crop = max(1, int(side * (0.5 + 0.5 * u[0])))
            top, left = int(u[1] * (height - crop + 1)), int(u[2] * (width - crop + 1))
            cut = F.interpolate(image[None, :, top:top + crop, left:left + crop], size=(size, size), mode="bilinear",
                                align_corners=False)
            cuts.append(cut.flip(3) if u[3] < 0.5 else cut)
        stacked = torch.cat(cuts)
        out.append(stacked + 0.02 * torch.randn(stacked.shape, generator=gen).to(stacked.device))
    return torch.stack(out)


def _spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit vectors (the VQGAN+CLIP notebooks' loss)."""
    return (a - b).norm(dim=-1).div(2).clamp(max=1).arcsin().pow(2).mul(2)


def _total_variation(pixels: torch.Tensor) -> torch.Tensor:
    dx = (pixels[..., :, 1:] - pixels[..., :, :-1]).pow(2).mean(dim=(1, 2, 3))
    dy = (pixels[..., 1:, :] - pixels[..., :-1, :]).pow(2).mean(dim=(1, 2, 3))
    return dx + dy
