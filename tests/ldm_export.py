"""Test support: a diffusers pipeline written in the original LDM/SGM ("A1111 / ComfyUI single file") key layout.

The inverse of what diffusers 0.42.1 applies on load in diffusers/loaders/single_file_utils.py:
  convert_ldm_unet_checkpoint   (l.1216)  <- unet_to_ldm
  convert_ldm_vae_checkpoint    (l.1510)  <- vae_to_ldm
  convert_ldm_clip_checkpoint   (l.1614)  <- clip_to_ldm          (SD1 `cond_stage_model.transformer.`,
                                                                    SDXL `conditioner.embedders.0.transformer.`)
  convert_open_clip_checkpoint  (l.1632)  <- open_clip_to_ldm     (SD2 `cond_stage_model.model.`,
                                                                    SDXL `conditioner.embedders.1.model.`,
                                                                    refiner `conditioner.embedders.0.model.`)
Unlike diffusers' scripts/convert_diffusers_to_original_{stable_diffusion,sdxl}.py (which hard-code the full-size
block counts: 4 levels x 2 resnets for SD, 3 x 2 for SDXL), the block indices here are computed from the model's
config (len(block_out_channels), layers_per_block), so tiny models map the same way as full-size ones.
Written from the key mapping alone; no code copied.
"""

from __future__ import annotations

import re

import torch

RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
          ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
            "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
            "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
            "class_embedding.linear_1": "label_emb.0.0", "class_embedding.linear_2": "label_emb.0.2"}


def _resnet(rest: str) -> str:
    for new, old in RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    raise KeyError(rest)


def unet_to_ldm(sd: dict, config) -> dict:
    """UNet2DConditionModel state dict -> `model.diffusion_model.*` keys."""
    per = config["layers_per_block"]
    assert isinstance(per, int), "per-block layers_per_block not supported"
    step = per + 1
    has_attn_up = {i: t.startswith("CrossAttn") for i, t in enumerate(config["up_block_types"])}
    out = {}
    for k, v in sd.items():
        head, _, param = k.rpartition(".")
        if head in UNET_TOP:
            new = f"{UNET_TOP[head]}.{param}"
        elif m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            b, l, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{1 + b * step + l}.0.{_resnet(rest)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", k):
            b, l, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{1 + b * step + l}.1.{rest}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", k):
            b, rest = int(m[1]), m[2]
            new = f"input_blocks.{1 + b * step + per}.0.op.{rest}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", k):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.+)", k):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            b, l, rest = int(m[1]), int(m[2]), m[3]
            new = f"output_blocks.{b * step + l}.0.{_resnet(rest)}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", k):
            b, l, rest = int(m[1]), int(m[2]), m[3]
            new = f"output_blocks.{b * step + l}.1.{rest}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", k):
            b, rest = int(m[1]), m[2]
            new = f"output_blocks.{b * step + per}.{2 if has_attn_up[b] else 1}.conv.{rest}"
        else:
            raise KeyError(f"unmapped UNet key {k}")
        out["model.diffusion_model." + new] = v
    return out


VAE_ATTN = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]


def vae_to_ldm(sd: dict, config, prefix: str = "first_stage_model.") -> dict:
    n = len(config["block_out_channels"])
    out = {}
    for k, v in sd.items():
        new = k
        if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)", k):
            new = f"encoder.down.{m[1]}.downsample.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            new = f"decoder.up.{n - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", k):
            new = f"decoder.up.{n - 1 - int(m[1])}.upsample.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", k):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", k):
            rest = m[2]
            for a, b in VAE_ATTN:
                if rest.startswith(a):
                    rest = b + rest[len(a):]
            new = f"{m[1]}.mid.attn_1.{rest}"
            if v.ndim == 2:  # LDM keeps these as 1x1 convs
                v = v[:, :, None, None]
        elif m := re.match(r"(encoder|decoder)\.conv_norm_out\.(.+)", k):
            new = f"{m[1]}.norm_out.{m[2]}"
        new = new.replace("conv_shortcut", "nin_shortcut")
        out[prefix + new] = v
    return out


