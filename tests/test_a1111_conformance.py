"""AUTOMATIC1111's API as its clients see it, route by route, against promptism's service on uvicorn (a loopback
port, the token as HTTP basic auth, as A1111 clients send it): every route of A1111 1.10's ``/sdapi/v1`` that needs no
weights promptism lacks, with A1111's item shapes and defaults (the tables below, written from A1111's
``modules/api/models.py`` and ``api.py`` at v1.10), the options round-trip and a model switch, the schedule types,
masks, the hires fix, prompt editing, png-info of an A1111 PNG, interrogate, and an interrupted job's finished images
with a live preview in /progress on the way. The other A1111 test modules go deeper into one part each
(test_a1111: the mapping and the response; _options; _extras; _clients)."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, PngImagePlugin

from journal import Journal
from tests import test_a1111 as served
from tests import test_a1111_options as listed
from tests.import_samples import A1111, A1111_PROMPT, pixels
from workshop.runner.runs import load_run

PROMPT = served.PROMPT
serve_journal, service, app, sdapi, api = served.serve_journal, served.service, served.app, served.sdapi, served.api
webui = listed.webui
SMALL = {"seed": 3, "steps": 2, "width": 32, "height": 32, "override_settings": {"sd_model_checkpoint": "tiny"}}

#: A1111 1.10's response items, by route: the keys each item has (its pydantic model's fields).
ITEMS = {
    "/sd-models": {"title", "model_name", "hash", "sha256", "filename", "config"},
    "/samplers": {"name", "aliases", "options"},
    "/schedulers": {"name", "label", "aliases", "default_rho", "need_inner_model"},
    "/upscalers": {"name", "model_name", "model_path", "model_url", "scale"},
    "/latent-upscale-modes": {"name"},
    "/sd-vae": {"model_name", "filename"},
    "/sd-modules": {"model_name", "filename"},
    "/prompt-styles": {"name", "prompt", "negative_prompt"},
    "/loras": {"name", "alias", "path", "metadata"},  # (A1111's built-in Lora extension's route)
}
#: Lists promptism has nothing for (no hypernetworks, face restorers, Real-ESRGAN weights, A1111 extensions): A1111's
#: empty answer.
EMPTY = ("/hypernetworks", "/face-restorers", "/realesrgan-models", "/extensions")
#: The POST routes that act on the server and answer an empty body.
ACTIONS = ("/refresh-checkpoints", "/refresh-vae", "/refresh-embeddings", "/refresh-loras", "/reload-checkpoint",
           "/unload-checkpoint", "/interrupt", "/skip")
#: The keys of A1111's ``info`` (its Processed.js()), which clients read (webuiapi: info["seed"], all_seeds …).
INFO = {"prompt", "all_prompts", "negative_prompt", "all_negative_prompts", "seed", "all_seeds", "subseed",
        "all_subseeds", "subseed_strength", "width", "height", "sampler_name", "cfg_scale", "steps", "batch_size",
        "restore_faces", "face_restoration_model", "sd_model_name", "sd_model_hash", "sd_vae_name", "sd_vae_hash",
        "seed_resize_from_w", "seed_resize_from_h", "denoising_strength", "extra_generation_params",
        "index_of_first_image", "infotexts", "styles", "job_timestamp", "clip_skip", "is_using_inpainting_conditioning",
        "version"}
#: A1111 1.10's /progress state keys.
STATE = {"skipped", "interrupted", "job", "job_count", "job_timestamp", "job_no", "sampling_step", "sampling_steps"}
#: A1111 1.10's schedule types (its sd_schedulers), by API name.
SCHEDULE_TYPES = ("automatic", "uniform", "karras", "exponential", "polyexponential", "sgm_uniform", "kl_optimal",
                  "align_your_steps", "simple", "normal", "ddim", "beta")


def _get(sdapi, path: str, **params) -> httpx.Response:
    return httpx.get(f"{sdapi.url}{path}", auth=sdapi.auth, timeout=120, params=params)


def _post(sdapi, path: str, body=None) -> httpx.Response:
    return httpx.post(f"{sdapi.url}{path}", auth=sdapi.auth, timeout=300, json=body)


def _b64(image: Image.Image, info: PngImagePlugin.PngInfo | None = None) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _image(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def _refusal(reply: httpx.Response) -> dict:
    """A 422 in FastAPI's shape, as A1111 answers one: its first error."""
    assert reply.status_code == 422, reply.text
    return reply.json()["detail"][0]


# ------------------------------------------------------------------ every route, its shape


