"""AUTOMATIC1111's settings and list routes on the service (workshop/service/a1111_settings.py), against uvicorn on a
loopback port as A1111 clients reach it: GET /options with A1111 1.10's keys, POST /options that switches what later
requests use (and a 422 for what promptism cannot set), and the lists of an A1111 install's files."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

from journal import Journal
from tests import test_a1111 as served
from workshop.runner.models import loaded_models
from workshop.runner.runs import load_run
from workshop.service import a1111_settings

PROMPT = served.PROMPT
# the service and its A1111 routes on uvicorn, as test_a1111 serves them (its fixtures)
serve_journal, service, app, sdapi, api = served.serve_journal, served.service, served.app, served.sdapi, served.api
A1111_READ = ("send_seed", "sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "samples_format",
              "sd_checkpoint_hash", "emphasis", "eta_noise_seed_delta", "outdir_txt2img_samples",
              "outdir_img2img_samples", "send_size", "sd_hypernetwork", "face_restoration_model", "randn_source")


@pytest.fixture
def webui(tmp_path):
    """An A1111 install with a VAE for the tiny model, a LoRA, two embeddings (safetensors, A1111's .pt) and styles."""
    from safetensors.torch import save_file

    from tests.helpers import tiny_pipeline
    from tests.ldm_export import write_vae_file

    folder = tmp_path / "webui"
    write_vae_file(tiny_pipeline().vae, folder / "models" / "VAE" / "tinyvae.safetensors", change=0.02)
    (folder / "models" / "Lora" / "styles").mkdir(parents=True)
    save_file({"lora_unet_down.alpha": torch.tensor(4.0)}, folder / "models" / "Lora" / "styles" / "inky.safetensors")
    (folder / "embeddings").mkdir()
    save_file({"emb_params": torch.zeros(3, 32)}, folder / "embeddings" / "tinystyle.safetensors")
    torch.save({"string_to_param": {"*": torch.zeros(1, 32)}}, folder / "embeddings" / "oldstyle.pt")
    (folder / "styles.csv").write_text('name,prompt,negative_prompt\nInked,"{prompt}, ink",blurry\n', encoding="utf-8")
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{folder}"\n', encoding="utf-8")
    return folder


def _get(sdapi, path: str, **kwargs) -> httpx.Response:
    return httpx.get(f"{sdapi.url}{path}", auth=sdapi.auth, timeout=120, **kwargs)


def _post(sdapi, path: str, body=None) -> httpx.Response:
    return httpx.post(f"{sdapi.url}{path}", auth=sdapi.auth, timeout=300, json=body)


# ------------------------------------------------------------------ GET / POST /options


def test_options_have_a1111s_keys_with_promptisms_values_where_it_has_them(api, jdir):
    options = api.get_options()
    assert set(a1111_settings.A1111_OPTIONS) == set(options) and len(options) > 250
    assert all(key in options for key in A1111_READ)
    assert options["sd_model_checkpoint"] == "shapes"  # the model setting (config.toml's default)
    assert (options["sd_vae"], options["CLIP_stop_at_last_layers"], options["emphasis"]) == ("Automatic", 1, "Original")
    assert options["samples_format"] == "png" and options["send_seed"] is True and options["eta_noise_seed_delta"] == 0
    assert options["randn_source"] == "CPU" and options["enable_pnginfo"] is False  # promptism's, not A1111's defaults
    assert options["outdir_txt2img_samples"] == "outputs/txt2img-images" and options["sd_checkpoint_hash"] == ""
    assert str(jdir) not in json.dumps(options)  # no route hands out the journal's path


def test_options_round_trip_and_what_is_set_is_given_back(api, sdapi, webui):
    body = {"send_seed": False, "outdir_txt2img_samples": "elsewhere", "jpeg_quality": 95, "CLIP_stop_at_last_layers": 2,
            "emphasis": "no norm", "sd_vae": "tinyvae", "samples_format": "png", "quicksettings_list": ["sd_vae"],
            "img_downscale_threshold": 5}
    reply = _post(sdapi, "/options", body)
    assert reply.status_code == 200 and reply.json() is None  # A1111 answers null
    options = api.get_options()
    assert {key: options[key] for key in body} == {**body, "emphasis": "No norm"}  # (its name as A1111 spells it)
    assert _post(sdapi, "/options", {"sd_vae": "none", "emphasis": "Original"}).status_code == 200
    assert (api.get_options()["sd_vae"], api.get_options()["emphasis"]) == ("None", "Original")
    assert _post(sdapi, "/options", api.get_options()).status_code == 200  # what GET gives, posted back whole


def test_a_switched_model_vae_and_clip_skip_are_what_later_requests_use(api, sdapi, jdir, webui, capsys):
    def made(**fields):
        result = api.txt2img(prompt=PROMPT, seed=4, steps=2, width=32, height=32, **fields)
        return result, load_run(Journal.open(jdir), result.info["promptism_run"])

    before, _ = made()
    assert before.info["sd_model_name"] == "shapes"
    api.util_set_model("tiny")  # webuiapi: POST /options, as A1111 clients switch models
    assert "model changed to tiny" in capsys.readouterr().out and api.util_get_current_model() == "tiny"
    after, run = made()
    assert after.info["sd_model_name"] == "tiny" and run.record.model.id == "tiny"
    assert after.info["clip_skip"] == 1 and after.info["sd_vae_name"] is None
    assert not after.info["extra_generation_params"]  # nothing the request sent is left unapplied
    assert _post(sdapi, "/options", {"CLIP_stop_at_last_layers": 2, "sd_vae": "tinyvae.safetensors"}).status_code == 200
    switched, run = made()
    assert run.record.params.clip_skip == 2 and switched.info["sd_vae_name"] == "tinyvae.safetensors"
    assert "Clip skip: 2" in switched.info["infotexts"][0]
    assert switched.images[0].tobytes() != after.images[0].tobytes()
    shapes = {"sd_model_checkpoint": "shapes", "sd_vae": "Automatic"}
    refused = _post(sdapi, "/txt2img", {"prompt": PROMPT, "steps": 2, "override_settings": shapes})
    assert refused.status_code == 422  # shapes takes no Clip skip: the switched one is named, as where it came from
    assert "CLIP_stop_at_last_layers as POST /sdapi/v1/options set it" in refused.json()["detail"][0]["msg"]
    own, run = made(override_settings={**shapes, "CLIP_stop_at_last_layers": 1})  # the request's own win
    assert own.info["sd_model_name"] == "shapes" and run.record.params.vae is None
    assert own.parameters["override_settings"] == {**shapes, "CLIP_stop_at_last_layers": 1}  # echoed as sent
    assert _post(sdapi, "/options", {**shapes, "CLIP_stop_at_last_layers": 1}).status_code == 200
    assert made()[0].info["sd_model_name"] == "shapes"


@pytest.mark.parametrize("body, key, says", [
    ({"sd_model_checkpoint": "no-such-model"}, "sd_model_checkpoint", "see /sdapi/v1/sd-models"),
    ({"sd_model_checkpoint": "vqgan-clip:shapes+shapes-clip"}, "sd_model_checkpoint", "CLIP-guided"),
    ({"sd_model_checkpoint": 3}, "sd_model_checkpoint", "takes a name"),
    ({"sd_vae": "nosuch"}, "sd_vae", "nosuch"),
    ({"CLIP_stop_at_last_layers": 13}, "CLIP_stop_at_last_layers", "from 1 (the last) to 12"),
    ({"emphasis": "None"}, "emphasis", "use one of Original, No norm, Ignore"),
    ({"sd_hypernetwork": "anime"}, "sd_hypernetwork", "no hypernetworks"),
    ({"face_restoration_model": "GFPGAN"}, "face_restoration_model", "no face restoration"),
    ({"eta_noise_seed_delta": 31337}, "eta_noise_seed_delta", "no ENSD"),
    ({"samples_format": "jpg"}, "samples_format", "PNG"),
    ({"randn_source": "GPU"}, "randn_source", "on the CPU"),
    ({"send_seed": "yes"}, "send_seed", "takes true or false, not a str"),
    ({"jpeg_quality": 9.5}, "jpeg_quality", "a whole number, not a float"),
    ({"control_net_max_models_num": 3}, "control_net_max_models_num", "not one of AUTOMATIC1111 1.10's settings"),
    ({"send_seed": False, "sd_hypernetwork": "anime"}, "sd_hypernetwork", "no hypernetworks"),  # and send_seed not set
])
def test_what_promptism_cannot_set_is_a_422_naming_it_and_nothing_is_set(sdapi, body, key, says):
    before = _get(sdapi, "/options").json()
    reply = _post(sdapi, "/options", body)
    assert reply.status_code == 422
    detail = reply.json()["detail"][0]
    assert detail["loc"] == ["body", key] and says in detail["msg"], detail
    assert _get(sdapi, "/options").json() == before  # nothing set, and the service answers on


def test_a_malformed_options_body_is_a_422_and_the_service_answers_on(sdapi):
    for content in (b"[1, 2]", b"{not json", b'"text"'):
        reply = httpx.post(f"{sdapi.url}/options", content=content, auth=sdapi.auth, timeout=60,
                           headers={"content-type": "application/json"})
        assert reply.status_code == 422 and reply.json()["detail"][0]["loc"][0] == "body"
    assert _get(sdapi, "/options").status_code == 200


# ------------------------------------------------------------------ the lists


def test_the_lists_show_the_installs_files_in_a1111s_shapes(sdapi, webui):
    assert _get(sdapi, "/loras").json() == [{"name": "inky", "alias": "inky", "metadata": {},
                                            "path": str(webui / "models" / "Lora" / "styles" / "inky.safetensors")}]
    assert _get(sdapi, "/embeddings").json() == {
        "loaded": {"tinystyle": {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": 32, "vectors": 3}},
        "skipped": {"oldstyle": {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": 0, "vectors": 0}}}
    vae = [{"model_name": "tinyvae.safetensors", "filename": str(webui / "models" / "VAE" / "tinyvae.safetensors")}]
    assert _get(sdapi, "/sd-vae").json() == vae and _get(sdapi, "/sd-modules").json() == vae
    assert _get(sdapi, "/prompt-styles").json() == [{"name": "Inked", "prompt": "{prompt}, ink", "negative_prompt": "blurry"}]
    flags = _get(sdapi, "/cmd-flags").json()
    assert flags["api"] is True and flags["lora_dir"] == str(webui / "models" / "Lora")
    assert flags["ckpt_dir"] == str(webui / "models" / "Stable-diffusion") and flags["api_auth"] is None


def test_the_lists_without_installs_and_the_fixed_ones(sdapi):
    assert [_get(sdapi, p).json() for p in ("/loras", "/sd-vae", "/sd-modules", "/prompt-styles")] == [[], [], [], []]
    assert _get(sdapi, "/embeddings").json() == {"loaded": {}, "skipped": {}}
    assert [u["name"] for u in _get(sdapi, "/upscalers").json()] == ["None", "Lanczos", "Nearest"]
    assert _get(sdapi, "/upscalers").json()[1] == {"name": "Lanczos", "model_name": None, "model_path": None,
                                                   "model_url": None, "scale": 4.0}
    assert [m["name"] for m in _get(sdapi, "/latent-upscale-modes").json()] == [
        "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
        "Latent (nearest-exact)"]
    # (the empty lists and the scripts: test_a1111_conformance)
    memory = _get(sdapi, "/memory").json()
    assert 0 < memory["ram"]["used"] < memory["ram"]["total"] and set(memory["cuda"]) >= {"error"} | (
        {"system"} if torch.cuda.is_available() else set())


def test_refresh_and_unload_checkpoint(api, sdapi, webui):
    for path in ("/refresh-checkpoints", "/refresh-loras", "/refresh-vae", "/reload-checkpoint"):
        assert _post(sdapi, path).json() == {}
    api.txt2img(prompt=PROMPT, seed=1, steps=2, width=32, height=32)
    assert loaded_models()  # the shapes model, warm
    assert _post(sdapi, "/unload-checkpoint").json() == {}
    assert loaded_models() == []
    again = api.txt2img(prompt=PROMPT, seed=1, steps=2, width=32, height=32)  # loads it again
    assert len(again.images) == 1 and loaded_models()


def test_skip_stops_the_running_a1111_job_with_its_finished_images(api, sdapi, jdir):
    done: dict = {}
    call = threading.Thread(target=lambda: done.update(result=api.txt2img(
        prompt=PROMPT, seed=1, steps=400, width=32, height=32, n_iter=8)))
    call.start()
    deadline = time.monotonic() + 300
    while api.get_progress()["progress"] <= 0:
        assert time.monotonic() < deadline and call.is_alive()
        time.sleep(0.02)
    assert _post(sdapi, "/skip").json() == {}
    call.join(120)
    result = done["result"]
    assert result.info["promptism_state"] == "cancelled" and len(result.images) < 8
    assert result.info["all_seeds"] == list(range(1, 1 + len(result.images)))