def clip_to_ldm(sd: dict, prefix: str, position_ids: bool = False) -> dict:
    """transformers CLIPTextModel -> `<prefix>text_model.*` (transformers >= 5.6 drops the `text_model.` wrapper
    from CLIPTextModel's own keys, so it is added back here)."""
    out = {}
    for k, v in sd.items():
        k = k if k.startswith("text_model.") else "text_model." + k
        out[prefix + k] = v
    if position_ids:  # real SD1 checkpoints carry the (old, persistent) position_ids buffer
        n = next(v for k, v in out.items() if k.endswith("position_embedding.weight")).shape[0]
        out[prefix + "text_model.embeddings.position_ids"] = torch.arange(n)[None]
    return out


OPEN_CLIP = [("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
             ("text_model.embeddings.position_embedding.weight", "positional_embedding"),
             ("text_model.final_layer_norm.", "ln_final.")]
OPEN_CLIP_LAYER = [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"),
                   ("self_attn.out_proj", "attn.out_proj")]


def open_clip_to_ldm(sd: dict, prefix: str, hidden: int, add_projection: bool = False) -> dict:
    """transformers CLIPTextModel(WithProjection) -> open_clip layout under `prefix` (q/k/v fused into in_proj,
    text_projection transposed). add_projection: write an identity `text_projection` (SD2 files carry one that
    diffusers ignores; convert_open_clip_checkpoint reads its shape[0] as the q/k/v split size)."""
    sd = {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v for k, v in sd.items()}
    out, qkv = {}, {}
    for k, v in sd.items():
        if k == "text_projection.weight":
            out[prefix + "text_projection"] = v.T.contiguous()
            continue
        if m := re.match(r"text_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", k):
            qkv.setdefault((int(m[1]), m[3]), {})[m[2]] = v
            continue
        for a, b in OPEN_CLIP:
            if k.startswith(a):
                out[prefix + b + k[len(a):]] = v
                break
        else:
            m = re.match(r"text_model\.encoder\.layers\.(\d+)\.(.+)", k)
            if not m:
                raise KeyError(f"unmapped text encoder key {k}")
            rest = m[2]
            for a, b in OPEN_CLIP_LAYER:
                rest = rest.replace(a, b)
            out[f"{prefix}transformer.resblocks.{m[1]}.{rest}"] = v
    for (layer, kind), parts in qkv.items():
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    if add_projection:
        out[prefix + "text_projection"] = torch.eye(hidden)
        out[prefix + "logit_scale"] = torch.tensor(4.6052)
    return out


def pipeline_to_ldm(pipe, kind: str) -> dict:
    """A whole pipeline as one original-layout state dict. kind: sd1 | sd2 | xl_base | xl_refiner."""
    sd = {}
    sd.update(unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config))
    sd.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    if kind == "sd1":
        sd.update(clip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.transformer.", position_ids=True))
    elif kind == "sd2":
        sd.update(open_clip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.model.",
                                   pipe.text_encoder.config.hidden_size, add_projection=True))
    elif kind == "xl_base":
        sd.update(clip_to_ldm(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer."))
        sd.update(open_clip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model.",
                                   pipe.text_encoder_2.config.hidden_size))
    elif kind == "xl_refiner":
        sd.update(open_clip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.0.model.",
                                   pipe.text_encoder_2.config.hidden_size))
    else:
        raise ValueError(kind)
    return {k: v.detach().contiguous() for k, v in sd.items()}


def write_vae_file(vae, path, change: float = 0.0, seed: int = 0):
    """``vae``'s weights as A1111's VAE files hold them (models/VAE: the original layout, no prefix), each moved by
    ``change`` times seeded noise (0: the very weights)."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    state = vae_to_ldm(vae.state_dict(), vae.config, prefix="")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: (v + change * torch.randn(v.shape, generator=generator)).contiguous() for k, v in state.items()}, path)
    return path
