"""AUTOMATIC1111's API on the service: the request → job mapping and the run → response, with real runs of the
built-in shapes model; and the routes through the real A1111 client library (webuiapi) against uvicorn on a
loopback port.
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
import webuiapi
from fastapi import FastAPI
from PIL import Image

from journal import Journal
from workshop.compose.grid import SEED_MAX, build_grid
from workshop.compose.spec import spec_from
from workshop.runner.runs import list_runs, load_run
from workshop.runner.execution import execute
from tests.helpers import declared_png
from workshop.service import a1111
from workshop.contract import GivenOptions, Spec
from workshop.runner.options import resolve
from workshop.samplers import PLAIN, SAMPLERS, SCHEDULES, schedule_label
from workshop.settings import Settings
from workshop.service.server import create_app
from workshop.service.service import Service

PROMPT = "a red circle on a blue background"
TOKEN = "a1111-test-token"


@pytest.fixture
def serve_journal(jdir) -> Path | None:
    """The service's ``serve --journal``."""
    return jdir


@pytest.fixture
def service(serve_journal, tmp_path):
    service = Service(tmp_path / "queue.json", journal=serve_journal)
    service.start()
    assert service.wait_warm(300)  # (a test that imports diffusers itself must not race the worker's import of it)
    yield service
    service.stop()


@pytest.fixture
def app(service) -> FastAPI:
    return create_app(service, token=TOKEN)


@dataclass(frozen=True)
class Sdapi:
    url: str  # http://127.0.0.1:PORT/sdapi/v1
    port: int
    auth: tuple[str, str]  # HTTP basic auth with the service's token as password, as A1111 clients send it


