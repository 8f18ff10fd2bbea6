"""Test support: a small FLUX.1 pipeline, and it written as the single files Black Forest Labs and ComfyUI ship — the
original key layout diffusers 0.42.1 reads in diffusers/loaders/single_file_utils.py:
  convert_flux_transformer_checkpoint_to_diffusers  <- transformer_to_flux (`model.diffusion_model.` keys; a
                                                       transformer-only file, flux1-dev.safetensors, has them bare)
  convert_ldm_vae_checkpoint                        <- ldm_export.vae_to_ldm under `vae.` (ComfyUI's Flux prefix)
  create_diffusers_clip_model_from_ldm (clip_sd3)   <- `text_encoders.clip_l.transformer.` + transformers' own keys
  convert_sd3_t5_checkpoint_to_diffusers            <- `text_encoders.t5xxl.transformer.` + transformers' own keys
(ComfyUI's all-in-one ``flux1-dev-fp8.safetensors`` in models/checkpoints: its Flux model class saves the VAE under
``vae.`` and the text encoders under ``text_encoders.``.) Written from the key mapping alone; no code copied.

diffusers' Flux conversion splits a single block's fused projection at a width of 3072 (FLUX.1's), so the smallest
Flux it converts is 3072 wide: one double block and one single block, about 530M parameters (2 GB in float32)."""

from __future__ import annotations

from pathlib import Path

import torch

from ldm_export import vae_to_ldm

WIDTH = 3072  # (the width diffusers 0.42's conversion takes every Flux to be)
_SAME = [("time_text_embed.timestep_embedder.linear_1.", "time_in.in_layer."),
         ("time_text_embed.timestep_embedder.linear_2.", "time_in.out_layer."),
         ("time_text_embed.text_embedder.linear_1.", "vector_in.in_layer."),
         ("time_text_embed.text_embedder.linear_2.", "vector_in.out_layer."),
         ("time_text_embed.guidance_embedder.linear_1.", "guidance_in.in_layer."),
         ("time_text_embed.guidance_embedder.linear_2.", "guidance_in.out_layer."),
         ("context_embedder.", "txt_in."), ("x_embedder.", "img_in."), ("proj_out.", "final_layer.linear.")]
_DOUBLE = [("norm1.linear.", "img_mod.lin."), ("norm1_context.linear.", "txt_mod.lin."),
           ("attn.norm_q.weight", "img_attn.norm.query_norm.scale"), ("attn.norm_k.weight", "img_attn.norm.key_norm.scale"),
           ("attn.norm_added_q.weight", "txt_attn.norm.query_norm.scale"),
           ("attn.norm_added_k.weight", "txt_attn.norm.key_norm.scale"),
           ("ff.net.0.proj.", "img_mlp.0."), ("ff.net.2.", "img_mlp.2."), ("ff_context.net.0.proj.", "txt_mlp.0."),
           ("ff_context.net.2.", "txt_mlp.2."), ("attn.to_out.0.", "img_attn.proj."), ("attn.to_add_out.", "txt_attn.proj.")]
_SINGLE = [("norm.linear.", "modulation.lin."), ("attn.norm_q.weight", "norm.query_norm.scale"),
           ("attn.norm_k.weight", "norm.key_norm.scale"), ("proj_out.", "linear2.")]
_FUSED = {"double_blocks": {"img_attn.qkv.": ("attn.to_q.", "attn.to_k.", "attn.to_v."),
                            "txt_attn.qkv.": ("attn.add_q_proj.", "attn.add_k_proj.", "attn.add_v_proj.")},
          "single_blocks": {"linear1.": ("attn.to_q.", "attn.to_k.", "attn.to_v.", "proj_mlp.")}}


def _swap(weight: torch.Tensor) -> torch.Tensor:
    """AdaLayerNormContinuous's halves in the other order (diffusers: scale, shift; the original: shift, scale)."""
    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _renamed(rest: str, table) -> str:
    return next(old + rest[len(new):] for new, old in table if rest.startswith(new))