def test_every_route_answers_in_a1111s_shapes_and_only_with_the_token(sdapi, webui):
    for route, keys in ITEMS.items():
        reply = _get(sdapi, route)
        assert reply.status_code == 200, (route, reply.text)
        assert reply.json() and all(set(item) == keys for item in reply.json()), (route, reply.json()[:1])
    for route in EMPTY:
        assert _get(sdapi, route).json() == [], route
    embeddings = _get(sdapi, "/embeddings").json()
    assert set(embeddings) == {"loaded", "skipped"} and embeddings["loaded"]
    assert all(set(e) == {"step", "sd_checkpoint", "sd_checkpoint_name", "shape", "vectors"}
               for e in embeddings["loaded"].values())
    assert set(_get(sdapi, "/memory").json()) == {"ram", "cuda"}
    assert _get(sdapi, "/scripts").json() == {"txt2img": [], "img2img": ["sd upscale"]}  # (A1111's titles, lower case)
    (script,) = _get(sdapi, "/script-info").json()
    assert set(script) == {"name", "is_alwayson", "is_img2img", "args"} and script["name"] == "sd upscale"
    assert [a["label"] for a in script["args"]] == ["info", "Tile overlap", "Upscaler", "Scale Factor"]
    assert all(set(a) == {"label", "value", "minimum", "maximum", "step", "choices"} for a in script["args"])
    assert isinstance(_get(sdapi, "/cmd-flags").json(), dict)
    assert set(_get(sdapi, "/progress").json()) == {"progress", "eta_relative", "state", "current_image", "textinfo"}
    assert STATE <= set(_get(sdapi, "/progress").json()["state"])
    for route in ACTIONS:
        reply = _post(sdapi, route)
        assert reply.status_code == 200 and reply.json() in ({}, None), (route, reply.text)
    root = sdapi.url.removesuffix("/sdapi/v1")
    assert httpx.get(f"{root}/internal/ping", auth=sdapi.auth).json() == {}  # (at the root, as A1111's)
    assert httpx.get(f"{sdapi.url}/internal/ping", auth=sdapi.auth).status_code == 404
    gets = [*ITEMS, *EMPTY, "/embeddings", "/memory", "/scripts", "/script-info", "/cmd-flags", "/options", "/progress"]
    posts = [*ACTIONS, "/options", "/txt2img", "/img2img", "/png-info", "/interrogate", "/extra-single-image",
             "/extra-batch-images", "/create/embedding", "/train/embedding"]
    for method, route in [*(("GET", r) for r in gets), *(("POST", r) for r in posts)]:
        assert httpx.request(method, f"{sdapi.url}{route}", json={}).status_code == 401, route
        assert httpx.request(method, f"{sdapi.url}{route}", json={}, auth=("x", "wrong")).status_code == 401, route
    assert httpx.get(f"{root}/internal/ping").status_code == 401


def test_training_routes_are_a_422_that_says_so(sdapi):
    for route in ("/create/embedding", "/create/hypernetwork", "/train/embedding", "/train/hypernetwork"):
        refused = _refusal(_post(sdapi, route, {"name": "x"}))
        assert "does not create or train embeddings" in refused["msg"], route


def test_txt2img_answers_with_a1111s_defaults_parameters_and_info(sdapi, jdir):
    reply = _post(sdapi, "/txt2img", {"prompt": PROMPT, **SMALL})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"images", "parameters", "info"} and len(body["images"]) == 1
    image = _image(body["images"][0])
    assert image.size == (32, 32) and image.info == {}  # pixels only: the prompt travels in info, to its sender
    parameters = body["parameters"]  # the request as A1111 echoes it, its defaults filled in
    assert (parameters["batch_size"], parameters["n_iter"], parameters["negative_prompt"]) == (1, 1, "")
    assert (parameters["send_images"], parameters["save_images"], parameters["enable_hr"]) == (True, False, False)
    info = json.loads(body["info"])
    assert INFO <= set(info)
    assert (info["seed"], info["all_seeds"], info["subseed"], info["subseed_strength"]) == (3, [3], -1, 0)
    assert (info["width"], info["height"], info["steps"], info["batch_size"], info["clip_skip"]) == (32, 32, 2, 1, 1)
    assert info["sd_model_name"] == "tiny" and info["index_of_first_image"] == 0 and info["restore_faces"] is False
    assert info["infotexts"][0].startswith(f"{PROMPT}\nSteps: 2, Sampler: ") and "Seed: 3, Size: 32x32" in info["infotexts"][0]
    run = load_run(Journal.open(jdir), info["promptism_run"])
    assert run.image(run.done[0]).read_bytes() == base64.b64decode(body["images"][0])  # a run in the journal
    seedless = _post(sdapi, "/txt2img", {"prompt": PROMPT, **SMALL, "seed": -1}).json()
    assert json.loads(seedless["info"])["seed"] >= 0 and seedless["parameters"]["seed"] == -1  # a drawn seed, said


