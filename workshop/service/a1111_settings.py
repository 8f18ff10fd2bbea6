"""AUTOMATIC1111's settings and lists on promptism's service: ``GET``/``POST /sdapi/v1/options`` and the routes that
list what an install has (``/loras``, ``/embeddings``, ``/sd-vae``, ``/upscalers`` …), with A1111 1.10's names, item
shapes and defaults, so clients that read or switch them (webuiapi's ``util_set_model``, SillyTavern, Open WebUI)
work. Added to the A1111 router by ``add_routes``; ``/internal/ping`` sits at the app's root (``internal_router``).

Decisions, where A1111 and promptism differ:
- ``GET /options`` has every key of A1111 1.10's settings (``A1111_OPTIONS``: its defaults), with promptism's value
  where it has one (``sd_model_checkpoint``: the ``model`` setting, an install's checkpoint by its current title; ``randn_source``: CPU, promptism's generators;
  ``enable_pnginfo``: False, the PNGs carry pixels only; the ``outdir_*`` stay A1111's: no route hands out the
  journal's path). Most keys are informational: promptism keeps what a client sets and gives it back, and nothing else reads them.
- ``POST /options`` switches, for the service's life (never written to config.toml), what later txt2img / img2img
  requests use where their ``override_settings`` say nothing: ``sd_model_checkpoint`` (a model's name or A1111's
  title ``name.safetensors [hash]``), ``sd_vae`` (Automatic, None — both the model's own — or a VAE of the
  installs), ``CLIP_stop_at_last_layers`` and ``emphasis`` — given to the job as the request's own override settings,
  so the one option rule (``runner.options.resolve``) applies them. A setting that changes the picture in a way
  promptism does not make (``sd_hypernetwork``, face restoration, sigma and eta settings, another ``randn_source``,
  a ``samples_format`` other than png …) is a 422 naming it when set to anything but its value here; so is a key
  A1111 1.10 does not have. The body is checked whole before anything is set: a 422 sets nothing.
- ``/skip`` stops the running A1111 job as ``/interrupt`` does (its finished images are returned): promptism cannot
  drop one image and go on with the next.
- The refresh routes answer at once: promptism scans the installs' folders on every call, so there is nothing to
  refresh. ``/unload-checkpoint`` lets go of the service's warm models (a Ray worker's stay), ``/reload-checkpoint``
  loads nothing: the next job loads its model.
- ``/loras`` gives each LoRA's ``metadata`` as ``{}`` (promptism does not read it); ``/embeddings`` lists the
  safetensors embeddings as loaded (their shape from the header) and pickled ones as skipped (the API never loads
  pickles); ``/sd-modules`` (Forge's route, not A1111's) lists the installs' VAEs; ``/prompt-styles`` reads the a1111
  install's ``styles.csv``; ``/extensions``, ``/hypernetworks``, ``/face-restorers`` and ``/realesrgan-models``
  are empty; ``/scripts`` and ``/script-info`` name SD upscale, img2img's one script promptism has. A1111's embedding and hypernetwork training routes (``/create/…``, ``/train/…``) are a
  422 saying promptism does not train them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from journal import InvalidInput
from journal.files import read_text
from journal.journal import tool_version

from ..errors import RunError
from ..settings import Settings, load_settings
from .a1111 import CLIP_SKIP, EMPHASIS, SD_UPSCALE, SD_VAE, BadValue, as_a1111

CHECKPOINT = "sd_model_checkpoint"
APPLIED = (CHECKPOINT, SD_VAE, CLIP_SKIP, EMPHASIS)  # what POST /options switches for later requests
_HEADER_MAX = 1 << 20  # an embedding's safetensors header is a few hundred bytes

# A1111 1.10's settings (modules/shared_options.py, and the built-in Lora extension's) with their defaults, by its
# sections. Every key is answered by GET /options; POST takes each: informational ones are kept, ``REFUSED`` ones
# are a 422 unless set to their value here, ``APPLIED`` ones switch what later requests use.
A1111_OPTIONS: dict[str, Any] = {
    # saving images/grids
    "samples_save": True, "samples_format": "png", "samples_filename_pattern": "", "save_images_add_number": True,
    "save_images_replace_action": "Replace", "grid_save": True, "grid_format": "png", "grid_extended_filename": False,
    "grid_only_if_multiple": True, "grid_prevent_empty_spots": False, "grid_zip_filename_pattern": "", "n_rows": -1,
    "font": "", "grid_text_active_color": "#000000", "grid_text_inactive_color": "#999999",
    "grid_background_color": "#ffffff", "save_images_before_face_restoration": False,
    "save_images_before_highres_fix": False, "save_images_before_color_correction": False, "save_mask": False,
    "save_mask_composite": False, "jpeg_quality": 80, "webp_lossless": False, "export_for_4chan": True,
    "img_downscale_threshold": 4.0, "target_side_length": 4000, "img_max_size_mp": 200,
    "use_original_name_batch": True, "use_upscaler_name_as_suffix": False, "save_selected_only": True,
    "save_write_log_csv": True, "save_init_img": False, "temp_dir": "", "clean_temp_dir_at_start": False,
    "save_incomplete_images": False, "notification_audio": True, "notification_volume": 100,
    # paths for saving
    "outdir_samples": "", "outdir_txt2img_samples": "outputs/txt2img-images",
    "outdir_img2img_samples": "outputs/img2img-images", "outdir_extras_samples": "outputs/extras-images",
    "outdir_grids": "", "outdir_txt2img_grids": "outputs/txt2img-grids", "outdir_img2img_grids": "outputs/img2img-grids",
    "outdir_save": "log/images", "outdir_init_images": "outputs/init-images",
    # saving to a directory
    "save_to_dirs": True, "grid_save_to_dirs": True, "use_save_to_dirs_for_ui": False,
    "directories_filename_pattern": "[date]", "directories_max_prompt_words": 8,
    # upscaling
    "ESRGAN_tile": 192, "ESRGAN_tile_overlap": 8, "realesrgan_enabled_models": ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
    "dat_enabled_models": ["DAT x2", "DAT x3", "DAT x4"], "DAT_tile": 192, "DAT_tile_overlap": 8,
    "upscaler_for_img2img": None, "set_scale_by_when_changing_upscaler": False,
    # face restoration
    "face_restoration": False, "face_restoration_model": "CodeFormer", "code_former_weight": 0.5,
    "face_restoration_unload": False,
    # system, profiler, API
    "auto_launch_browser": "Local", "enable_console_prompts": False, "show_warnings": False,
    "show_gradio_deprecation_warnings": True, "memmon_poll_rate": 8, "samples_log_stdout": False, "multiple_tqdm": True,
    "enable_upscale_progressbar": True, "print_hypernet_extra": False, "list_hidden_files": True,
    "disable_mmap_load_safetensors": False, "hide_ldm_prints": True, "dump_stacks_on_signal": False,
    "profiling_enable": False, "profiling_activities": ["CPU"], "profiling_record_shapes": True,
    "profiling_profile_memory": True, "profiling_with_stack": True, "profiling_filename": "trace.json",
    "api_enable_requests": True, "api_forbid_local_requests": True, "api_useragent": "",
    # training
    "unload_models_when_training": False, "pin_memory": False, "save_optimizer_state": False,
    "save_training_settings_to_txt": True, "dataset_filename_word_regex": "", "dataset_filename_join_string": " ",
    "training_image_repeats_per_epoch": 1, "training_write_csv_every": 500, "training_xattention_optimizations": False,
    "training_enable_tensorboard": False, "training_tensorboard_save_images": False,
    "training_tensorboard_flush_every": 120,
    # Stable Diffusion, SDXL, SD 3
    CHECKPOINT: None, "sd_checkpoints_limit": 1, "sd_checkpoints_keep_in_cpu": True, "sd_checkpoint_cache": 0,
    "sd_unet": "Automatic", "enable_quantization": False, EMPHASIS: "Original", "enable_batch_seeds": True,
    "comma_padding_backtrack": 20, "sdxl_clip_l_skip": False, CLIP_SKIP: 1, "upcast_attn": False,
    "randn_source": "GPU", "tiling": False, "hires_fix_refiner_pass": "second pass", "sdxl_crop_top": 0,
    "sdxl_crop_left": 0, "sdxl_refiner_low_aesthetic_score": 2.5, "sdxl_refiner_high_aesthetic_score": 6.0,
    "sd3_enable_t5": False,
    # VAE
    "sd_vae_checkpoint_cache": 0, SD_VAE: "Automatic", "sd_vae_overrides_per_model_preferences": True,
    "auto_vae_precision_bfloat16": False, "auto_vae_precision": True, "sd_vae_encode_method": "Full",
    "sd_vae_decode_method": "Full",
    # img2img
    "inpainting_mask_weight": 1.0, "initial_noise_multiplier": 1.0, "img2img_extra_noise": 0.0,
    "img2img_color_correction": False, "img2img_fix_steps": False, "img2img_background_color": "#ffffff",
    "img2img_editor_height": 720, "img2img_sketch_default_brush_color": "#ffffff",
    "img2img_inpaint_mask_brush_color": "#ffffff", "img2img_inpaint_sketch_default_brush_color": "#ffffff",
    "return_mask": False, "return_mask_composite": False, "img2img_batch_show_results_limit": 32,
    "overlay_inpaint": True,
    # optimizations
    "cross_attention_optimization": "Automatic", "s_min_uncond": 0.0, "s_min_uncond_all": False,
    "token_merging_ratio": 0.0, "token_merging_ratio_img2img": 0.0, "token_merging_ratio_hr": 0.0,
    "pad_cond_uncond": False, "pad_cond_uncond_v0": False, "persistent_cond_cache": True, "batch_cond_uncond": True,
    "fp8_storage": "Disable", "cache_fp16_weight": False,
    # compatibility
    "auto_backcompat": True, "use_old_emphasis_implementation": False, "use_old_karras_scheduler_sigmas": False,
    "no_dpmpp_sde_batch_determinism": False, "use_old_hires_fix_width_height": False,
    "hires_fix_use_firstpass_conds": False, "use_old_scheduling": False, "use_downcasted_alpha_bar": False,
    "refiner_switch_by_sample_steps": False,
    # interrogate
    "interrogate_keep_models_in_memory": False, "interrogate_return_ranks": False, "interrogate_clip_num_beams": 1,
    "interrogate_clip_min_length": 24, "interrogate_clip_max_length": 48, "interrogate_clip_dict_limit": 1500,
    "interrogate_clip_skip_categories": [], "interrogate_deepbooru_score_threshold": 0.5, "deepbooru_sort_alpha": True,
    "deepbooru_use_spaces": True, "deepbooru_escape": True, "deepbooru_filter_tags": "",
    # extra networks (and the built-in Lora extension's)
    "extra_networks_show_hidden_directories": True, "extra_networks_dir_button_function": False,
    "extra_networks_hidden_models": "When searched", "extra_networks_default_multiplier": 1.0,
    "extra_networks_card_width": 0, "extra_networks_card_height": 0, "extra_networks_card_text_scale": 1.0,
    "extra_networks_card_show_desc": True, "extra_networks_card_description_is_html": False,
    "extra_networks_card_order_field": "Path", "extra_networks_card_order": "Ascending",
    "extra_networks_tree_view_style": "Dirs", "extra_networks_tree_view_default_enabled": True,
    "extra_networks_tree_view_default_width": 180, "extra_networks_add_text_separator": " ",
    "ui_extra_networks_tab_reorder": "", "textual_inversion_print_at_load": False,
    "textual_inversion_add_hashes_to_infotext": True, "sd_hypernetwork": "None", "sd_lora": "None",
    "lora_preferred_name": "Alias from file", "lora_add_hashes_to_infotext": True, "lora_bundled_ti_to_infotext": True,
    "lora_show_all": False, "lora_hide_unknown_for_versions": [], "lora_in_memory_limit": 0,
    "lora_not_found_warning_console": False, "lora_not_found_gradio_warning": False,
    # user interface: prompt editing, gallery, alternatives, the rest
    "keyedit_precision_attention": 0.1, "keyedit_precision_extra": 0.05, "keyedit_delimiters": ".,\\/!?%^*;:{}=`~() ",
    "keyedit_delimiters_whitespace": ["Tab", "Carriage Return", "Line Feed"], "keyedit_move": True,
    "disable_token_counters": False, "include_styles_into_token_counters": True, "return_grid": True,
    "do_not_show_images": False, "js_modal_lightbox": True, "js_modal_lightbox_initially_zoomed": True,
    "js_modal_lightbox_gamepad": False, "js_modal_lightbox_gamepad_repeat": 250,
    "sd_webui_modal_lightbox_icon_opacity": 1, "sd_webui_modal_lightbox_toolbar_opacity": 0.9, "gallery_height": "",
    "open_dir_button_choice": "Subdirectory", "compact_prompt_box": False, "samplers_in_dropdown": True,
    "dimensions_and_batch_together": True, "sd_checkpoint_dropdown_use_short": False, "hires_fix_show_sampler": False,
    "hires_fix_show_prompts": False, "txt2img_settings_accordion": False, "img2img_settings_accordion": False,
    "interrupt_after_current": True, "localization": "None", "quicksettings_list": [CHECKPOINT], "ui_tab_order": [],
    "hidden_tabs": [], "ui_reorder_list": [], "gradio_theme": "Default", "gradio_themes_cache": True,
    "show_progress_in_title": True, "send_seed": True, "send_size": True, "enable_reloading_ui_scripts": False,
    # infotext
    "enable_pnginfo": True, "save_txt": False, "add_model_name_to_info": True, "add_model_hash_to_info": True,
    "add_vae_name_to_info": True, "add_vae_hash_to_info": True, "add_user_name_to_info": False,
    "add_version_to_infotext": True, "disable_weights_auto_swap": True, "infotext_skip_pasting": [],
    "infotext_styles": "Apply if any",
    # live previews
    "show_progressbar": True, "live_previews_enable": True, "live_previews_image_format": "png",
    "show_progress_grid": True, "show_progress_every_n_steps": 10, "show_progress_type": "Approx NN",
    "live_preview_allow_lowvram_full": False, "live_preview_content": "Prompt", "live_preview_refresh_period": 1000,
    "live_preview_fast_interrupt": False, "js_live_preview_in_modal_lightbox": False,
    "prevent_screen_sleep_during_generation": True,
    # sampler parameters
    "hide_samplers": [], "eta_ddim": 0.0, "eta_ancestral": 1.0, "ddim_discretize": "uniform", "s_churn": 0.0,
    "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0, "sigma_min": 0.0, "sigma_max": 0.0, "rho": 0.0,
    "eta_noise_seed_delta": 0, "always_discard_next_to_last_sigma": False, "sgm_noise_multiplier": False,
    "uni_pc_variant": "bh1", "uni_pc_skip_type": "time_uniform", "uni_pc_order": 3, "uni_pc_lower_order_final": True,
    "sd_noise_schedule": "Default", "skip_early_cond": 0.0, "beta_dist_alpha": 0.6, "beta_dist_beta": 0.6,
    # postprocessing
    "postprocessing_enable_in_main_ui": [], "postprocessing_disable_in_extras": [],
    "postprocessing_operation_order": [], "upscaling_max_images_in_cache": 5,
    "postprocessing_existing_caption_action": "Ignore",
    # hidden
    "disabled_extensions": [], "disable_all_extensions": "none", "restore_config_state_file": "",
    "sd_checkpoint_hash": "",
}

# The settings that change the picture in ways promptism does not make: set to anything but their value here, a 422.
REFUSED = {
    "samples_format": "promptism's images are PNG", "enable_pnginfo": "the API's PNGs carry pixels only; the "
    "parameters are in the response's info", "face_restoration": "promptism has no face restoration",
    "face_restoration_model": "promptism has no face restoration", "sd_unet": "promptism uses the model's own UNet",
    "enable_quantization": "promptism's samplers are diffusers'", "enable_batch_seeds": "promptism's images never "
    "depend on their batch", "comma_padding_backtrack": "promptism breaks prompts as A1111's default does (20)",
    "sdxl_clip_l_skip": "promptism leaves SDXL's encoders alone, as A1111's default does",
    "upcast_attn": "promptism runs attention as diffusers does", "randn_source": "promptism draws noise on the CPU "
    "(A1111's CPU source): the same picture on every device", "tiling": "send tiling with each request",
    "hires_fix_refiner_pass": "promptism runs no refiner in the hires fix",
    "sdxl_crop_top": "promptism conditions SDXL on no crop", "sdxl_crop_left": "promptism conditions SDXL on no crop",
    "sdxl_refiner_low_aesthetic_score": "promptism uses diffusers' aesthetic scores",
    "sdxl_refiner_high_aesthetic_score": "promptism uses diffusers' aesthetic scores",
    "sd3_enable_t5": "promptism loads an SD 3 checkpoint's T5 where the file has it",
    "sd_vae_encode_method": "promptism has no TAESD", "sd_vae_decode_method": "promptism has no TAESD",
    "inpainting_mask_weight": "promptism masks an inpainting model's image fully (A1111's 1.0)", "initial_noise_multiplier": "promptism does not scale "
    "img2img's noise", "img2img_extra_noise": "promptism adds no extra noise",
    "img2img_color_correction": "promptism does no colour correction", "img2img_fix_steps": "promptism runs "
    "img2img's steps as A1111's default does", "img2img_background_color": "promptism does not fill transparency",
    "s_min_uncond": "promptism never skips the negative prompt", "s_min_uncond_all": "promptism never skips the "
    "negative prompt", "token_merging_ratio": "promptism does no token merging", "token_merging_ratio_img2img":
    "promptism does no token merging", "token_merging_ratio_hr": "promptism does no token merging",
    "pad_cond_uncond": "promptism pads prompts as A1111's default does", "pad_cond_uncond_v0": "promptism pads "
    "prompts as A1111's default does", "fp8_storage": "promptism keeps weights as the model has them",
    **{key: "promptism reproduces A1111's current behaviour only" for key in (
        "use_old_emphasis_implementation", "use_old_karras_scheduler_sigmas", "no_dpmpp_sde_batch_determinism",
        "use_old_hires_fix_width_height", "hires_fix_use_firstpass_conds", "use_old_scheduling",
        "use_downcasted_alpha_bar", "refiner_switch_by_sample_steps")},
    "sd_hypernetwork": "promptism has no hypernetworks", "sd_lora": "name LoRAs in the prompt: <lora:NAME:weight>",
    **{key: "promptism's samplers take their schedulers' own settings" for key in (
        "eta_ddim", "eta_ancestral", "ddim_discretize", "s_churn", "s_tmin", "s_tmax", "s_noise", "sigma_min",
        "sigma_max", "rho", "always_discard_next_to_last_sigma", "sgm_noise_multiplier", "uni_pc_variant",
        "uni_pc_skip_type", "uni_pc_order", "uni_pc_lower_order_final", "sd_noise_schedule", "skip_early_cond",
        "beta_dist_alpha", "beta_dist_beta")},
    "eta_noise_seed_delta": "promptism has no ENSD: its ancestral samplers draw from each image's own seed",
    "sd_checkpoint_hash": f"it follows {CHECKPOINT}",
}


def promptism_values(settings: Settings) -> dict[str, Any]:
    """The settings whose value here is promptism's, not A1111's default."""
    return {CHECKPOINT: settings.model, "sd_checkpoint_hash": _checkpoint_hash(settings.model), "randn_source": "CPU",
            "enable_pnginfo": False}  # (the outdir_* stay A1111's: no route hands out the journal's path over TCP)


def _checkpoint_hash(model: str) -> str:
    """A1111's ``sd_checkpoint_hash`` (the file's sha256) for an install's checkpoint whose hash is known; else ""."""
    from ..runner.model_files import cached_hashes

    try:
        from ..runner.models import installed_checkpoint

        path = installed_checkpoint(model) or (Path(model).expanduser() if model.endswith(".safetensors") else None)
    except RunError:
        return ""
    known = cached_hashes(path) if path is not None and path.is_file() else None
    return known[0] if known else ""


