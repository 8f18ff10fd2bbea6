"""Train the built-in ``shapes`` text-to-image model on the shapes world (CPU-sized; seeded and reproducible).

    python -m workshop.shapes.train --out DIR [--size 32] [--vae-steps N] [--unet-steps N] [--batch 64] [--seed 0]

1. draw a seeded dataset of captioned scenes;
2. train a small AutoencoderKL (4× downsampling) to reconstruct them;
3. encode the dataset to latents once;
4. train a small CLIPTextModel (CLIP's real BPE tokenizer) and UNet2DConditionModel together on noise prediction,
   dropping 10 % of captions so classifier-free guidance works;
5. save a standard StableDiffusionPipeline folder (safetensors, DDIM scheduler) to DIR.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import Scene, caption, draw


def dataset(count: int, size: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    rng = random.Random(seed)
    images, captions = [], []
    for _ in range(count):
        scene = Scene.random(rng)
        images.append(np.asarray(draw(scene, size), dtype=np.float32) / 127.5 - 1)
        captions.append(caption(scene, rng))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), captions


def build(size: int):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64), layers_per_block=1,
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=16)
    unet = UNet2DConditionModel(sample_size=size // 4, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128),
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=64,
                                norm_num_groups=16, attention_head_dim=8)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=77, bos_token_id=49406,
                                        eos_token_id=49407, pad_token_id=49407))
    return vae, unet, text


def tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    from ..runner.tiny import write_clip_tokenizer

    write_clip_tokenizer(folder)
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def train(out: Path, size: int, count: int, vae_steps: int, unet_steps: int, batch: int, seed: int, log=print) -> None:
    from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionPipeline

    torch.manual_seed(seed)
    started = time.monotonic()
    images, captions = dataset(count, size, seed)
    log(f"dataset: {count} scenes in {time.monotonic() - started:.0f} s")
    vae, unet, text = build(size)
    gen = torch.Generator().manual_seed(seed)

    optimiser = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    for step in range(vae_steps):  # 2. the autoencoder
        x = images[torch.randint(0, count, (batch,), generator=gen)]
        posterior = vae.encode(x).latent_dist
        loss = F.mse_loss(vae.decode(posterior.sample(generator=gen)).sample, x) + 1e-6 * posterior.kl().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 100 == 0 or step == vae_steps - 1:
            log(f"vae {step}/{vae_steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f} s)")
    vae.eval()
    with torch.no_grad():  # 3. latents once; scaled to unit variance like SD's 0.18215
        latents = torch.cat([vae.encode(images[i:i + 256]).latent_dist.mean for i in range(0, count, 256)])
    scale = float(1 / latents.std())
    vae.register_to_config(scaling_factor=scale)
    latents = latents * scale

    with tempfile.TemporaryDirectory() as tmp:
        tok = tokenizer(Path(tmp))
    ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
    empty = tok([""], padding="max_length", max_length=tok.model_max_length, return_tensors="pt").input_ids
    noise_schedule = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    optimiser = torch.optim.AdamW([*unet.parameters(), *text.parameters()], lr=5e-4)
    for step in range(unet_steps):  # 4. text encoder + UNet
        pick = torch.randint(0, count, (batch,), generator=gen)
        z, t_ids = latents[pick], ids[pick].clone()
        t_ids[torch.rand(batch, generator=gen) < 0.1] = empty  # caption dropout, for classifier-free guidance
        noise = torch.randn(z.shape, generator=gen)
        t = torch.randint(0, 1000, (batch,), generator=gen)
        predicted = unet(noise_schedule.add_noise(z, noise, t), t, encoder_hidden_states=text(t_ids)[0]).sample
        loss = F.mse_loss(predicted, noise)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 200 == 0 or step == unet_steps - 1:
            log(f"unet {step}/{unet_steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f} s)")

    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)  # 5.
    log(f"saved to {out} after {time.monotonic() - started:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--vae-steps", type=int, default=1500)
    p.add_argument("--unet-steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    train(a.out, a.size, a.count, a.vae_steps, a.unet_steps, a.batch, a.seed, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
