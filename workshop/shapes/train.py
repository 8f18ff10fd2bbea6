"""Train the built-in ``shapes`` text-to-image model on the shapes world (CPU-sized; seeded and reproducible).

    python -m workshop.shapes.train --out DIR [--size 32] [--vae-steps N] [--unet-steps N] [--batch 64] [--seed 0]
                                    [--vae EARLIER_DIR/vae]

1. draw a seeded dataset of captioned scenes;
2. train a small AutoencoderKL (4× downsampling) to reconstruct them, the shapes' pixels weighted ×10 — or, with
   ``--vae``, take the one an earlier run trained;
3. encode the dataset to latents once;
4. train a small CLIPTextModel (CLIP's BPE, pruned to the world's words: ``vocab.py``) and a UNet2DConditionModel
   together on noise prediction, with min-SNR loss weights, an EMA of the weights, and 10 % of captions dropped so
   classifier-free guidance works. The UNet also gets the attention-pooled caption added to its time embedding
   (``addition_embed_type="text"``), a global path that makes colours and backgrounds quick to learn; it reads only
   the text encoder's output, so the folder stays a standard StableDiffusionPipeline;
5. polish the VAE's decoder alone (the encoder, and so every latent the UNet learnt, stays as it is), with the same
   weighting;
6. save the pipeline (safetensors in float16, DDIM scheduler) to DIR — also every ``--save-every`` steps, so a long
   run can be looked at while it trains.

``--polish DIR`` runs step 5 alone on a saved pipeline (and saves it back).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..runner.tiny import write_tokenizer_files
from .dataset import Scene, caption, draw, omissions
from .vocab import compact_vocab


def dataset(count: int, size: int, seed: int) -> tuple[torch.Tensor, list[Scene]]:
    rng = random.Random(seed)
    scenes = [Scene.random(rng) for _ in range(count)]
    images = np.stack([np.asarray(draw(scene, size), dtype=np.float32) / 127.5 - 1 for scene in scenes])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), scenes


def tokenizer(folder: Path, seed: int):
    """CLIPTokenizer over the compact vocabulary of every word the captions use."""
    from transformers import CLIPTokenizer

    rng = random.Random(seed)
    words = set(re.findall(r"[a-z]+", " ".join(caption(Scene.random(rng), rng) for _ in range(5000))))
    write_tokenizer_files(folder, *compact_vocab(words))
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def build(size: int, vocab_size: int, bos: int, eos: int):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64), layers_per_block=1,
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=16)
    unet = UNet2DConditionModel(sample_size=size // 4, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128),
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=128,
                                norm_num_groups=16, attention_head_dim=8, addition_embed_type="text",
                                addition_embed_type_num_heads=4)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=77, bos_token_id=bos,
                                        eos_token_id=eos, pad_token_id=eos))
    return vae, unet, text


def train(out: Path, size: int, count: int, vae_steps: int, unet_steps: int, batch: int, seed: int, save_every: int = 0,
          unet_threads: int = 0, polish_steps: int = 1500, vae_from: Path | None = None, log=print) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionPipeline
    from diffusers.training_utils import EMAModel

    torch.manual_seed(seed)
    started = time.monotonic()
    images, scenes = dataset(count, size, seed)
    log(f"dataset: {count} scenes in {time.monotonic() - started:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tok = tokenizer(Path(tmp), seed)
    vae, unet, text = build(size, len(tok), tok.bos_token_id, tok.eos_token_id)
    if vae_from:  # 2. the autoencoder, trained by an earlier run
        vae = AutoencoderKL.from_pretrained(vae_from, torch_dtype=torch.float32)
        log(f"autoencoder from {vae_from}")
    else:
        train_autoencoder(vae, images, scenes, vae_steps, batch, torch.Generator().manual_seed(seed), log)
    gen = torch.Generator().manual_seed(seed + 1)  # the later stages have their own stream, whichever way the VAE came
    vae.eval()
    vae.requires_grad_(False)
    with torch.no_grad():  # 3. latents once; scaled to unit variance like SD's 0.18215
        latents = torch.cat([vae.encode(images[i:i + 256]).latent_dist.mean for i in range(0, count, 256)])
    scale = float(1 / latents.std())
    vae.register_to_config(scaling_factor=scale)
    latents = latents * scale

    def ids(texts):
        return tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids

    empty = ids([""])
    if unet_threads:  # e.g. when the VAE shared the CPU with shapes-clip's training and the UNet will not
        torch.set_num_threads(unet_threads)
    caption_rng = random.Random(seed + 1)
    noise_schedule = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    snr = noise_schedule.alphas_cumprod / (1 - noise_schedule.alphas_cumprod)
    params = [*unet.parameters(), *text.parameters()]
    optimiser = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1e-3, total_steps=unet_steps, pct_start=0.03)
    ema = EMAModel(params, decay=0.999, use_ema_warmup=True)

    def save():
        ema.store(params)
        ema.copy_to(params)
        scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                  set_alpha_to_one=False, steps_offset=1)
        pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
        pipe.to(torch.float32)
        ema.restore(params)

    for step in range(unet_steps):  # 4. text encoder + UNet
        pick = torch.randint(0, count, (batch,), generator=gen).tolist()
        t_ids = ids([caption(scenes[i], caption_rng, omissions(caption_rng, size=0.4, colour=0.1, count=0.1)) for i in pick])
        t_ids[torch.rand(batch, generator=gen) < 0.1] = empty  # caption dropout, for classifier-free guidance
        z = latents[pick]
        noise = torch.randn(z.shape, generator=gen)
        t = torch.randint(0, 1000, (batch,), generator=gen)
        predicted = unet(noise_schedule.add_noise(z, noise, t), t, encoder_hidden_states=text(t_ids)[0]).sample
        weight = snr[t].clamp(max=5.0) / snr[t]  # min-SNR-5: no step spends the loss on near-noiseless timesteps
        loss = (weight * F.mse_loss(predicted, noise, reduction="none").mean(dim=(1, 2, 3))).mean()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        ema.step(params)
        if step % 200 == 0 or step == unet_steps - 1:
            log(f"unet {step}/{unet_steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f} s)")
        if save_every and step and step % save_every == 0:
            save()
            log(f"saved a checkpoint at step {step}")
    polish_decoder(vae, images, scenes, polish_steps, batch, gen, log)  # 5.
    save()  # 6.
    log(f"saved to {out} after {time.monotonic() - started:.0f} s")


def train_autoencoder(vae, images: torch.Tensor, scenes: list[Scene], steps: int, batch: int, gen: torch.Generator,
                      log=print) -> None:
    """Step 2: reconstruct the scenes through sampled latents (with a light KL penalty)."""
    def reconstruct(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        posterior = vae.encode(x).latent_dist
        return vae.decode(posterior.sample(generator=gen)).sample, 1e-6 * posterior.kl().mean()

    _fit(vae.parameters(), reconstruct, images, scenes, steps, batch, gen, "vae", log)


def polish_decoder(vae, images: torch.Tensor, scenes: list[Scene], steps: int, batch: int, gen: torch.Generator,
                   log=print) -> None:
    """Train the decoder alone on the frozen encoder's latents."""
    decoder = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    vae.requires_grad_(False)
    for p in decoder:
        p.requires_grad_(True)

    def reconstruct(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
        return vae.decode(z).sample, 0.0

    _fit(decoder, reconstruct, images, scenes, steps, batch, gen, "polish", log)
    vae.requires_grad_(False)


def _fit(parameters, reconstruct, images: torch.Tensor, scenes: list[Scene], steps: int, batch: int,
         gen: torch.Generator, name: str, log) -> None:
    """AdamW (lr 1e-3) on random batches: the reconstruction error with the shapes' pixels weighted ×10, plus the
    penalty ``reconstruct`` returns beside its output."""
    backgrounds = _backgrounds(scenes)
    optimiser = torch.optim.AdamW(parameters, lr=1e-3)
    started = time.monotonic()
    for step in range(steps):
        pick = torch.randint(0, len(images), (batch,), generator=gen)
        x = images[pick]
        y, penalty = reconstruct(x)
        loss = (_shape_weight(x, backgrounds[pick]) * (y - x) ** 2).mean() + penalty
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"{name} {step}/{steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f} s)")