class Options:
    """What ``POST /options`` set, for one service's life (never written to config.toml)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values: dict[str, Any] = {}

    def defaults(self) -> dict[str, Any]:
        """The override settings a request gets where it gives none: the switched ones, less those at A1111's
        default (Clip skip 1, Emphasis Original, VAE Automatic: what a run does when given nothing)."""
        with self.lock:
            return {key: value for key, value in self.values.items()
                    if key in APPLIED and value != A1111_OPTIONS[key]}


_OPTIONS: "weakref.WeakKeyDictionary[object, Options]" = weakref.WeakKeyDictionary()
_OPTIONS_LOCK = threading.Lock()


def options_of(service) -> Options:
    with _OPTIONS_LOCK:
        if service not in _OPTIONS:
            _OPTIONS[service] = Options()
        return _OPTIONS[service]


def request_defaults(service) -> dict[str, Any]:
    """What an A1111 request on ``service`` uses where its ``override_settings`` say nothing (``map_request``)."""
    return options_of(service).defaults()


def map_with_options(req, journal: Path, settings: Settings, service):
    """``a1111.map_request`` with what POST /options switched as the request's defaults; a refusal of a value that
    came from there (not from the request) says so."""
    from .a1111 import map_request

    defaults = request_defaults(service)
    try:
        return map_request(req, journal, settings, defaults)
    except BadValue as exc:
        raise with_origin(exc, req, defaults) from None


def with_origin(exc: BadValue, req, defaults: dict[str, Any] | None) -> BadValue:
    """``exc``, saying which of the values it names came from POST /options rather than from the request."""
    switched = [key for key in defaults or {} if key not in req.override_settings
                and (key in exc.loc or f"override_settings.{key}" in str(exc)
                     or (isinstance(defaults[key], str) and defaults[key] in str(exc)))]
    if not switched:
        return exc
    return BadValue(exc.loc, f"{exc} ({', '.join(switched)} as POST /sdapi/v1/options set it: set it again, or send "
                    "it in override_settings)")


def current(service, settings: Settings) -> dict[str, Any]:
    """GET /options: A1111's every key — promptism's value where it has one, what a client set, else A1111's."""
    with options_of(service).lock:
        switched = dict(options_of(service).values)
    values = {**A1111_OPTIONS, **promptism_values(settings), **switched}
    if CHECKPOINT in switched:
        values["sd_checkpoint_hash"] = _checkpoint_hash(switched[CHECKPOINT])
    values[CHECKPOINT] = _checkpoint_title(values[CHECKPOINT], settings)
    return values


