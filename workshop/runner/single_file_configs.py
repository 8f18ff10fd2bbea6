"""The diffusers configs of the model types a single-file checkpoint can be (``single_file.py``), shipped so that
loading one needs no network: the values of the Hugging Face repos diffusers itself maps each type to (SD 1.5,
SD 2.1 768-v, SD 2 512-base, SDXL base and refiner 1.0, SD 3 medium, SD 3.5 medium and large, FLUX.1 dev and
schnell), only the keys that differ from
the classes' defaults. ``write`` makes a type's config folder — these JSON files and the CLIP tokenizers'
vocabulary, written from open_clip's BPE as the tiny model's is — where ``from_single_file(config=FOLDER)`` reads
them. T5's tokenizer (SD 3's third text encoder, Flux's second) is a sentencepiece model, not shipped: ``single_file`` finds it."""

from __future__ import annotations

import json
from pathlib import Path

from .tiny import write_clip_tokenizer

_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
             "set_alpha_to_one": False, "steps_offset": 1, "clip_sample": False, "skip_prk_steps": True,
             "trained_betas": None}
_CLIP_L = {"architectures": ["CLIPTextModel"], "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
           "num_hidden_layers": 12, "projection_dim": 768, "hidden_act": "quick_gelu", "max_position_embeddings": 77,
           "vocab_size": 49408, "layer_norm_eps": 1e-5, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
           "model_type": "clip_text_model"}
