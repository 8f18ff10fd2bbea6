"""The built-in ``tiny`` model: a random-weight Stable Diffusion pipeline built from explicit configs, for tests and
offline smoke runs. It draws noise — it proves the plumbing, not the art.

Built once under ``torch.manual_seed(0)`` (so every machine builds the same weights), saved as a standard diffusers
folder with safetensors, then loaded through the same code path as any local model. Its tokenizer is CLIP's real
BPE, written from the vocabulary open_clip ships, so prompts tokenize exactly as for Stable Diffusion.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..compose.tokens import clip_vocab
from ..paths import made_once

TINY_VERSION = "tiny-v1"
NATIVE_SIZE = 64
DEFAULT_STEPS = 4


def ensure_tiny(cache: Path) -> Path:
    """The tiny pipeline's folder, building it on first use (atomically: concurrent builders are safe)."""
    return made_once(cache / "models" / TINY_VERSION, _build)


def write_clip_tokenizer(folder: Path) -> None:
    """vocab.json + merges.txt for transformers' CLIPTokenizer: CLIP's real BPE, from open_clip's bundled merges."""
    write_tokenizer_files(folder, *clip_vocab())


def write_tokenizer_files(folder: Path, vocab: list[str], merges: list[str]) -> None:
    """vocab.json + merges.txt, the files transformers' CLIPTokenizer reads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def _build(folder: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from .models import quiet_libraries

    quiet_libraries()

    write_clip_tokenizer(folder / "_tokenizer")
    tokenizer = CLIPTokenizer(str(folder / "_tokenizer" / "vocab.json"), str(folder / "_tokenizer" / "merges.txt"), model_max_length=77)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=NATIVE_SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=5, num_attention_heads=4,
        layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(folder / "_tokenizer")