def _checkpoint_title(model: str | None, settings: Settings) -> str | None:
    """``model`` as ``/sd-models`` lists it now: an install's checkpoint by its A1111 title (with its hash once a run
    has hashed it, as A1111 names the checkpoint it loaded), so a client finds the current model in that list
    (SillyTavern's model dropdown, Open WebUI's comparison before it switches); a path by its file or folder name;
    any other model as it was named."""
    from ..runner.model_files import find_all
    from ..runner.models import BUILTINS

    if not model or model in BUILTINS:
        return model
    try:
        path = Path(model).expanduser()
        if path.is_absolute() or path.exists():  # a path: a model of its own, not an install's (models.resolve's
            return path.name  # order), by its name: no route hands out a path on this machine
        found = find_all(settings, "checkpoint", model)
    except (OSError, ValueError):  # a name no file can have
        return model
    return found[0].title() if len(found) == 1 else model


def checked(body: dict[str, Any], now: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """POST /options's body as the values to keep: each key checked (BadValue naming the first that is not A1111's,
    not of its type, or not a value promptism can set); nothing is set here."""
    kept = {}
    for key, value in body.items():
        if key not in A1111_OPTIONS:
            raise BadValue([key], f"{key} is not one of AUTOMATIC1111 1.10's settings that promptism knows (GET "
                           "/sdapi/v1/options lists them): leave it out")
        if key in APPLIED:
            kept[key] = _applied(key, value, settings)
            continue
        _same_type(key, value)
        if key in REFUSED and value != now[key]:
            raise BadValue([key], f"promptism cannot set {key} to another value: {REFUSED[key]} (its value here is "
                           f"{json.dumps(now[key])})")
        kept[key] = value
    return kept


def _same_type(key: str, value) -> None:
    """A value of the type of A1111's default for ``key`` (a whole number for a float one too)."""
    default = A1111_OPTIONS[key]
    if default is None:
        ok = value is None or isinstance(value, str)
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        kind = {bool: "true or false", float: "a number", int: "a whole number", list: "a list of texts",
                str: "a text"}.get(type(default), "a text or null")
        raise BadValue([key], f"{key} takes {kind}, not a {type(value).__name__}")


def _applied(key: str, value, settings: Settings):
    """A value of a setting that switches what later requests use, checked as a request's override would be."""
    from ..runner.options import emphasis_mode
    from ..runner.options import CLIP_SKIP_MAX

    if key == CLIP_SKIP:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= CLIP_SKIP_MAX:
            raise BadValue([key], f"{key} (Clip skip) counts the text encoder's layers from the end: a whole number "
                           f"from 1 (the last) to {CLIP_SKIP_MAX}")
        return value
    if not isinstance(value, str) or not value.strip():
        raise BadValue([key], f"{key} takes a name (a text)")
    try:
        if key == EMPHASIS:
            return emphasis_mode(value) or "Original"
        if key == SD_VAE:
            if value.strip().lower() in ("automatic", "none"):
                return value.strip().capitalize()
            from ..runner.vae import find_vae

            find_vae(value, allow_pickle=False)
            return value
        from ..runner.models import check_name, is_guided

        if is_guided(value):
            raise BadValue([key], f"{value} is CLIP-guided (it has no cfg_scale or sampler): the A1111 API serves "
                           "diffusion models; see /sdapi/v1/sd-models")
        check_name(value)
        return value
    except (OSError, ValueError):  # a name no file can have (too long, a NUL): nothing by that name
        raise BadValue([key], f"{key}: nothing here goes by that name (see /sdapi/v1/"
                       f"{'sd-vae' if key == SD_VAE else 'sd-models'})") from None
    except RunError as exc:
        said = exc.worded(as_a1111)
        hint = " (see /sdapi/v1/sd-models)" if key == CHECKPOINT else " (see /sdapi/v1/sd-vae)" if key == SD_VAE else ""
        raise BadValue([key], f"{said}{hint}") from None


# ------------------------------------------------------------------ the lists


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str
    metadata: dict


class EmbeddingItem(BaseModel):
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    shape: int
    vectors: int


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, EmbeddingItem]
    skipped: dict[str, EmbeddingItem]