# ------------------------------------------------------------------ options, the model switch


def test_options_round_trip_and_switch_the_model_later_requests_use(sdapi, jdir):
    private = str(jdir.parent / "my models" / "secret-project.safetensors")  # (a model of its own, by its path)
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f"model = {json.dumps(private)}\n", encoding="utf-8")
    options = _get(sdapi, "/options")
    assert options.json()["sd_model_checkpoint"] == "secret-project.safetensors" and "my models" not in options.text
    Path(os.environ["PROMPTISM_CONFIG"]).write_text("", encoding="utf-8")
    options = _get(sdapi, "/options").json()
    assert options["sd_model_checkpoint"] == "shapes" and options["CLIP_stop_at_last_layers"] == 1
    assert _post(sdapi, "/options", {"sd_model_checkpoint": "tiny", "CLIP_stop_at_last_layers": 2,
                                     "jpeg_quality": 93}).status_code == 200
    options = _get(sdapi, "/options").json()
    assert (options["sd_model_checkpoint"], options["CLIP_stop_at_last_layers"], options["jpeg_quality"]) == ("tiny", 2, 93)
    made = _post(sdapi, "/txt2img", {"prompt": PROMPT, "seed": 1, "steps": 2, "width": 32, "height": 32}).json()
    info = json.loads(made["info"])
    assert (info["sd_model_name"], info["clip_skip"]) == ("tiny", 2)  # the switch took: no override_settings sent
    assert load_run(Journal.open(jdir), info["promptism_run"]).record.model.id == "tiny"
    refused = _refusal(_post(sdapi, "/options", {"sd_model_checkpoint": "no-such-model", "jpeg_quality": 50}))
    assert refused["loc"][-1] == "sd_model_checkpoint"
    assert _get(sdapi, "/options").json()["jpeg_quality"] == 93  # nothing set by a refused POST


# ------------------------------------------------------------------ schedule types


def test_each_a1111_schedule_type_runs_or_is_a_422_naming_those_that_do(sdapi):
    made = {item["name"] for item in _get(sdapi, "/schedulers").json()}
    for schedule in SCHEDULE_TYPES:
        reply = _post(sdapi, "/txt2img", {"prompt": PROMPT, **SMALL, "sampler_name": "Euler", "scheduler": schedule})
        if schedule in made:
            assert reply.status_code == 200, (schedule, reply.text)
            said = json.loads(reply.json()["info"])["sampler_name"]
            assert said.startswith("Euler") and (schedule in ("automatic", "uniform", "normal") or said != "Euler")
        else:
            refused = _refusal(reply)
            assert refused["loc"] == ["body", "scheduler"] and "karras" in refused["msg"], (schedule, refused)
    assert {"automatic", "karras", "exponential", "sgm_uniform", "align_your_steps", "normal", "simple", "beta"} <= made


# ------------------------------------------------------------------ masks, hires fix, prompt editing


def test_a_mask_repaints_its_white_keeps_the_rest_inverted_the_other_way_and_only_masked_by_default(sdapi):
    init = pixels((32, 32), seed=4)
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 16, 32))  # the left half painted again
    body = {"prompt": PROMPT, **SMALL, "init_images": [_b64(init)], "mask": _b64(mask), "mask_blur": 0,
            "inpaint_full_res": False, "inpainting_fill": 1, "denoising_strength": 0.9}
    before = np.asarray(init.convert("RGB"), dtype=int)
    for invert, kept, painted in ((0, np.s_[:, 17:], np.s_[:, :15]), (1, np.s_[:, :15], np.s_[:, 17:])):
        reply = _post(sdapi, "/img2img", {**body, "inpainting_mask_invert": invert})
        assert reply.status_code == 200, reply.text
        after = np.asarray(_image(reply.json()["images"][0]).convert("RGB"), dtype=int)
        assert (after[kept] == before[kept]).all() and (after[painted] != before[painted]).any(), invert
    small = Image.new("L", (48, 40), 0)
    small.paste(255, (4, 4, 12, 12))
    wide = pixels((48, 40), seed=5)
    only = _post(sdapi, "/img2img", {"prompt": PROMPT, **SMALL, "init_images": [_b64(wide)], "mask": _b64(small),
                                     "denoising_strength": 0.9})  # A1111's defaults: only masked, fill, blur 4
    assert only.status_code == 200, only.text
    after = np.asarray(_image(only.json()["images"][0]).convert("RGB"), dtype=int)
    before = np.asarray(wide.convert("RGB"), dtype=int)
    assert after.shape == before.shape  # the init image's size, not width × height
    assert (after[20:, 20:] == before[20:, 20:]).all() and (after[6:10, 6:10] != before[6:10, 6:10]).any()