def _backgrounds(scenes: list[Scene]) -> torch.Tensor:
    """Each scene's background colour, in the images' [-1, 1] scale, shaped to broadcast over its pixels."""
    from .dataset import COLOURS

    return torch.tensor([COLOURS[s.background] for s in scenes], dtype=torch.float32)[:, :, None, None] / 127.5 - 1


def _shape_weight(x: torch.Tensor, backgrounds: torch.Tensor) -> torch.Tensor:
    """×10 on pixels that are not background: whole-image MSE is mostly background and leaves the shapes muddy."""
    return 1 + 9 * ((x - backgrounds).abs().amax(dim=1, keepdim=True) > 0.1).float()


def polish(folder: Path, count: int, size: int, steps: int, batch: int, seed: int, log=print) -> None:
    """Step 5 alone, on a saved pipeline folder (which gets the polished decoder)."""
    from diffusers import AutoencoderKL

    images, scenes = dataset(count, size, seed)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32)
    polish_decoder(vae, images, scenes, steps, batch, torch.Generator().manual_seed(seed + 2), log)
    vae.to(torch.float16).save_pretrained(folder / "vae", safe_serialization=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--vae-steps", type=int, default=3000)
    p.add_argument("--vae", type=Path, metavar="DIR", help="start from this trained autoencoder (an earlier run's DIR/vae)")
    p.add_argument("--unet-steps", type=int, default=5000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=0, help="also save the pipeline every N UNet steps")
    p.add_argument("--unet-threads", type=int, default=0, help="CPU threads from the UNet stage on (default: unchanged)")
    p.add_argument("--polish-steps", type=int, default=1500)
    p.add_argument("--polish", type=Path, metavar="DIR", help="only polish the decoder of the pipeline saved in DIR")
    a = p.parse_args()
    log = lambda m: print(m, flush=True)  # noqa: E731
    if not (a.polish or a.out):
        p.error("give --out DIR to train, or --polish DIR to polish a saved pipeline's decoder")
    for option, vae in (("--vae", a.vae), ("--polish", a.polish and a.polish / "vae")):
        if vae and not (vae / "config.json").is_file():
            p.error(f"{option}: {vae} holds no saved autoencoder (no config.json); give a folder this script wrote")
    if a.polish:
        polish(a.polish, a.count, a.size, a.polish_steps, a.batch, a.seed, log)
    else:
        train(a.out, a.size, a.count, a.vae_steps, a.unet_steps, a.batch, a.seed, a.save_every, a.unet_threads,
              a.polish_steps, a.vae, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