class VaeItem(BaseModel):
    model_config = {"protected_namespaces": ()}

    model_name: str
    filename: str


class UpscalerItem(BaseModel):
    model_config = {"protected_namespaces": ()}

    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = None


class NameItem(BaseModel):
    name: str


class PromptStyleItem(BaseModel):
    name: str
    prompt: str | None = None
    negative_prompt: str | None = None


class ScriptsList(BaseModel):
    txt2img: list[str] = []
    img2img: list[str] = []


class ScriptArg(BaseModel):
    label: str | None = None
    value: Any = None
    minimum: Any = None
    maximum: Any = None
    step: Any = None
    choices: list[str] | None = None


class ScriptInfo(BaseModel):
    name: str
    is_alwayson: bool = False
    is_img2img: bool
    args: list[ScriptArg]


def sd_upscale_info() -> ScriptInfo:
    """A1111's script-info for SD upscale, the one script promptism has: its arguments as script_args takes them."""
    from ..runner.sd_upscale import DEFAULT_OVERLAP, UPSCALERS

    return ScriptInfo(name=SD_UPSCALE, is_img2img=True, args=[
        ScriptArg(label="info", value=""), ScriptArg(label="Tile overlap", value=DEFAULT_OVERLAP, minimum=0,
                                                     maximum=256, step=16),
        ScriptArg(label="Upscaler", value=UPSCALERS[0], choices=list(UPSCALERS)),
        ScriptArg(label="Scale Factor", value=2.0, minimum=1.0, maximum=4.0, step=0.05)])


