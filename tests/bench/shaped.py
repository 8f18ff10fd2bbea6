"""Random-weight pipelines shaped like Stable Diffusion 1.5 and SDXL, for GPU benchmarks: each component built from
the real model's architecture (so a GPU does the work a real checkpoint makes it do, at its parameter count),
seeded, and saved as an fp16 safetensors diffusers folder that `promptism generate --model FOLDER` loads. Their
``small`` variants keep every block type, the conditioning and the scheduler but shrink the widths and depths, so the
same path (build, save, tokenizer, scheduler, model_index, load, generate) runs in a second on a CPU.

The scripts ``sd15_shaped.py`` and ``sdxl_shaped.py`` beside this file are its command lines.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

# SD 1.x / SDXL training noise schedule
_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
_CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
               max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
               bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)


@dataclass(frozen=True)
class Shape:
    """One pipeline's architecture: each component's constructor arguments."""

    name: str
    pipeline: str  # the diffusers pipeline class
    scheduler: str  # the diffusers scheduler class
    scheduler_config: dict
    unet: dict  # UNet2DConditionModel(**unet)
    text_encoder: dict  # CLIPTextConfig(**text_encoder) for CLIPTextModel
    vae: dict  # AutoencoderKL(**vae)
    text_encoder_2: dict | None = None  # CLIPTextConfig for SDXL's second encoder, a CLIPTextModelWithProjection

    def overridden(self, name: str, **components: dict) -> "Shape":
        """This shape with some constructor arguments of some components replaced (e.g. ``unet={...}``)."""
        merged = {key: {**getattr(self, key), **value} for key, value in components.items()}
        return replace(self, name=name, **merged)

    @property
    def native_size(self) -> int:
        """The side of the images it makes by default: latent size × the VAE's downscaling."""
        return self.unet["sample_size"] * 2 ** (len(self.vae["block_out_channels"]) - 1)


SD15 = Shape(
    name="sd15", pipeline="StableDiffusionPipeline", scheduler="PNDMScheduler",
    scheduler_config=dict(**_BETAS, set_alpha_to_one=False, skip_prk_steps=True),
    unet=dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8),  # diffusers' default blocks: SD 1.x's
    text_encoder=_CLIP_L,
    vae=dict(**_VAE, sample_size=512, scaling_factor=0.18215),
)

SDXL = Shape(
    name="sdxl", pipeline="StableDiffusionXLPipeline", scheduler="EulerDiscreteScheduler",
    scheduler_config=dict(**_BETAS, interpolation_type="linear", timestep_spacing="leading", prediction_type="epsilon"),
    unet=dict(sample_size=128, block_out_channels=(320, 640, 1280),
              down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
              transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
              use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
              projection_class_embeddings_input_dim=2816),  # 6 time ids × 256 + the pooled 1280
    text_encoder=_CLIP_L,
    # SDXL's VAE; force_upcast off as with the fp16-safe VAE most SDXL checkpoints ship (no fp32 decode per call)
    vae=dict(**_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=False),
    text_encoder_2=dict(_CLIP_L, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                        projection_dim=1280, hidden_act="gelu"),  # OpenCLIP bigG's text tower
)

_SMALL_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
_SMALL_VAE = dict(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=8, sample_size=64)
SD15_SMALL = SD15.overridden(
    "sd15-small", text_encoder=_SMALL_TEXT, vae=_SMALL_VAE,
    unet=dict(sample_size=32, block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8,
              cross_attention_dim=32, attention_head_dim=4))
SDXL_SMALL = SDXL.overridden(
    "sdxl-small", text_encoder=_SMALL_TEXT, text_encoder_2=_SMALL_TEXT, vae=_SMALL_VAE,
    unet=dict(sample_size=32, block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8,
              transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 4), cross_attention_dim=64,
              addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32))


def modules(shape: Shape) -> dict:
    """Each model component of ``shape``, built with random weights on torch's current default device (under
    ``torch.device("meta")``: no memory, no time)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    built = {"unet": UNet2DConditionModel(**shape.unet), "text_encoder": CLIPTextModel(CLIPTextConfig(**shape.text_encoder)),
             "vae": AutoencoderKL(**shape.vae)}
    if shape.text_encoder_2 is not None:
        built["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(**shape.text_encoder_2))
    return built


def parameter_counts(shape: Shape) -> dict[str, int]:
    """Each component's parameter count, from a build on the meta device."""
    import torch

    with torch.device("meta"):
        return {name: count(module) for name, module in modules(shape).items()}


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(shape: Shape, out: Path, *, device: str = "auto", seed: int = 0) -> dict[str, int]:
    """Build ``shape`` with random weights (seeded with ``seed``) on ``device`` and save it to ``out`` as an fp16
    safetensors diffusers folder; each component's parameter count."""
    import diffusers
    import torch
    from transformers import CLIPTokenizer

    from workshop.runner.devices import pick_device
    from workshop.runner.models import quiet_libraries
    from workshop.runner.tiny import write_clip_tokenizer

    quiet_libraries()
    torch.manual_seed(seed)
    with torch.device(pick_device(device)):
        parts = modules(shape)
    counts = {name: count(module) for name, module in parts.items()}
    parts = {name: module.to(torch.float16) for name, module in parts.items()}
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(Path(tmp))
        files = str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt")
        parts["tokenizer"] = CLIPTokenizer(*files, model_max_length=77)
        if shape.text_encoder_2 is not None:  # SDXL's second tokenizer pads with "!"
            parts["tokenizer_2"] = CLIPTokenizer(*files, model_max_length=77, pad_token="!")
    parts["scheduler"] = getattr(diffusers, shape.scheduler)(**shape.scheduler_config)
    if shape.text_encoder_2 is None:
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = getattr(diffusers, shape.pipeline)(**parts)
    pipe.save_pretrained(out, safe_serialization=True)
    return counts


def cli(full: Shape, small: Shape, doc: str) -> int:
    """The command line of a shaped-pipeline script: ``OUT [--device] [--seed] [--small]``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (a diffusers pipeline folder)")
    parser.add_argument("--device", default="auto", help="where to build the weights: auto (the GPU if there is one), cpu, cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help=f"the shrunk variant ({small.name}): every block type, tiny widths")
    args = parser.parse_args()
    shape = small if args.small else full
    start = time.perf_counter()
    counts = build(shape, args.out, device=args.device, seed=args.seed)
    for name, value in counts.items():
        print(f"  {name:<15} {value / 1e6:10.2f} M parameters")
    print(f"  {'total':<15} {sum(counts.values()) / 1e6:10.2f} M parameters")
    print(f"{shape.name} ({shape.native_size}×{shape.native_size}) written to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0