def test_enable_hr_answers_the_second_pass_size_and_a1111s_hires_keys(sdapi):
    reply = _post(sdapi, "/txt2img", {"prompt": PROMPT, **SMALL, "enable_hr": True, "hr_scale": 1.5,
                                      "hr_upscaler": "Latent", "denoising_strength": 0.6, "hr_second_pass_steps": 2})
    assert reply.status_code == 200, reply.text
    assert _image(reply.json()["images"][0]).size == (48, 48)
    info = json.loads(reply.json()["info"])
    assert (info["width"], info["height"], info["denoising_strength"]) == (32, 32, 0.6)  # A1111's: the first pass's
    assert all(key in info["infotexts"][0] for key in ("Hires upscale: 1.5", "Hires steps: 2", "Hires upscaler: Latent"))


def test_prompt_editing_and_alternation_change_the_picture_and_a_bad_edit_is_a_422(sdapi):
    def made(prompt: str) -> bytes:
        reply = _post(sdapi, "/txt2img", {**SMALL, "prompt": prompt, "steps": 4})
        assert reply.status_code == 200, reply.text
        return base64.b64decode(reply.json()["images"][0])

    plain, edited = made("a red circle"), made("a [red:blue:2] circle")
    assert edited != plain and made("a [red:blue:4] circle") == plain  # switched at step 2; at the last: never
    assert made("a [red|blue] circle") not in (plain, made("a blue circle"))
    refused = _refusal(_post(sdapi, "/txt2img", {**SMALL, "prompt": "a [red:blue] circle"}))
    assert refused["loc"] == ["body", "prompt"] and "[red:blue]" not in refused["msg"]  # (the prompt is not sent back)


# ------------------------------------------------------------------ png-info, interrogate


def test_png_info_of_an_a1111_png_gives_its_infotext_and_parsed_parameters(sdapi):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    reply = _post(sdapi, "/png-info", {"image": "data:image/png;base64," + _b64(pixels((16, 16)), info)})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"info", "items", "parameters"} and body["info"] == A1111
    parameters = body["parameters"]
    assert parameters["Steps"] == "20" and parameters["Seed"] == "1234" and parameters["Prompt"] == A1111_PROMPT
    plain = _post(sdapi, "/png-info", {"image": _b64(pixels((16, 16)))}).json()
    assert plain["info"] == "" and plain["parameters"]["Prompt"] == "" and "Steps" not in plain["parameters"]
    # (A1111 parses "" too: its defaults — Clip skip 1 … — and no generation values)


def test_interrogate_with_clip_gives_a_caption_and_another_model_is_refused(sdapi):
    reply = _post(sdapi, "/interrogate", {"image": _b64(pixels((32, 32))), "model": "clip"})
    assert reply.status_code == 200, reply.text
    assert set(reply.json()) == {"caption"} and reply.json()["caption"].strip()
    refused = _post(sdapi, "/interrogate", {"image": _b64(pixels((32, 32))), "model": "blip2"})
    assert refused.status_code in (404, 422) and "clip" in refused.text


# ------------------------------------------------------------------ interrupt, progress


def test_interrupt_returns_the_finished_images_and_progress_showed_a_preview_on_the_way(sdapi, jdir):
    done: dict = {}
    call = threading.Thread(target=lambda: done.update(reply=_post(sdapi, "/txt2img", {
        "prompt": PROMPT, **SMALL, "steps": 300, "n_iter": 6})))
    call.start()
    deadline = time.monotonic() + 300
    while not ((progress := _get(sdapi, "/progress").json())["current_image"] and progress["progress"] > 1 / 6):
        # (a live preview, and the first image done)
        assert time.monotonic() < deadline and call.is_alive()
        time.sleep(0.05)
    assert _image(progress["current_image"]).size == (32, 32) and 0 < progress["progress"] < 1
    assert progress["state"]["sampling_steps"] == 300 and progress["state"]["job_count"] == 1
    assert _get(sdapi, "/progress", skip_current_image="true").json()["current_image"] is None
    assert _post(sdapi, "/interrupt").status_code == 200
    call.join(300)
    body = done["reply"].json()
    info = json.loads(body["info"])
    assert 1 <= len(body["images"]) < 6 and info["all_seeds"] == [3 + i for i in range(len(body["images"]))]
    assert len(info["infotexts"]) == len(body["images"])
    assert load_run(Journal.open(jdir), info["promptism_run"]).state == "cancelled"
    idle = _get(sdapi, "/progress").json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0 and idle["current_image"] is None