def transformer_to_flux(sd: dict, prefix: str = "model.diffusion_model.") -> dict:
    """FluxTransformer2DModel state dict -> the original FLUX.1 keys under ``prefix``."""
    out: dict = {}
    for key, value in sd.items():
        if key.startswith("norm_out.linear."):
            out["final_layer.adaLN_modulation.1." + key.rsplit(".", 1)[1]] = _swap(value)
        elif key.startswith(("transformer_blocks.", "single_transformer_blocks.")):
            kind, index, rest = key.split(".", 2)
            block = "double_blocks" if kind == "transformer_blocks" else "single_blocks"
            if not any(rest.startswith(part) for parts in _FUSED[block].values() for part in parts):
                out[f"{block}.{index}.{_renamed(rest, _DOUBLE if block == 'double_blocks' else _SINGLE)}"] = value
        else:
            out[_renamed(key, _SAME)] = value
    blocks = {tuple(key.split(".")[:2]) for key in sd if key.startswith(("transformer_blocks.", "single_transformer_blocks."))}
    for kind, index in blocks:
        block = "double_blocks" if kind == "transformer_blocks" else "single_blocks"
        for fused, parts in _FUSED[block].items():
            for end in ("weight", "bias"):
                out[f"{block}.{index}.{fused}{end}"] = torch.cat([sd[f"{kind}.{index}.{part}{end}"] for part in parts])
    return {prefix + k: v for k, v in out.items()}


def pipeline_to_flux(pipe, *, vae: bool = True, clip: bool = True, t5: bool = True,
                     prefix: str = "model.diffusion_model.") -> dict:
    """A FluxPipeline as one single-file state dict: the transformer, and the VAE and text encoders where asked
    (ComfyUI's all-in-one checkpoints have all three; a models/unet file none, its keys bare: ``prefix=""``)."""
    sd = transformer_to_flux(pipe.transformer.state_dict(), prefix)
    if vae:
        sd.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config, prefix="vae."))
    if clip:
        sd.update({"text_encoders.clip_l.transformer." + ("" if k.startswith("text_model.") else "text_model.") + k: v
                   for k, v in pipe.text_encoder.state_dict().items()})  # (transformers 5.6+ flattened CLIPTextModel)
    if t5:
        sd.update({"text_encoders.t5xxl.transformer." + k: v for k, v in pipe.text_encoder_2.state_dict().items()})
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}  # (T5's tied embeddings: two tensors on disk)


def tiny_flux(folder: Path, *, guidance: bool = True):
    """A small random-weight FluxPipeline (FLUX.1-dev's kind with ``guidance``, schnell's without; 64×64 native,
    built under a fixed seed): 3072 wide, one double and one single block; a tiny CLIP-L, T5 and 16-channel VAE.
    Saved as a diffusers folder at ``folder`` (T5's tokenizer a few words: sd3_export.t5_tokenizer)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    from sd3_export import t5_tokenizer
    from workshop.runner.tiny import write_clip_tokenizer

    write_clip_tokenizer(folder / "_clip")
    clip_tokenizer = CLIPTokenizer(str(folder / "_clip" / "vocab.json"), str(folder / "_clip" / "merges.txt"),
                                   model_max_length=77)
    t5_tok = t5_tokenizer(folder / "_t5")
    torch.manual_seed(0)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=4, projection_dim=32, bos_token_id=49406,
                                        eos_token_id=49407, pad_token_id=0))
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2,
                                 feed_forward_proj="gated-gelu", is_encoder_decoder=False))
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                         attention_head_dim=128, num_attention_heads=WIDTH // 128, joint_attention_dim=32,
                                         pooled_projection_dim=32, guidance_embeds=guidance, axes_dims_rope=(16, 56, 56))
    with torch.no_grad():  # (diffusers' init leaves the output layers zero: the picture would not depend on a thing)
        for name, p in transformer.named_parameters():
            if torch.count_nonzero(p) == 0 and p.ndim > 1:
                p.normal_(0, 0.02)
    vae = AutoencoderKL(latent_channels=16, norm_num_groups=8, block_out_channels=(16, 16, 32, 32), layers_per_block=1,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611, shift_factor=0.1159)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxPipeline(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=clip,
                        tokenizer=clip_tokenizer, text_encoder_2=t5, tokenizer_2=t5_tok)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return pipe