class MemoryResponse(BaseModel):
    ram: dict
    cuda: dict


def loras(settings: Settings) -> list[LoraItem]:
    from ..runner.model_files import model_files

    return [LoraItem(name=f.name.rpartition("/")[2], alias=f.name.rpartition("/")[2], path=str(f.path), metadata={})
            for f in model_files(settings, "lora")]


def embeddings(settings: Settings) -> EmbeddingsResponse:
    """The installs' embeddings: safetensors ones as loaded (vectors and their width from the header), pickled ones
    as skipped (the API loads no pickle)."""
    from ..runner.model_files import model_files

    loaded, skipped = {}, {}
    for file in model_files(settings, "embedding"):
        name = file.name.rpartition("/")[2]
        if file.pickled:
            skipped[name] = EmbeddingItem(shape=0, vectors=0)
        elif (shape := _embedding_shape(file.path)) is not None:
            loaded[name] = EmbeddingItem(shape=shape[1], vectors=shape[0])
        else:
            skipped[name] = EmbeddingItem(shape=0, vectors=0)
    return EmbeddingsResponse(loaded=loaded, skipped=skipped)


def _embedding_shape(path: Path) -> tuple[int, int] | None:
    """(vectors, width) of a safetensors embedding's first 2-D tensor (A1111's ``emb_params``, SDXL's ``clip_l``),
    from its header; None for a file that is not one."""
    try:
        with open(path, "rb") as handle:
            length = struct.unpack("<Q", handle.read(8))[0]
            if length > _HEADER_MAX:
                return None
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return None
    shapes = [entry.get("shape") for key, entry in sorted(header.items()) if key != "__metadata__"
              and isinstance(entry, dict)]
    flat = [s for s in shapes if isinstance(s, list) and len(s) == 2 and all(isinstance(n, int) for n in s)]
    return (flat[0][0], flat[0][1]) if flat else None


