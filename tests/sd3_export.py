"""Test support: a tiny Stable Diffusion 3 pipeline, and it written as the single files Stability AI and ComfyUI ship
(``sd3_medium_incl_clips_t5xxlfp16.safetensors`` and its kin) — the original key layout diffusers 0.42.1 reads in
diffusers/loaders/single_file_utils.py:
  convert_sd3_transformer_checkpoint_to_diffusers   <- transformer_to_sd3  (`model.diffusion_model.` MMDiT keys)
  convert_ldm_vae_checkpoint                        <- ldm_export.vae_to_ldm (`first_stage_model.`)
  create_diffusers_clip_model_from_ldm (clip_sd3)   <- `text_encoders.clip_l.transformer.` + transformers' own keys
  … (open_clip_sd3)                                 <- `text_encoders.clip_g.transformer.` + transformers' own keys
  convert_sd3_t5_checkpoint_to_diffusers            <- `text_encoders.t5xxl.transformer.` + transformers' own keys
Written from the key mapping alone; no code copied. diffusers gives CLIP-L an identity text projection (the single
files carry none that it reads), so the tiny pipeline's CLIP-L has one too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ldm_export import vae_to_ldm

_SAME = [("pos_embed.pos_embed", "pos_embed"), ("pos_embed.proj.", "x_embedder.proj."),
         ("time_text_embed.timestep_embedder.linear_1.", "t_embedder.mlp.0."),
         ("time_text_embed.timestep_embedder.linear_2.", "t_embedder.mlp.2."),
         ("time_text_embed.text_embedder.linear_1.", "y_embedder.mlp.0."),
         ("time_text_embed.text_embedder.linear_2.", "y_embedder.mlp.2."),
         ("context_embedder.", "context_embedder."), ("proj_out.", "final_layer.linear.")]
_BLOCK = [("attn.to_out.0.", "x_block.attn.proj."), ("attn.to_add_out.", "context_block.attn.proj."),
          ("attn.norm_q.", "x_block.attn.ln_q."), ("attn.norm_k.", "x_block.attn.ln_k."),
          ("attn.norm_added_q.", "context_block.attn.ln_q."), ("attn.norm_added_k.", "context_block.attn.ln_k."),
          ("attn2.to_out.0.", "x_block.attn2.proj."), ("attn2.norm_q.", "x_block.attn2.ln_q."),
          ("attn2.norm_k.", "x_block.attn2.ln_k."), ("norm1.linear.", "x_block.adaLN_modulation.1."),
          ("norm1_context.linear.", "context_block.adaLN_modulation.1."), ("ff.net.0.proj.", "x_block.mlp.fc1."),
          ("ff.net.2.", "x_block.mlp.fc2."), ("ff_context.net.0.proj.", "context_block.mlp.fc1."),
          ("ff_context.net.2.", "context_block.mlp.fc2.")]
_QKV = {"attn.to_": "x_block.attn.qkv.", "attn.add_": "context_block.attn.qkv.", "attn2.to_": "x_block.attn2.qkv."}


def _swap(weight: torch.Tensor) -> torch.Tensor:
    """AdaLayerNormContinuous's halves in the other order (diffusers: scale, shift; the original: shift, scale)."""
    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def transformer_to_sd3(sd: dict, config, prefix: str = "model.diffusion_model.") -> dict:
    """SD3Transformer2DModel state dict -> the original MMDiT keys under ``prefix``."""
    last = config["num_layers"] - 1
    out: dict = {}
    qkv: dict = {}
    for key, value in sd.items():
        if key.startswith("norm_out.linear."):
            out["final_layer.adaLN_modulation.1." + key.rsplit(".", 1)[1]] = _swap(value)
            continue
        if not key.startswith("transformer_blocks."):
            new = next(old + key[len(a):] for a, old in _SAME if key.startswith(a))
            out[new] = value
            continue
        _, index, rest = key.split(".", 2)
        i = int(index)
        for start, fused in _QKV.items():  # q, k, v in one tensor, in that order
            for part in "qkv":
                head = f"{start}{part}{'_proj' if start == 'attn.add_' else ''}."
                if rest.startswith(head):
                    qkv.setdefault((i, fused + rest[len(head):]), {})[part] = value
                    break
            else:
                continue
            break
        else:
            new = next(old + rest[len(a):] for a, old in _BLOCK if rest.startswith(a))
            if i == last and rest.startswith("norm1_context."):
                value = _swap(value)
            out[f"joint_blocks.{i}.{new}"] = value
    for (i, name), parts in qkv.items():
        out[f"joint_blocks.{i}.{name}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return {prefix + k: v for k, v in out.items()}


def pipeline_to_sd3(pipe, *, clips: bool = True, t5: bool = True) -> dict:
    """A StableDiffusion3Pipeline as one single-file state dict: transformer and VAE, and its CLIPs and T5 where
    asked (Stability's files: ``sd3_medium`` has neither, ``…_incl_clips`` the CLIPs, ``…_t5xxlfp16`` all)."""
    sd = transformer_to_sd3(pipe.transformer.state_dict(), pipe.transformer.config)
    sd.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    if clips:
        sd.update({"text_encoders.clip_l.transformer." + k: v for k, v in pipe.text_encoder.state_dict().items()})
        sd.update({"text_encoders.clip_g.transformer." + k: v for k, v in pipe.text_encoder_2.state_dict().items()})
    if t5 and pipe.text_encoder_3 is not None:
        sd.update({"text_encoders.t5xxl.transformer." + k: v for k, v in pipe.text_encoder_3.state_dict().items()})
    return {k: v.detach().clone() for k, v in sd.items()}  # (T5's tied embeddings: two tensors on disk)


def t5_tokenizer(folder: Path):
    """A tiny T5TokenizerFast (a unigram vocabulary of a few words, T5's special tokens), saved in ``folder``: the
    real one is sentencepiece's 800 KB model, which no test downloads."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    words = ["a", "red", "circle", "blue", "square", "blurry", "green", "star", "on", "the"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(f"▁{w}", -1.0 - i / 10) for i, w in enumerate(words)]
    vocab += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz,"]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.normalizer = normalizers.Replace(" +", " ")
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    made = T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0)
    made.save_pretrained(str(folder))
    return T5TokenizerFast.from_pretrained(str(folder))


def tiny_sd3(folder: Path, *, t5: bool = True):
    """A tiny random-weight StableDiffusion3Pipeline (64×64 native, built under a fixed seed), saved as a diffusers
    folder at ``folder`` (with its T5, or without: ``text_encoder_3`` and ``tokenizer_3`` none)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer, T5Config, T5EncoderModel

    from workshop.runner.tiny import write_clip_tokenizer

    write_clip_tokenizer(folder / "_clip")
    clip_tokenizer = CLIPTokenizer(str(folder / "_clip" / "vocab.json"), str(folder / "_clip" / "merges.txt"),
                                   model_max_length=77, pad_token="!")
    torch.manual_seed(0)

    def clip(hidden: int) -> CLIPTextModelWithProjection:  # CLIP-L and CLIP-G differ in width, as diffusers tells them
        return CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
            num_attention_heads=4, projection_dim=hidden, bos_token_id=49406, eos_token_id=49407, pad_token_id=0))

    clip_l, clip_g = clip(32), clip(48)
    with torch.no_grad():
        clip_l.text_projection.weight.copy_(torch.eye(32))
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                                        num_attention_heads=2, caption_projection_dim=16, joint_attention_dim=96,
                                        pooled_projection_dim=80, out_channels=4, pos_embed_max_size=32)
    vae = AutoencoderKL(latent_channels=4, norm_num_groups=8, block_out_channels=(16, 32),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        use_quant_conv=False, use_post_quant_conv=False, scaling_factor=1.5305, shift_factor=0.0609)
    t5_model = t5_tok = None
    if t5:
        t5_tok = t5_tokenizer(folder / "_t5")
        t5_model = T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=96, d_kv=16, d_ff=64, num_layers=1,
                                           num_heads=2, feed_forward_proj="gated-gelu", is_encoder_decoder=False))
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
                                    text_encoder=clip_l, tokenizer=clip_tokenizer, text_encoder_2=clip_g,
                                    tokenizer_2=clip_tokenizer, text_encoder_3=t5_model, tokenizer_3=t5_tok)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return pipe