_OPEN_CLIP_H = {**_CLIP_L, "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                "num_hidden_layers": 23, "projection_dim": 512, "hidden_act": "gelu"}  # its last layer is not used
_OPEN_CLIP_BIGG = {**_CLIP_L, "architectures": ["CLIPTextModelWithProjection"], "hidden_size": 1280,
                   "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280,
                   "hidden_act": "gelu"}
_VAE = {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4, "in_channels": 3,
        "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 512,
        "scaling_factor": 0.18215}
_UNET_SD1 = {"_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
             "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768,
             "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
             "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, "in_channels": 4, "out_channels": 4,
             "layers_per_block": 2, "norm_num_groups": 32, "norm_eps": 1e-5, "sample_size": 64, "flip_sin_to_cos": True,
             "freq_shift": 0, "downsample_padding": 1, "mid_block_scale_factor": 1, "center_input_sample": False}
_UNET_SD2 = {**_UNET_SD1, "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "use_linear_projection": True}
_UNET_XL = {**_UNET_SD1, "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280],
            "cross_attention_dim": 2048, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": True, "addition_embed_type": "text_time",
            "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2816, "sample_size": 128}
_TOKENIZER = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, "errors": "replace",
              "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
              "pad_token": "<|endoftext|>"}
_SD = {"_class_name": "StableDiffusionPipeline", "feature_extractor": [None, None], "image_encoder": [None, None],
       "safety_checker": [None, None], "requires_safety_checker": False, "text_encoder": ["transformers", "CLIPTextModel"],
       "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
       "vae": ["diffusers", "AutoencoderKL"]}
_XL = {"_class_name": "StableDiffusionXLPipeline", "feature_extractor": [None, None], "image_encoder": [None, None],
       "force_zeros_for_empty_prompt": True, "text_encoder": ["transformers", "CLIPTextModel"],
       "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": ["transformers", "CLIPTokenizer"],
       "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
       "vae": ["diffusers", "AutoencoderKL"]}
_CLIP_L_SD3 = {**_CLIP_L, "architectures": ["CLIPTextModelWithProjection"]}
_T5_XXL = {"architectures": ["T5EncoderModel"], "d_ff": 10240, "d_kv": 64, "d_model": 4096, "dense_act_fn": "gelu_new",
           "dropout_rate": 0.1, "feed_forward_proj": "gated-gelu", "is_encoder_decoder": True, "is_gated_act": True,
           "layer_norm_epsilon": 1e-6, "model_type": "t5", "num_decoder_layers": 24, "num_heads": 64, "num_layers": 24,
           "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32, "tie_word_embeddings": False,
           "vocab_size": 32128, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}
_VAE_SD3 = {**_VAE, "latent_channels": 16, "sample_size": 1024, "scaling_factor": 1.5305, "shift_factor": 0.0609,
            "force_upcast": True, "use_quant_conv": False, "use_post_quant_conv": False}
_MMDIT = {"_class_name": "SD3Transformer2DModel", "attention_head_dim": 64, "caption_projection_dim": 1536,
          "in_channels": 16, "joint_attention_dim": 4096, "num_attention_heads": 24, "num_layers": 24, "out_channels": 16,
          "patch_size": 2, "pooled_projection_dim": 2048, "pos_embed_max_size": 192, "sample_size": 128}
_SD3 = {"_class_name": "StableDiffusion3Pipeline", "feature_extractor": [None, None], "image_encoder": [None, None],
        "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "text_encoder_3": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "tokenizer_3": ["transformers", "T5TokenizerFast"], "transformer": ["diffusers", "SD3Transformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"]}
_SD3_FILES = {"model_index.json": _SD3,
              "scheduler/scheduler_config.json": {"_class_name": "FlowMatchEulerDiscreteScheduler",
                                                  "num_train_timesteps": 1000, "shift": 3.0},
              "vae/config.json": _VAE_SD3, "text_encoder/config.json": _CLIP_L_SD3,
              "text_encoder_2/config.json": _OPEN_CLIP_BIGG, "text_encoder_3/config.json": _T5_XXL,
              "tokenizer": _TOKENIZER, "tokenizer_2": {**_TOKENIZER, "pad_token": "!"}}

_UNET_XL_REFINER = {**_UNET_XL, "attention_head_dim": [6, 12, 24, 24], "block_out_channels": [384, 768, 1536, 1536],
                    "cross_attention_dim": 1280, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D",
                                                                      "CrossAttnDownBlock2D", "DownBlock2D"],
                    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                    "transformer_layers_per_block": 4, "projection_class_embeddings_input_dim": 2560}
# (the refiner's sd_xl_refiner.yaml: model_channels 384, channel_mult 1 2 4 4, attention at the middle two levels,
# transformer_depth 4, context_dim 1280 — its one encoder, OpenCLIP bigG — adm_in_channels 2560: 5 time ids × 256 +
# the pooled 1280, 64 channels a head)
_XL_REFINER = {**_XL, "_class_name": "StableDiffusionXLImg2ImgPipeline", "text_encoder": [None, None],
               "tokenizer": [None, None], "force_zeros_for_empty_prompt": False, "requires_aesthetics_score": True}

_FLUX_TRANSFORMER = {"_class_name": "FluxTransformer2DModel", "attention_head_dim": 128, "axes_dims_rope": [16, 56, 56],
                     "guidance_embeds": True, "in_channels": 64, "joint_attention_dim": 4096, "num_attention_heads": 24,
                     "num_layers": 19, "num_single_layers": 38, "patch_size": 1, "pooled_projection_dim": 768}
_FLUX_SHIFTS = {"base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
                "num_train_timesteps": 1000}
_FLUX = {"_class_name": "FluxPipeline", "feature_extractor": [None, None], "image_encoder": [None, None],
         "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
         "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5TokenizerFast"],
         "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}
_FLUX_FILES = {"model_index.json": _FLUX,
               "vae/config.json": {**_VAE, "latent_channels": 16, "sample_size": 1024, "scaling_factor": 0.3611,
                                   "shift_factor": 0.1159, "force_upcast": True, "use_quant_conv": False,
                                   "use_post_quant_conv": False},
               "text_encoder/config.json": _CLIP_L, "text_encoder_2/config.json": _T5_XXL, "tokenizer": _TOKENIZER}

#: Each type's files (a tokenizer folder's value is its tokenizer_config.json), by diffusers' name for the type.
TYPES: dict[str, dict[str, dict]] = {
    "v1": {"model_index.json": _SD, "scheduler/scheduler_config.json": {"_class_name": "PNDMScheduler", **_SCHEDULE,
                                                                         "prediction_type": "epsilon"},
           "unet/config.json": _UNET_SD1, "vae/config.json": _VAE, "text_encoder/config.json": _CLIP_L,
           "tokenizer": _TOKENIZER},
    "v2": {"model_index.json": _SD, "scheduler/scheduler_config.json": {"_class_name": "DDIMScheduler", **_SCHEDULE,
                                                                         "prediction_type": "v_prediction"},
           "unet/config.json": {**_UNET_SD2, "sample_size": 96, "upcast_attention": True},
           "vae/config.json": {**_VAE, "sample_size": 768}, "text_encoder/config.json": _OPEN_CLIP_H,
           "tokenizer": {**_TOKENIZER, "pad_token": "!"}},
    "v2-base": {"model_index.json": _SD,
                "scheduler/scheduler_config.json": {"_class_name": "PNDMScheduler", **_SCHEDULE, "prediction_type": "epsilon"},
                "unet/config.json": _UNET_SD2, "vae/config.json": _VAE, "text_encoder/config.json": _OPEN_CLIP_H,
                "tokenizer": {**_TOKENIZER, "pad_token": "!"}},
    "xl_base": {"model_index.json": _XL,
                "scheduler/scheduler_config.json": {"_class_name": "EulerDiscreteScheduler", **_SCHEDULE,
                                                    "prediction_type": "epsilon", "interpolation_type": "linear",
                                                    "timestep_spacing": "leading", "use_karras_sigmas": False,
                                                    "sample_max_value": 1.0},
                "unet/config.json": _UNET_XL,
                "vae/config.json": {**_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True},
                "text_encoder/config.json": _CLIP_L, "text_encoder_2/config.json": _OPEN_CLIP_BIGG,
                "tokenizer": _TOKENIZER, "tokenizer_2": {**_TOKENIZER, "pad_token": "!"}},
    "sd3": {**_SD3_FILES, "transformer/config.json": _MMDIT},
    "sd35_medium": {**_SD3_FILES, "transformer/config.json": {**_MMDIT, "dual_attention_layers": list(range(13)),
                                                              "pos_embed_max_size": 384, "qk_norm": "rms_norm"}},
    "sd35_large": {**_SD3_FILES, "transformer/config.json": {**_MMDIT, "caption_projection_dim": 2432,
                                                             "num_attention_heads": 38, "num_layers": 38,
                                                             "qk_norm": "rms_norm"}},
}
TYPES["flux-dev"] = {**_FLUX_FILES, "transformer/config.json": _FLUX_TRANSFORMER,
                     "scheduler/scheduler_config.json": {"_class_name": "FlowMatchEulerDiscreteScheduler", **_FLUX_SHIFTS,
                                                         "shift": 3.0, "use_dynamic_shifting": True}}
TYPES["flux-schnell"] = {**_FLUX_FILES, "transformer/config.json": {**_FLUX_TRANSFORMER, "guidance_embeds": False},
                         "scheduler/scheduler_config.json": {"_class_name": "FlowMatchEulerDiscreteScheduler",
                                                             **_FLUX_SHIFTS, "shift": 1.0, "use_dynamic_shifting": False}}
TYPES["xl_refiner"] = {"model_index.json": _XL_REFINER, "unet/config.json": _UNET_XL_REFINER,
                       **{k: v for k, v in TYPES["xl_base"].items() if k.startswith(("scheduler", "vae", "text_encoder_2",
                                                                                       "tokenizer_2"))}}


def write(kind: str, folder: Path) -> None:
    """``kind``'s config folder at ``folder`` (which the caller makes atomically)."""
    files = TYPES[kind]
    scheduler = files["scheduler/scheduler_config.json"]["_class_name"]
    for relative, content in files.items():
        if relative == "model_index.json":  # the scheduler class from_single_file makes is the index's
            content = {**content, "scheduler": ["diffusers", scheduler]}
        if relative.startswith("tokenizer"):
            write_clip_tokenizer(folder / relative)
            special = {key: content[key] for key in ("bos_token", "eos_token", "unk_token", "pad_token")}
            (folder / relative / "tokenizer_config.json").write_text(json.dumps(content), encoding="utf-8")
            (folder / relative / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
        else:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(json.dumps(content), encoding="utf-8")