def vaes(settings: Settings) -> list[VaeItem]:
    from ..runner.model_files import model_files

    return [VaeItem(model_name=f"{f.name}{f.path.suffix}", filename=str(f.path)) for f in model_files(settings, "vae")]


def upscalers() -> list[UpscalerItem]:
    from ..runner.hires import PIXEL

    return [UpscalerItem(name=name, scale=4) for name in PIXEL]


def prompt_styles(settings: Settings) -> list[PromptStyleItem]:
    """The a1111 install's ``styles.csv`` (its columns name, prompt, negative_prompt); none without one."""
    if settings.a1111 is None:
        return []
    path = Path(settings.a1111).expanduser() / "styles.csv"
    if not path.is_file():
        return []
    try:
        text = read_text(path, "styles file")
    except InvalidInput as exc:
        raise BadValue([], f"{exc} (the a1111 install's styles.csv)") from None
    rows = csv.DictReader(io.StringIO(text))
    return [PromptStyleItem(name=row["name"], prompt=row.get("prompt") or "", negative_prompt=row.get("negative_prompt")
                            or "") for row in rows if row.get("name")]


def cmd_flags(settings: Settings, service) -> dict[str, Any]:
    """A1111's command-line flags as promptism runs: where promptism has an equivalent its value, else A1111's default
    (informational)."""
    from ..runner.model_files import FOLDERS

    a1111 = Path(settings.a1111).expanduser() if settings.a1111 else None
    under = (lambda kind: str(a1111 / FOLDERS["a1111"][kind][0])) if a1111 else (lambda kind: None)
    return {
        "f": False, "update_all_extensions": False, "skip_python_version_check": False, "skip_torch_cuda_test": False,
        "reinstall_xformers": False, "reinstall_torch": False, "update_check": False, "test_server": False,
        "log_startup": False, "skip_prepare_environment": False, "skip_install": False, "dump_sysinfo": False,
        "loglevel": None, "do_not_download_clip": True, "data_dir": str(a1111) if a1111 else None,
        "models_dir": str(a1111 / "models") if a1111 else None, "config": None, "ckpt": None,
        "ckpt_dir": under("checkpoint"), "vae_dir": under("vae"), "gfpgan_dir": None, "gfpgan_model": None,
        "no_half": False, "no_half_vae": False, "no_progressbar_hiding": False, "max_batch_count": 16,
        "embeddings_dir": under("embedding"), "textual_inversion_templates_dir": None, "hypernetwork_dir": None,
        "localizations_dir": None, "allow_code": False, "medvram": False, "medvram_sdxl": False, "lowvram": False,
        "lowram": False, "always_batch_cond_uncond": False, "unload_gfpgan": False, "precision": "autocast",
        "upcast_sampling": False, "share": False, "ngrok": None, "ngrok_region": "", "ngrok_options": {},
        "enable_insecure_extension_access": False, "codeformer_models_path": None, "gfpgan_models_path": None,
        "esrgan_models_path": None, "bsrgan_models_path": None, "realesrgan_models_path": None,
        "dat_models_path": None, "clip_models_path": None, "xformers": False, "force_enable_xformers": False,
        "xformers_flash_attention": False, "deepdanbooru": False, "opt_split_attention": False,
        "opt_sub_quad_attention": False, "sub_quad_q_chunk_size": 1024, "sub_quad_kv_chunk_size": None,
        "sub_quad_chunk_threshold": None, "opt_split_attention_invokeai": False, "opt_split_attention_v1": False,
        "opt_sdp_attention": True, "opt_sdp_no_mem_attention": False, "disable_opt_split_attention": False,
        "disable_nan_check": False, "use_cpu": [], "use_ipex": False, "disable_model_loading_ram_optimization": False,
        "listen": False, "port": None, "show_negative_prompt": False, "ui_config_file": None,
        "hide_ui_dir_config": False, "freeze_settings": False, "freeze_settings_in_sections": None,
        "freeze_specific_settings": None, "ui_settings_file": None, "gradio_debug": False, "gradio_auth": None,
        "gradio_auth_path": None, "gradio_img2img_tool": None, "gradio_inpaint_tool": None,
        "gradio_allowed_path": [], "opt_channelslast": settings.channels_last,
        "styles_file": [str(a1111 / "styles.csv")] if a1111 else [], "autolaunch": False, "theme": None,
        "use_textbox_seed": False, "disable_console_progressbars": True, "enable_console_prompts": False,
        "vae_path": None, "disable_safe_unpickle": False, "api": True, "api_auth": None, "api_log": False,
        "nowebui": True, "ui_debug_mode": False, "device_id": None, "administrator": False, "cors_allow_origins": None,
        "cors_allow_origins_regex": None, "tls_keyfile": None, "tls_certfile": None, "disable_tls_verify": None,
        "server_name": None, "gradio_queue": True, "no_gradio_queue": False, "skip_version_check": False,
        "no_hashing": False, "no_download_sd_model": True, "subpath": None, "add_stop_route": False,
        "api_server_stop": False, "timeout_keep_alive": 30, "disable_all_extensions": True,
        "disable_extra_extensions": True, "skip_load_model_at_start": True, "unix_filenames_sanitization": False,
        "filenames_max_length": 128, "no_prompt_history": True, "lora_dir": under("lora"), "lyco_dir_backcompat": None,
        "promptism": f"promptism {tool_version()}",
    }