@pytest.fixture
def sdapi(app):
    """uvicorn serving ``app`` on a free loopback port, in a thread stopped at teardown."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Sdapi(f"http://127.0.0.1:{port}/sdapi/v1", port, ("webuiapi", TOKEN))
    server.should_exit = True
    thread.join(20)
    assert not thread.is_alive()


@pytest.fixture
def api(sdapi) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(host="127.0.0.1", port=sdapi.port, username=sdapi.auth[0], password=sdapi.auth[1])


def _png(color=(200, 30, 30), size=(32, 32)) -> Image.Image:
    return Image.new("RGB", size, color)


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# ------------------------------------------------------------------ the mapping, without a service


def test_seeds_follow_a1111s_rule_and_random_ones_leave_room():
    assert a1111.seeds_for(7, 4) == [7, 8, 9, 10]
    drawn = [a1111.seeds_for(-1, 64) for _ in range(50)]
    assert all(s == list(range(s[0], s[0] + 64)) and 0 <= s[0] and s[-1] <= SEED_MAX for s in drawn)
    assert len({s[0] for s in drawn}) > 1


def test_a_request_maps_to_a_plain_grid_job_with_a1111s_batches(jdir):
    req = a1111.Txt2ImgRequest(prompt=PROMPT, negative_prompt="blurry", seed=5, steps=3, cfg_scale=4.5, width=32,
                               height=48, batch_size=2, n_iter=3, override_settings={"sd_model_checkpoint": "tiny"})
    mapped = a1111.map_request(req, jdir, Settings(model="shapes"))
    assert mapped.seeds == [5, 6, 7, 8, 9, 10]
    assert mapped.job.kind == "grid" and mapped.job.journal == str(jdir)
    assert mapped.job.spec == Spec(prompt=PROMPT, negative="blurry", seeds=[5, 6, 7, 8, 9, 10], max_cells=6)
    assert mapped.job.options == GivenOptions(model="tiny", steps=3, guidance=4.5, max_batch=2, size=(32, 48),
                                              preview_every=a1111.PREVIEW_EVERY)
    assert not jdir.exists()  # txt2img writes nothing before the job runs
    default = a1111.map_request(a1111.Txt2ImgRequest(prompt=PROMPT), jdir, Settings(model="shapes")).job.options
    assert default == GivenOptions(max_batch=1, preview_every=a1111.PREVIEW_EVERY)  # the settings' model and defaults


def test_a_mapped_request_runs_and_answers_as_a1111(jdir):
    """The mapping and the response around a real run, as the service will run it."""
    req = a1111.Txt2ImgRequest(prompt=PROMPT, seed=11, steps=2, width=32, height=32, batch_size=2, n_iter=2,
                               sampler_name="Euler a", subseed_strength=0.2, override_settings={"eta_noise_seed_delta": 31337})
    mapped = a1111.map_request(req, jdir, Settings(model="shapes"))
    run = execute(build_grid(spec_from(mapped.job.spec)), resolve(mapped.job.spec, mapped.job.options, Settings()),
                  Journal.open(jdir, create=True))
    assert run.record.layout == [[0, 1], [2, 3]]  # batch_size images a pipeline call, n_iter calls
    response = a1111.build_response(req, run, mapped.seeds)
    images = [base64.b64decode(i) for i in response.images]
    assert images == [run.image(c).read_bytes() for c in run.done]  # the run's own pixels-only PNGs, in seed order
    assert all(Image.open(io.BytesIO(i)).info == {} and b"tEXt" not in i and b"iTXt" not in i for i in images)
    info = json.loads(response.info)
    assert info["seed"] == 11 and info["all_seeds"] == [11, 12, 13, 14] and info["all_prompts"] == [PROMPT] * 4
    assert (info["steps"], info["width"], info["height"], info["cfg_scale"]) == (2, 32, 32, 2.0)  # shapes' guidance
    params = run.record.params
    assert (params.sampler, params.scheduler) == ("Euler a", "EulerAncestralDiscreteScheduler")
    assert info["sampler_name"] == "Euler a" and info["promptism_run"] == run.id
    notes = info["extra_generation_params"]["Not applied"]
    assert "sampler" not in notes and "subseed + i per image" in notes  # (A1111 keeps the seed, steps the subseed)
    assert info["subseed_strength"] == 0.2 and info["all_subseeds"] == [params.variation_seed] * 4
    assert 0 <= info["subseed"] == params.variation_seed and "Variation seed strength: 0.2" in info["infotexts"][0]
    assert "override_settings.eta_noise_seed_delta" in notes
    assert info["infotexts"][1].startswith(PROMPT + "\nSteps: 2, Sampler: Euler a, ") and "Seed: 12" in info["infotexts"][1]
    assert response.parameters["seed"] == 11 and response.parameters["sampler_name"] == "Euler a"


def test_enable_hr_makes_the_hires_fix_and_says_it_as_a1111_does(jdir):
    req = a1111.Txt2ImgRequest(prompt=PROMPT, seed=3, steps=2, width=32, height=32, enable_hr=True, hr_scale=2,
                               hr_second_pass_steps=2, denoising_strength=0.5, hr_upscaler="Lanczos", hr_sampler_name="",
                               hr_prompt="", override_settings={"sd_model_checkpoint": "tiny"})
    mapped = a1111.map_request(req, jdir, Settings(model="shapes"))
    options = mapped.job.options
    assert (options.hires, options.hires_steps, options.hires_strength, options.hires_upscaler) == (2, 2, 0.5, "Lanczos")
    run = execute(build_grid(spec_from(mapped.job.spec)), resolve(mapped.job.spec, options, Settings()),
                  Journal.open(jdir, create=True))
    response = a1111.build_response(req, run, mapped.seeds)
    assert Image.open(io.BytesIO(base64.b64decode(response.images[0]))).size == (64, 64)  # the second pass's size
    info = json.loads(response.info)
    assert (info["width"], info["height"], info["denoising_strength"]) == (32, 32, 0.5)  # A1111: the first pass's size
    assert all(f in info["infotexts"][0] for f in ("Hires upscale: 2", "Hires steps: 2", "Hires upscaler: Lanczos",
                                                   "Denoising strength: 0.5"))
    by_size = a1111.map_request(req.model_copy(update={"hr_resize_x": 96, "hr_resize_y": 96}), jdir, Settings())
    assert by_size.job.options.hires == 3  # a target of the same proportions: its scale
    with pytest.raises(a1111.BadValue) as refused:  # A1111 crops to another shape; promptism scales
        a1111.map_request(req.model_copy(update={"hr_resize_x": 96, "hr_resize_y": 64}), jdir, Settings())
    assert refused.value.loc == ["hr_resize_x"] and "A1111 crops it" in str(refused.value)
    with pytest.raises(a1111.BadValue) as refused:
        a1111.map_request(req.model_copy(update={"hr_upscaler": "R-ESRGAN 4x+"}), jdir, Settings())
    assert "R-ESRGAN 4x+" in str(refused.value) and "Lanczos" in str(refused.value)


def test_tiling_sd_vae_and_a_variation_seed_are_applied_and_said_as_a1111_says_them(jdir, tmp_path):
    from tests.helpers import tiny_pipeline
    from tests.ldm_export import write_vae_file

    write_vae_file(tiny_pipeline().vae, tmp_path / "webui" / "models" / "VAE" / "tinyvae.safetensors", change=0.02)
    settings = Settings(a1111=str(tmp_path / "webui"))
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{tmp_path / "webui"}"\n', encoding="utf-8")
    req = a1111.Txt2ImgRequest(prompt=PROMPT, seed=3, steps=2, width=32, height=32, tiling=True, subseed=9,
                               subseed_strength=0.5, override_settings={"sd_model_checkpoint": "tiny", "sd_vae": "tinyvae"})
    mapped = a1111.map_request(req, jdir, settings)
    assert (mapped.job.options.tiling, mapped.job.options.vae, mapped.job.options.variation_seed) == (True, "tinyvae", 9)
    run = execute(build_grid(spec_from(mapped.job.spec)), resolve(mapped.job.spec, mapped.job.options, settings),
                  Journal.open(jdir, create=True))
    info = json.loads(a1111.build_response(req, run, mapped.seeds).info)
    assert (info["subseed"], info["subseed_strength"], info["sd_vae_name"]) == (9, 0.5, "tinyvae.safetensors")
    assert "Not applied" not in info["extra_generation_params"]
    assert all(f in info["infotexts"][0] for f in ("VAE: tinyvae.safetensors", "Variation seed: 9", "Tiling: True"))
    with pytest.raises(a1111.BadValue) as refused:
        a1111.map_request(req.model_copy(update={"override_settings": {"sd_vae": "nosuch"}}), jdir, settings)
    assert refused.value.loc == ["override_settings", "sd_vae"]


def test_clip_skip_in_override_settings_is_applied_and_said_as_a1111_says_it(jdir):
    req = a1111.Txt2ImgRequest(prompt=PROMPT, seed=3, steps=2, width=32, height=32,
                               override_settings={"sd_model_checkpoint": "tiny", "CLIP_stop_at_last_layers": 2})
    mapped = a1111.map_request(req, jdir, Settings())
    assert mapped.job.options.clip_skip == 2
    run = execute(build_grid(spec_from(mapped.job.spec)), resolve(mapped.job.spec, mapped.job.options, Settings()),
                  Journal.open(jdir, create=True))
    info = json.loads(a1111.build_response(req, run, mapped.seeds).info)
    assert run.record.params.clip_skip == 2 and info["clip_skip"] == 2 and "Clip skip: 2" in info["infotexts"][0]
    assert "Not applied" not in info["extra_generation_params"]
    with pytest.raises(a1111.BadValue) as refused:
        a1111.job_request(req.model_copy(update={"override_settings": {"CLIP_stop_at_last_layers": "two"}}), jdir, seeds=[3])
    assert refused.value.loc == ["override_settings", "CLIP_stop_at_last_layers"]


@pytest.mark.parametrize("fields, setting, sampler", [
    ({"sampler_name": "Euler a", "scheduler": "automatic"}, None, "Euler a"),  # webuiapi's defaults
    ({"sampler_name": "DPM++ 2M", "scheduler": "Karras"}, None, "DPM++ 2M Karras"),  # A1111 1.9+
    ({"sampler_name": "DPM++ 2M Karras"}, None, "DPM++ 2M Karras"),  # before 1.9
    ({"sampler_name": "DPM++ 2M Karras", "scheduler": "karras"}, None, "DPM++ 2M Karras"),
    ({"sampler_index": "dpm++ sde", "scheduler": "Uniform"}, None, "DPM++ SDE"),
    ({}, None, None), ({"sampler_name": "Default"}, None, None),  # the model's own scheduler
    ({}, "UniPC", "UniPC"), ({"sampler_name": "automatic"}, "UniPC", "UniPC"),  # the sampler setting
    ({"scheduler": "Karras"}, "DPM++ 2M", "DPM++ 2M Karras"), ({"sampler_name": "Euler"}, "UniPC", "Euler"),
    ({"sampler_name": "DPM++ 2M", "scheduler": "automatic"}, None, "DPM++ 2M Karras"),  # A1111 1.9+'s own default
    ({"scheduler": "automatic"}, "DPM++ 2M", "DPM++ 2M"),  # the setting's sampler is promptism's name: as it is
    ({"sampler_name": "Euler a", "scheduler": "normal"}, None, "Euler a"),  # SillyTavern's
    ({"sampler_name": "Euler a", "scheduler": "sgm_uniform"}, None, "Euler a SGM Uniform"),
    ({"sampler_name": "Euler a", "scheduler": "karras"}, None, "Euler a Karras"),  # SillyTavern's and Open WebUI's pick
    ({"sampler_name": "Euler a", "scheduler": "align_your_steps"}, None, "Euler a Align Your Steps"),
    ({"sampler_name": "DPM++ 2M", "scheduler": "align_your_steps"}, None, "DPM++ 2M Align Your Steps"),
    ({"sampler_name": "Euler", "scheduler": "Beta"}, None, "Euler Beta"),
    ({"sampler_name": "DPM++ 2M", "scheduler": "SGM Uniform"}, None, "DPM++ 2M SGM Uniform"),  # by its label
    ({"sampler_name": "Euler", "scheduler": "SGMUniform"}, None, "Euler SGM Uniform"),  # A1111's alias
    ({"sampler_name": "UniPC", "scheduler": "exponential"}, None, "UniPC"),  # A1111's timestep samplers take no type
    ({"sampler_name": "DDIM", "scheduler": "karras"}, None, "DDIM"),  # (SillyTavern users pick either)
    ({"sampler_name": "ddim", "scheduler": "karras"}, None, "DDIM"),  # (in any case: said as well)
    ({"sampler_name": "PLMS", "scheduler": "align_your_steps"}, None, "PLMS"),
    ({"sampler_name": "DPM2 a", "scheduler": "polyexponential"}, None, "DPM2 a Polyexponential"),
    ({"sampler_name": "LMS", "scheduler": "simple"}, None, "LMS Simple"),
    ({"sampler_name": "DDIM", "scheduler": "uniform"}, None, "DDIM"),
    ({"scheduler": "sgm_uniform"}, "Euler a", "Euler a SGM Uniform"),  # the setting's sampler, this schedule
])
def test_sampler_name_and_scheduler_are_the_runs_sampler(jdir, fields, setting, sampler):
    req = a1111.Txt2ImgRequest(prompt=PROMPT, **fields)
    assert a1111.map_request(req, jdir, Settings(model="tiny", sampler=setting)).job.options.sampler == sampler
    ignored = [n for n in a1111.not_applied(req, sampler) if n.startswith("scheduler ")]
    assert bool(ignored) == (sampler in a1111.TIMESTEP_SAMPLERS and fields.get("scheduler") not in (None, "uniform"))


@pytest.mark.parametrize("fields, loc, says", [
    ({"sampler_name": "Euler b"}, ["sampler_name"], "unknown sampler 'Euler b': use one of Euler, Euler a"),
    ({"sampler_name": "DPM++ 2S a", "scheduler": "Karras"}, ["sampler_name"], "the nearest are DPM++ SDE and DPM++ 2M SDE"),
    ({"sampler_name": "LCM", "scheduler": "karras"}, ["scheduler"], "LCM (LCMScheduler) takes the schedule types"),
    ({"sampler_name": "Euler", "scheduler": "kl_optimal"}, ["scheduler"], "promptism does not make KL Optimal"),
    ({"sampler_name": "Euler", "scheduler": "cosine"}, ["scheduler"], "unknown scheduler 'cosine': promptism's samplers "
     "take automatic, uniform, karras, exponential, polyexponential, sgm_uniform, align_your_steps, simple, normal, beta"),
    ({"scheduler": "Karras"}, ["scheduler"], "scheduler 'Karras' goes with a sampler"),
])
def test_an_unknown_sampler_is_a_422_naming_the_valid_ones(jdir, fields, loc, says):
    with pytest.raises(a1111.BadValue) as caught:
        a1111.map_request(a1111.Txt2ImgRequest(prompt=PROMPT, **fields), jdir, Settings(model="tiny"))
    assert caught.value.loc == loc and says in str(caught.value)
    assert not jdir.exists()


def test_an_init_image_is_stored_once_pixels_only_in_the_journals_scratch(jdir):
    image = _png()
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=_text_chunk("parameters", PROMPT))
    data = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    req = a1111.Img2ImgRequest(prompt=PROMPT, init_images=[data], denoising_strength=0.5, steps=4)
    first = a1111.map_request(req, jdir, Settings(model="shapes"))
    path = Path(first.job.options.init_image)
    assert path.parent == Journal.open(jdir).scratch / a1111.INPUTS and path.name.endswith(".png")
    assert Image.open(path).info == {} and PROMPT.encode() not in path.read_bytes()
    assert first.job.options.strength == 0.5
    assert a1111.map_request(req, jdir, Settings(model="shapes")).job.options.init_image == str(path)
    assert len(list(path.parent.iterdir())) == 1


def _text_chunk(key: str, value: str):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


@pytest.mark.parametrize("values, loc, says", [
    ({"prompt": "a {red|blue} circle"}, ["body", "prompt"], "dynamic-prompt syntax"),
    ({"override_settings": {"sd_model_checkpoint": "no-such-model"}}, ["body", "override_settings",
                                                                          "sd_model_checkpoint"], "unknown model"),
    ({"override_settings": {"sd_model_checkpoint": "vqgan-clip"}}, ["body", "override_settings",
                                                                       "sd_model_checkpoint"], "CLIP-guided"),
    ({"width": 64}, ["body", "height"], "give width and height together"),  # (it was made 64x64, silently)
    ({"height": 64}, ["body", "width"], "give width and height together"),
])
def test_what_the_runner_would_refuse_is_a_422_before_anything_is_written(jdir, values, loc, says):
    with pytest.raises(a1111.BadValue) as caught:
        a1111.map_request(a1111.Txt2ImgRequest(**{"prompt": PROMPT, **values}), jdir, Settings(model="shapes"))
    body = json.loads(caught.value.response().body)
    assert body["detail"][0]["loc"] == loc and says in body["detail"][0]["msg"]
    assert not jdir.exists()


@pytest.mark.parametrize("image, says", [
    ("not base64!", "not base64"),
    (base64.b64encode(b"plain text").decode(), "init_images[0] is not an image"),
    (_b64(_png(size=(4, 4))), "at least 8x8"),
    ("bomb", "over the limit of"),
])
def test_a_bad_init_image_is_a_422_naming_the_field(jdir, tmp_path, image, says):
    if image == "bomb":  # declares 40,000 × 40,000 pixels in a few bytes: refused before decoding
        image = base64.b64encode(declared_png(tmp_path / "bomb.png", 40_000, 40_000).read_bytes()).decode()
    with pytest.raises(a1111.BadValue) as caught:
        a1111.map_request(a1111.Img2ImgRequest(prompt=PROMPT, init_images=[image]), jdir, Settings(model="shapes"))
    assert caught.value.loc == ["init_images[0]"] and says in str(caught.value)
    assert not jdir.exists()


# ------------------------------------------------------------------ the routes, through webuiapi


def test_webuiapi_txt2img_makes_a_run_in_the_services_journal(api, jdir):
    result = api.txt2img(prompt=PROMPT, seed=42, steps=3, width=32, height=32, batch_size=2)
    assert [im.size for im in result.images] == [(32, 32), (32, 32)]
    assert result.info["seed"] == 42 and result.info["all_seeds"] == [42, 43]
    assert result.info["sampler_name"] == "Euler a" and not result.info["extra_generation_params"]  # webuiapi's default
    runs = list_runs(Journal.open(jdir))
    assert runs[0].record.params.sampler == "Euler a"
    assert [r.id for r in runs] == [result.info["promptism_run"]]
    assert [c.seed for c in runs[0].done] == [42, 43] and runs[0].state == "finished"
    assert all(im.info == {} for im in result.images)  # pixels only: no A1111 parameters chunk


def test_webuiapi_txt2img_with_a_schedule_type_runs_that_schedule(api, jdir):
    made = [api.txt2img(prompt=PROMPT, seed=5, steps=3, width=32, height=32, sampler_name="DPM++ 2M", scheduler=schedule)
            for schedule in ("normal", "align_your_steps")]
    assert [m.info["sampler_name"] for m in made] == ["DPM++ 2M", "DPM++ 2M Align Your Steps"]
    assert "Sampler: DPM++ 2M, Schedule type: Align Your Steps," in made[1].info["infotexts"][0]
    assert made[0].images[0].tobytes() != made[1].images[0].tobytes()


def test_euler_a_with_karras_as_sillytavern_and_open_webui_send_it_runs_euler_a_on_karras_sigmas(api, jdir):
    made = [api.txt2img(prompt=PROMPT, seed=5, steps=3, width=32, height=32, sampler_name="Euler a", scheduler=schedule)
            for schedule in ("normal", "karras", "karras")]
    assert [m.info["sampler_name"] for m in made] == ["Euler a", "Euler a Karras", "Euler a Karras"]
    assert "Sampler: Euler a, Schedule type: Karras," in made[1].info["infotexts"][0]
    assert "Not applied" not in made[1].info["extra_generation_params"]
    assert made[0].images[0].tobytes() != made[1].images[0].tobytes() == made[2].images[0].tobytes()


def test_webuiapi_inpainting_with_its_defaults_paints_only_the_masked_area(api, jdir):
    """webuiapi's inpainting body as it sends it (inpaint_full_res true, padding 0, fill 0, mask blur 4): A1111's
    "only masked" — the mask's box painted at width × height, the image the init image's size, the rest kept."""
    init = Image.new("RGB", (96, 64), (40, 90, 200))
    init.paste((230, 200, 20), (40, 24, 56, 40))
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (40, 24, 56, 40))
    result = api.img2img(images=[init], mask_image=mask, prompt=PROMPT, seed=4, steps=3, width=32, height=32,
                         override_settings={"sd_model_checkpoint": "tiny"})
    out = np.asarray(result.images[0].convert("RGB"), dtype=int)
    changed = (out != np.asarray(init, dtype=int)).any(-1)
    assert result.images[0].size == (96, 64) and changed[24:40, 40:56].any()
    ys, xs = np.nonzero(changed)  # (the mask blurred by 4 px: within its box, padding 0)
    assert 30 <= xs.min() and xs.max() < 66 and 14 <= ys.min() and ys.max() < 50
    assert "Inpaint area: Only masked, Masked area padding: 0, Masked content: fill" in result.info["infotexts"][0]
    p = load_run(Journal.open(jdir), result.info["promptism_run"]).record.params
    assert (p.mask_area, p.mask_padding, p.mask_fill, p.mask_blur) == ("masked", 0, "fill", 4)


def test_webuiapi_random_seed_is_reported(api, jdir):
    result = api.txt2img(prompt=PROMPT, steps=2, width=32, height=32)  # webuiapi sends seed -1
    seed = result.info["seed"]
    assert 0 <= seed <= SEED_MAX and result.info["all_seeds"] == [seed]
    run = load_run(Journal.open(jdir), result.info["promptism_run"])
    assert run.done[0].seed == seed


def test_webuiapi_img2img_starts_from_the_stored_init_image(api, jdir):
    result = api.img2img(images=[_png()], prompt=PROMPT, seed=3, steps=4, denoising_strength=0.5, width=32, height=32)
    assert len(result.images) == 1 and result.info["denoising_strength"] == 0.5
    assert result.parameters["init_images"] is None  # not echoed unless include_init_images, as A1111
    run = load_run(Journal.open(jdir), result.info["promptism_run"])
    params = run.record.params
    stored = Path(params.init_image)
    assert stored.parent == Journal.open(jdir).scratch / a1111.INPUTS and params.strength == 0.5
    assert params.init_sha256 == stored.name.removesuffix(".png")


def test_samplers_and_schedulers_are_listed_as_a1111_lists_them(api):
    """A1111 1.9+ lists its samplers without schedules, and its schedule types apart: each listed one a request can
    name (by name or label), and each named sampler with each schedule type it takes one promptism runs."""
    assert api.util_get_sampler_names() == sorted(SAMPLERS)
    assert {s["name"]: s["options"] for s in api.get_samplers()}["DPM++ 2M SDE"] == {
        "scheduler": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"}
    listed = api.get_schedulers()
    assert sorted(s["name"] for s in listed) == api.util_get_scheduler_names() == sorted(
        ["automatic", "uniform", "karras", "exponential", "polyexponential", "sgm_uniform", "align_your_steps", "simple",
         "normal", "beta"])
    by_name = {s["name"]: s for s in listed}
    assert by_name["karras"]["default_rho"] == 7.0 and by_name["sgm_uniform"]["aliases"] == ["SGMUniform"]
    assert by_name["align_your_steps"]["label"] == "Align Your Steps" and by_name["normal"]["need_inner_model"] is True
    assert {schedule_label(s["name"]) for s in listed} == {schedule_label(s["label"]) for s in listed} == {
        *PLAIN.values(), *SCHEDULES}


def test_sd_models_lists_the_installs_checkpoints_by_their_a1111_titles(api, tmp_path):
    """util_set_model finds a checkpoint by its title: the installs' are listed as A1111 lists them (the hash where it
    is known; /sd-models never hashes a file itself)."""
    from workshop.runner.model_files import hashes

    folder = tmp_path / "webui" / "models" / "Stable-diffusion"
    (folder / "sub").mkdir(parents=True)
    (folder / "dreamy.safetensors").write_bytes(b"not read here")
    (folder / "sub" / "other.safetensors").write_bytes(b"nor here")
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{tmp_path / "webui"}"\n', encoding="utf-8")
    listed = {m["model_name"]: m for m in api.get_sd_models()}
    assert listed["dreamy"]["title"] == "dreamy.safetensors" and listed["dreamy"]["hash"] is None  # not hashed yet
    assert listed["sub/other"]["title"] == "sub/other.safetensors" and "tiny" in listed
    sha = hashes(folder / "dreamy.safetensors")[0]  # (as a run, an import or `promptism models` hashes it)
    dreamy = {m["model_name"]: m for m in api.get_sd_models()}["dreamy"]
    assert (dreamy["title"], dreamy["hash"], dreamy["sha256"]) == (f"dreamy.safetensors [{sha[:10]}]", sha[:10], sha)


def test_models_options_and_idle_progress(api):
    assert "shapes" in api.util_get_model_names() and "tiny" in api.util_get_model_names()
    assert api.util_get_current_model() == "shapes"
    progress = api.get_progress()
    assert progress["progress"] == 0 and progress["state"]["job_count"] == 0 and progress["current_image"] is None
    api.util_wait_for_ready(check_interval=0.01)  # returns at once: nothing runs


@pytest.mark.parametrize("values, loc", [
    ({"steps": "many"}, ["body", "steps"]),
    ({"width": 0}, ["body", "width"]),
    ({"width": 36}, ["body", "width"]),
    ({"cfg_scale": "nan"}, ["body", "cfg_scale"]),
    ({"seed": -2}, ["body", "seed"]),
    ({"enable_hr": True, "hr_sampler_name": "DDIM"}, ["body"]),  # (A1111 1.6+: the second pass's own sampler)
    ({"enable_hr": True, "hr_scale": 0}, ["body", "hr_scale"]),
    ({"restore_faces": True}, ["body", "restore_faces"]),
    ({"batch_size": 8, "n_iter": 9}, ["body"]),
    ({"override_settings": {"sd_model_checkpoint": "no-such-model"}}, ["body", "override_settings", "sd_model_checkpoint"]),
    ({"sampler_name": "Euler b"}, ["body", "sampler_name"]),
])
def test_bad_values_get_a_422_in_fastapis_shape(sdapi, jdir, values, loc):
    response = httpx.post(f"{sdapi.url}/txt2img", json={"prompt": PROMPT, **values}, timeout=300, auth=sdapi.auth)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    assert not jdir.exists()


def test_img2img_without_an_image_is_a_422_and_a_mask_inpaints_what_promptism_makes(sdapi, jdir):
    url = f"{sdapi.url}/img2img"
    missing = httpx.post(url, json={"prompt": PROMPT}, timeout=300, auth=sdapi.auth)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "init_images"]
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    body = {"prompt": PROMPT, "init_images": [_b64(_png())], "mask": _b64(mask), "seed": 3, "steps": 4, "width": 32,
            "height": 32, "inpainting_fill": 0, "inpaint_full_res": False, "mask_blur": 2,
            "override_settings": {"sd_model_checkpoint": "tiny"}}
    for changed, loc in [({"inpainting_fill": 4}, "inpainting_fill"), ({"mask": "%%%"}, "mask"),
                         ({"inpaint_full_res": True, "inpaint_full_res_padding": -1}, "inpaint_full_res_padding"),
                         ({"inpaint_full_res": True, "mask": _b64(mask.resize((40, 32)))}, "mask"),  # (another size)
                         ({"inpaint_full_res": True, "mask": _b64(Image.new("L", (32, 32)))}, "mask")]:  # (no white)
        refused = httpx.post(url, json={**body, **changed}, timeout=300, auth=sdapi.auth)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", loc], refused.text
        assert "\n" not in refused.json()["detail"][0]["msg"]
    made = httpx.post(url, json=body, timeout=300, auth=sdapi.auth)
    assert made.status_code == 200, made.text
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(made.json()["images"][0]))).convert("RGB"), dtype=int)
    init = np.asarray(_png(), dtype=int)
    assert (out[:2] == init[:2]).all() and (out[14:18, 14:18] != init[14:18, 14:18]).any()  # kept / painted again
    run = load_run(Journal.open(jdir), json.loads(made.json()["info"])["promptism_run"])
    p = run.record.params
    assert (p.mask_blur, p.mask_fill, p.mask_invert) == (2, "fill", None) and p.mask.endswith(".png")
    assert "Mask blur: 2" in json.loads(made.json()["info"])["infotexts"][0]
    apart = httpx.post(url, json={**body, "mask_blur": None, "mask_blur_x": 0, "mask_blur_y": 6}, timeout=300,
                       auth=sdapi.auth)  # (A1111 blurs across, then down, each by its own)
    assert apart.status_code == 200, apart.text
    p = load_run(Journal.open(jdir), json.loads(apart.json()["info"])["promptism_run"]).record.params
    assert (p.mask_blur, p.mask_blur_y) == (0, 6)
    assert "Mask blur" not in json.loads(apart.json()["info"])["infotexts"][0]  # (as A1111: its mask_blur is None)


def test_unknown_fields_are_ignored(sdapi, jdir):
    response = httpx.post(f"{sdapi.url}/txt2img", timeout=120, auth=sdapi.auth, json={
        "prompt": PROMPT, "seed": 9, "steps": 2, "width": 32, "height": 32, "eta": 1.0, "s_churn": 0,
        "some_extension_field": {"deep": [1, 2]}})
    assert response.status_code == 200
    body = response.json()
    assert len(body["images"]) == 1 and json.loads(body["info"])["seed"] == 9
    assert "some_extension_field" not in body["parameters"]


@pytest.mark.parametrize("serve_journal", [None])
def test_without_serve_journal_calls_go_to_the_users_default_journal(api, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTISM_JOURNAL", str(tmp_path / "default"))
    result = api.txt2img(prompt=PROMPT, seed=2, steps=2, width=32, height=32)
    assert [r.id for r in list_runs(Journal.open(tmp_path / "default"))] == [result.info["promptism_run"]]


def test_the_models_own_scheduler_is_reported_by_an_a1111_name_that_sent_back_makes_the_same_picture(jdir):
    """Without a sampler a run takes the model folder's own scheduler; info names it as A1111 would (DDIM, not
    DDIMScheduler), and a client that sends that name back gets the same pixels."""
    def made(sampler_name: str | None):
        req = a1111.Txt2ImgRequest(prompt=PROMPT, seed=5, steps=2, width=32, height=32, sampler_name=sampler_name)
        mapped = a1111.map_request(req, jdir, Settings(model="tiny"))
        run = execute(build_grid(spec_from(mapped.job.spec)), resolve(mapped.job.spec, mapped.job.options, Settings()),
                      Journal.open(jdir, create=True))
        return run, json.loads(a1111.build_response(req, run, mapped.seeds).info)

    own, info = made(None)
    assert own.record.params.sampler is None and own.record.params.scheduler.endswith("Scheduler")
    assert info["sampler_name"] in SAMPLERS and f"Sampler: {info['sampler_name']}," in info["infotexts"][0]
    again, _ = made(info["sampler_name"])  # what a client does with it: sends it back
    assert again.record.params.sampler == info["sampler_name"]
    assert [again.image(c).read_bytes() for c in again.done] == [own.image(c).read_bytes() for c in own.done]



def test_a_queued_job_cancelled_by_another_client_answers_no_images_not_500(jdir, tmp_path):
    """The A1111 request waits for its job; another client cancels it before it begins: 200, no images (it was 500)."""
    from fastapi.testclient import TestClient

    from tests.helpers import poll_until

    idle = Service(tmp_path / "queue.json", journal=jdir)  # its worker not started: the job stays queued
    http = TestClient(create_app(idle, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"})
    answers: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(http.post("/sdapi/v1/txt2img", json={"prompt": PROMPT})))
    waiting.start()
    poll_until(lambda: idle.jobs(), 120, "the job to be queued")
    idle.cancel(idle.jobs()[0].id)
    waiting.join(120)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    body = answers[0].json()
    assert body["images"] == [] and json.loads(body["info"])["promptism_state"] == "cancelled"


def test_plms_at_three_steps_as_a1111s_own_test_sends_it(app):
    """A1111's test_txt2img_with_vanilla_sampler_performed runs PLMS at 3 steps: a 422 while PLMS warmed up with
    Runge-Kutta steps on the tiny model's config (they need 4); A1111's PLMS has none."""
    from fastapi.testclient import TestClient

    http = TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})
    reply = http.post("/sdapi/v1/txt2img", json={"prompt": PROMPT, "sampler_index": "PLMS", "steps": 3, "width": 32,
                                                  "height": 32, "override_settings": {"sd_model_checkpoint": "tiny"}})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["images"]) == 1 and json.loads(reply.json()["info"])["sampler_name"] == "PLMS"