def test_routes_that_import_the_runner_wait_for_the_services_warm_up_and_progress_does_not(tmp_path):
    """The worker imports torch and diffusers as the service starts; a route importing the runner meanwhile on
    another thread found diffusers half-imported (its lazy module is not thread-safe): an ImportError, a 500."""
    from fastapi.testclient import TestClient

    from workshop.service.executor import LocalExecutor
    from workshop.service.server import create_app
    from workshop.service.service import Service

    gate = threading.Event()

    class Slow(LocalExecutor):
        def warm_up(self) -> str:
            gate.wait(120)
            return super().warm_up()

    slow = Service(tmp_path / "queue.json", journal=tmp_path / "j", executor=Slow())
    slow.start()
    try:
        http = TestClient(create_app(slow, token=served.TOKEN), headers={"Authorization": f"Bearer {served.TOKEN}"})
        answered: list[int] = []
        asked = threading.Thread(target=lambda: answered.append(http.get("/sdapi/v1/sd-models").status_code))
        asked.start()
        assert http.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0  # not held up by the warm-up
        asked.join(1)
        assert asked.is_alive() and not answered  # waiting for the warm-up
        gate.set()
        asked.join(120)
        assert answered == [200]
    finally:
        gate.set()
        slow.stop()


def test_infotexts_name_the_sampler_and_schedule_type_as_a1111_writes_them_and_read_back_to_the_same(sdapi):
    """A1111 1.10 writes "Sampler: DPM++ 2M, Schedule type: Karras" (Automatic where it was asked for: Karras for
    DPM++ 2M), so promptism's plain DPM++ 2M, on its own spacing, says Uniform; plain Euler a, Automatic (the same)."""
    from journal.metadata import read_generation_info

    for sampler_name, scheduler, fields in (("DPM++ 2M", "karras", "Sampler: DPM++ 2M, Schedule type: Karras, "),
                                            ("DPM++ 2M", "uniform", "Sampler: DPM++ 2M, Schedule type: Uniform, "),
                                            ("Euler a", "karras", "Sampler: Euler a, Schedule type: Karras, "),
                                            ("Euler a", "normal", "Sampler: Euler a, Schedule type: Automatic, ")):
        reply = _post(sdapi, "/txt2img", {"prompt": PROMPT, **SMALL, "sampler_name": sampler_name,
                                          "scheduler": scheduler})
        info = json.loads(reply.json()["info"])
        assert fields in info["infotexts"][0], (sampler_name, scheduler, info["infotexts"][0])
        stamped = PngImagePlugin.PngInfo()
        stamped.add_text("parameters", info["infotexts"][0])
        buffer = io.BytesIO()
        pixels((16, 16)).save(buffer, format="PNG", pnginfo=stamped)
        read = read_generation_info(Image.open(io.BytesIO(buffer.getvalue())))
        assert read.params["sampler"] == info["sampler_name"], (read.params, info["sampler_name"])  # the same again


def test_a_warm_up_that_fails_fails_each_job_in_one_line_and_the_service_serves_on(tmp_path):
    """An executor that cannot get the runner ready (a Ray cluster that lacks what it needs, say) ended the worker
    thread: every A1111 request then waited for its job for ever."""
    from fastapi.testclient import TestClient

    from workshop.service.executor import LocalExecutor
    from workshop.service.server import create_app
    from workshop.service.service import Service

    class Broken(LocalExecutor):
        def warm_up(self) -> str:
            raise RuntimeError("no device of the kind asked for")

    broken = Service(tmp_path / "queue.json", journal=tmp_path / "j", executor=Broken())
    broken.start()
    try:
        http = TestClient(create_app(broken, token=served.TOKEN), headers={"Authorization": f"Bearer {served.TOKEN}"})
        for _ in range(2):  # the worker lives on: each job is answered
            reply = http.post("/sdapi/v1/txt2img", json={"prompt": PROMPT, **SMALL})
            assert reply.status_code == 500, reply.text
            assert "could not get its runner ready" in reply.text and "no device" in reply.text
        assert http.get("/sdapi/v1/progress").status_code == 200
    finally:
        broken.stop()