def memory() -> MemoryResponse:
    """A1111's memory report: this process's RAM (psutil where installed, else /proc), and CUDA's where torch has been
    loaded with a GPU (the service's worker loads it)."""
    try:
        try:
            import psutil

            process = psutil.Process(os.getpid())
            used = process.memory_info().rss
            total = psutil.virtual_memory().total
        except ImportError:
            page = os.sysconf("SC_PAGE_SIZE")
            total = os.sysconf("SC_PHYS_PAGES") * page
            used = int(Path("/proc/self/statm").read_text().split()[1]) * page
        ram = {"free": total - used, "used": used, "total": total}
    except (OSError, ValueError, IndexError) as exc:
        ram = {"error": str(exc)}
    torch = sys.modules.get("torch")
    cuda: dict = {"error": "unavailable"}
    if torch is not None and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        stats = torch.cuda.memory_stats()

        def pair(name: str) -> dict:
            return {"current": stats.get(f"{name}.all.current", 0), "peak": stats.get(f"{name}.all.peak", 0)}

        cuda = {"system": {"free": free, "used": total - free, "total": total}, "active": pair("active_bytes"),
                "allocated": pair("allocated_bytes"), "reserved": pair("reserved_bytes"),
                "inactive": pair("inactive_split_bytes"),
                "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)}}
    return MemoryResponse(ram=ram, cuda=cuda)


# ------------------------------------------------------------------ the routes


def add_routes(api: APIRouter, service, *, interrupt=None) -> None:
    """The settings and list routes on the A1111 router ``api`` (mounted at ``/sdapi/v1``); ``interrupt``: the
    router's own ``/interrupt``, which ``/skip`` calls."""
    options = options_of(service)

    @api.get("/options")
    async def get_options():
        return await run_in_threadpool(lambda: current(service, load_settings()))

    @api.post("/options")
    async def set_options(body: dict[str, Any]):
        settings = load_settings()
        try:
            now = await run_in_threadpool(current, service, settings)
            kept = await run_in_threadpool(checked, body, now, settings)
        except BadValue as exc:
            return exc.response()
        with options.lock:
            options.values.update(kept)
        return None  # A1111 answers null

    @api.get("/cmd-flags")
    async def get_cmd_flags():
        return cmd_flags(load_settings(), service)

    @api.get("/loras", response_model=list[LoraItem])
    async def get_loras():
        return await run_in_threadpool(loras, load_settings())

    @api.get("/embeddings", response_model=EmbeddingsResponse)
    async def get_embeddings():
        return await run_in_threadpool(embeddings, load_settings())

    @api.get("/sd-vae", response_model=list[VaeItem])
    async def get_sd_vae():
        return await run_in_threadpool(vaes, load_settings())

    @api.get("/sd-modules", response_model=list[VaeItem])
    async def get_sd_modules():
        return await run_in_threadpool(vaes, load_settings())

    @api.get("/upscalers", response_model=list[UpscalerItem])
    async def get_upscalers():
        return upscalers()

    @api.get("/latent-upscale-modes", response_model=list[NameItem])
    async def get_latent_upscale_modes():
        from ..runner.hires import LATENT_MODES

        return [NameItem(name=name) for name in LATENT_MODES]

    for path in ("/hypernetworks", "/face-restorers", "/realesrgan-models"):
        api.add_api_route(path, _nothing, methods=["GET"], response_model=list[dict])

    @api.get("/script-info", response_model=list[ScriptInfo])
    async def get_script_info():
        return [sd_upscale_info()]

    @api.get("/prompt-styles", response_model=list[PromptStyleItem])
    async def get_prompt_styles():
        try:
            return await run_in_threadpool(prompt_styles, load_settings())
        except BadValue as exc:
            return exc.response()

    @api.get("/scripts", response_model=ScriptsList)
    async def get_scripts():
        return ScriptsList(img2img=[SD_UPSCALE])

    @api.get("/memory", response_model=MemoryResponse)
    async def get_memory():
        return memory()

    @api.post("/skip")
    async def skip():
        return await interrupt() if interrupt is not None else {}

    for path in ("/refresh-checkpoints", "/refresh-loras", "/refresh-vae", "/refresh-embeddings", "/reload-checkpoint"):
        api.add_api_route(path, _refreshed, methods=["POST"])

    @api.get("/extensions", response_model=list[dict])
    async def get_extensions():
        return []  # promptism runs no A1111 extensions

    for path in ("/create/embedding", "/create/hypernetwork", "/train/embedding", "/train/hypernetwork"):
        api.add_api_route(path, _not_trained, methods=["POST"])

    @api.post("/unload-checkpoint")
    async def unload_checkpoint():
        from ..runner.models import let_go

        await run_in_threadpool(let_go)
        return {}


async def _nothing() -> list:
    return []


async def _not_trained():
    """A1111's embedding and hypernetwork training: not promptism's (it trains only its own shapes model)."""
    return BadValue([], "promptism does not create or train embeddings or hypernetworks: train them elsewhere and "
                    "put the files in the A1111 install's embeddings folder").response()


async def _refreshed() -> dict:
    """Nothing to do: promptism scans the installs on every call, and loads a model when a job needs it."""
    return {}


def internal_router() -> APIRouter:
    """A1111's ``/internal/ping`` (at the app's root, behind the same token as every route)."""
    internal = APIRouter(tags=["AUTOMATIC1111"])

    @internal.get("/internal/ping")
    async def ping():
        return {}

    return internal
