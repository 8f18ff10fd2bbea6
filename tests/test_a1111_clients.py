"""SillyTavern's and Open WebUI's AUTOMATIC1111 request sequences, replayed as their source sends them (routes in
order, headers, bodies with their defaults) against the service's A1111 routes on uvicorn (test_a1111's fixtures),
asserting what each client needs from each answer: connect, list, switch the model, generate.

What each client sends was read from its source:
- SillyTavern at ba6f7b7a98cf7a5eaf4f0e81da9779a9a668ced4 (2024-09-28): its server's src/endpoints/stable-diffusion.js
  (the requests to the WebUI, ``Authorization: Basic base64(auth)`` with the "user:password" the user typed, the URL's
  path replaced by /sdapi/v1/…) and its client public/scripts/extensions/stable-diffusion/index.js (the settings'
  defaults and the body of a generation, which the server forwards whole, its own ``url`` and ``auth`` included).
- Open WebUI at 02530d501461ce58ab06231d7c2ef2024a141ddf: backend/open_webui/routers/images.py (``authorization:
  Basic base64(AUTOMATIC1111_API_AUTH)``, or an empty header where none is set; the model switch posts back the whole
  of GET /options with sd_model_checkpoint changed; txt2img's body, with the admin's AUTOMATIC1111_PARAMS over it).
The bodies below are those clients' data; the code that sends them is this test's own.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import pytest
from PIL import Image

from journal import Journal
from tests import test_a1111 as served
from tests.test_model_files import tiny_checkpoint  # noqa: F401  (a fixture: an install's single-file checkpoint)
from workshop.runner.runs import load_run

# the service and its A1111 routes on uvicorn, as test_a1111 serves them (its fixtures)
serve_journal, service, app, sdapi, api = served.serve_journal, served.service, served.app, served.sdapi, served.api
TOKEN = served.TOKEN
PROMPT = served.PROMPT


class Refused(Exception):
    """What the client makes of a WebUI answer that is not OK (SillyTavern: 'SD WebUI returned an error.')."""


def basic(auth: str | None) -> str:
    """Both clients' Authorization header: ``Basic`` and the auth setting, as typed, in base64 (Open WebUI sends an
    empty header where none is set)."""
    if auth is None:
        return ""
    return ("Basic " + base64.b64encode(auth.encode("utf-8")).decode("ascii")).strip()  # (as HTTP reads "Basic ")


def decoded(data: str) -> Image.Image:
    """An image of ``images``, as both clients take it: base64 PNG (Open WebUI: a data URL where there is a comma)."""
    return Image.open(io.BytesIO(base64.b64decode(data.partition(",")[2] if "," in data else data)))


# ------------------------------------------------------------------ SillyTavern


#: SillyTavern's image generation settings, as index.js's ``defaultSettings`` has them (those a generation sends).
ST_DEFAULTS = {"sampler": "DDIM", "scheduler": "normal", "steps": 20, "scale": 7, "width": 512, "height": 512,
               "seed": -1, "vae": "", "restore_faces": False, "enable_hr": False, "hr_upscaler": "Latent",
               "hr_scale": 2.0, "denoising_strength": 0.7, "hr_second_pass_steps": 0, "clip_skip": 1}
ST_PLACEHOLDER_VAE = "Automatic"  # index.js's placeholderVae, put first in the VAE list


class SillyTavern:
    """SillyTavern's server side: each of its /api/sd/… routes as the requests it makes of the WebUI."""

    def __init__(self, url: str, auth: str):
        self.url, self.auth = url, auth  # (auto_url, auto_auth: the body of every /api/sd/… call)
        self.requests: list[tuple[str, str]] = []

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> httpx.Response:
        self.requests.append((method, path))
        headers = {"Authorization": basic(self.auth)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return httpx.request(method, self.url + path, headers=headers, timeout=timeout,
                             content=json.dumps(body) if body is not None else None)

    def _ok(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> httpx.Response:
        reply = self._call(method, path, body, timeout)
        if not reply.is_success:
            raise Refused(f"{method} {path}: {reply.status_code} {reply.text}")
        return reply

    def ping(self) -> None:  # /api/sd/ping
        self._ok("GET", "/sdapi/v1/options")

    def samplers(self) -> list[str]:  # /api/sd/samplers
        return [x["name"] for x in self._ok("GET", "/sdapi/v1/samplers").json()]

    def schedulers(self) -> list[str]:  # /api/sd/schedulers
        return [x["name"] for x in self._ok("GET", "/sdapi/v1/schedulers").json()]

    def models(self) -> list[dict]:  # /api/sd/models
        return [{"value": x["title"], "text": x["title"]} for x in self._ok("GET", "/sdapi/v1/sd-models").json()]

    def get_model(self) -> str:  # /api/sd/get-model (no check of the status: it reads the JSON)
        return self._call("GET", "/sdapi/v1/options").json()["sd_model_checkpoint"]

    def upscalers(self) -> list[str]:  # /api/sd/upscalers: None first, then the latent ones, then the rest
        names = [x["name"] for x in self._ok("GET", "/sdapi/v1/upscalers").json()]
        latent = [x["name"] for x in self._ok("GET", "/sdapi/v1/latent-upscale-modes").json()]
        return names[:1] + latent + names[1:]

    def vaes(self) -> list[str]:  # /api/sd/vaes (the client puts its placeholder first)
        return [ST_PLACEHOLDER_VAE] + [x["model_name"] for x in self._ok("GET", "/sdapi/v1/sd-vae").json()]

    def load_setting_options(self) -> dict:
        """The client's loadSettingOptions after a successful ping: samplers, models (the current one first, then
        the list and the upscalers), schedulers, VAEs."""
        return {"samplers": self.samplers(), "model": self.get_model(), "models": self.models(),
                "upscalers": self.upscalers(), "schedulers": self.schedulers(), "vaes": self.vaes()}

    def set_model(self, model: str) -> int:
        """/api/sd/set-model: POST /options, then GET /progress until it is idle (at most 10 times, 2 s apart);
        gives the number of times it asked."""
        self._ok("POST", "/sdapi/v1/options", {"sd_model_checkpoint": model})
        for attempt in range(1, 11):
            state = self._call("GET", "/sdapi/v1/progress").json()
            if state["progress"] == 0.0 and state["state"]["job_count"] == 0:
                return attempt
            time.sleep(2)
        return 10

    def generate(self, settings: dict, prompt: str, negative: str) -> dict:
        """generateAutoImage's body, forwarded whole by /api/sd/generate to txt2img (its url and auth too); the
        client takes ``images[0]``."""
        vae = settings["vae"] if settings["vae"] and settings["vae"] not in ("N/A", ST_PLACEHOLDER_VAE) else None
        body = {
            "url": self.url, "auth": self.auth,
            "prompt": prompt, "negative_prompt": negative, "sampler_name": settings["sampler"],
            "scheduler": settings["scheduler"], "steps": settings["steps"], "cfg_scale": settings["scale"],
            "width": settings["width"], "height": settings["height"], "restore_faces": settings["restore_faces"],
            "enable_hr": settings["enable_hr"], "hr_upscaler": settings["hr_upscaler"], "hr_scale": settings["hr_scale"],
            "denoising_strength": settings["denoising_strength"],
            "hr_second_pass_steps": settings["hr_second_pass_steps"],
            "seed": settings["seed"] if settings["seed"] >= 0 else None,
            "override_settings": {"CLIP_stop_at_last_layers": settings["clip_skip"], "sd_vae": vae},
            "override_settings_restore_afterwards": True,
            "clip_skip": settings["clip_skip"],
            "save_images": True, "send_images": True, "do_not_save_grid": False, "do_not_save_samples": False,
        }
        return self._ok("POST", "/sdapi/v1/txt2img", _as_json(body), timeout=600).json()

    def interrupt(self) -> httpx.Response:
        """What /api/sd/generate sends when the browser's request closes before the answer: a bare POST."""
        self.requests.append(("POST", "/sdapi/v1/interrupt"))
        return httpx.post(self.url + "/sdapi/v1/interrupt", headers={"Authorization": basic(self.auth)}, timeout=60)


def _as_json(body):
    """``body`` as JSON.stringify sends it: a key whose value is undefined (None here) is left out."""
    if isinstance(body, dict):
        return {key: _as_json(value) for key, value in body.items() if value is not None}
    return body


@pytest.fixture
def install(tiny_checkpoint, isolated_env):  # noqa: F811
    """An A1111 install with a checkpoint (the tiny model as one original-layout file) and a VAE for it, set as the
    service's a1111 setting."""
    from tests.helpers import tiny_pipeline
    from tests.ldm_export import write_vae_file

    webui = tiny_checkpoint.parents[2]
    vae = webui / "models" / "VAE" / "tinyvae.safetensors"
    if not vae.exists():
        write_vae_file(tiny_pipeline().vae, vae, change=0.02)
    (isolated_env / "config.toml").write_text(f'a1111 = "{webui}"\n', encoding="utf-8")
    return webui


def _root(sdapi) -> str:
    return sdapi.url.removesuffix("/sdapi/v1")


def test_sillytavern_connects_switches_to_an_installs_checkpoint_and_generates(sdapi, jdir, install):
    st = SillyTavern(_root(sdapi), f"sillytavern:{TOKEN}")
    st.ping()
    found = st.load_setting_options()
    assert ST_DEFAULTS["sampler"] in found["samplers"] and ST_DEFAULTS["scheduler"] in found["schedulers"]
    assert found["upscalers"][:2] == ["None", "Latent"] and ST_DEFAULTS["hr_upscaler"] in found["upscalers"]
    assert found["vaes"] == [ST_PLACEHOLDER_VAE, "tinyvae.safetensors"]
    titles = [m["value"] for m in found["models"]]
    assert found["model"] in titles  # the dropdown shows the current model
    checkpoint = next(t for t in titles if t.startswith("tinyckpt.safetensors"))  # the user picks the install's

    assert st.set_model(checkpoint) == 1  # idle at once: nothing to wait for
    assert st.get_model() == checkpoint

    settings = {**ST_DEFAULTS, "width": 64, "height": 64}  # (the user's size: 512² takes minutes on the tiny model)
    answer = st.generate(settings, PROMPT, "blurry")
    image = decoded(answer["images"][0])
    assert image.size == (64, 64) and image.info == {}
    info = json.loads(answer["info"])
    run = load_run(Journal.open(jdir), info["promptism_run"])
    assert run.record.model.info.id == "tinyckpt" and run.record.model.kind == "file"  # the switch took effect
    assert info["sd_model_name"] == "tinyckpt"
    assert str(install) not in answer["info"]  # (the install's path stays private)
    assert (run.record.params.sampler, run.record.params.steps, run.record.params.guidance) == ("DDIM", 20, 7.0)
    assert run.done[0].negative == "blurry" and run.state == "finished"
    assert info["sampler_name"] == "DDIM" and not info["extra_generation_params"]  # everything it sent was applied
    assert TOKEN not in json.dumps(answer)  # the auth SillyTavern forwards in the body is never sent back
    titles = [m["value"] for m in st.models()]  # (the run hashed the file: its title now has the hash, as A1111's)
    assert st.get_model() in titles  # still selected, by the title of the checkpoint that made the image
    assert st.get_model() == f"tinyckpt.safetensors [{info['sd_model_hash']}]"
    assert f"Model hash: {info['sd_model_hash']}, Model: tinyckpt," in info["infotexts"][0]

    # the user turns the hires fix on, picks the VAE and a seed: all of them applied
    hires = {**settings, "enable_hr": True, "hr_scale": 2.0, "vae": "tinyvae.safetensors", "seed": 77}
    answer = st.generate(hires, PROMPT, "")
    assert decoded(answer["images"][0]).size == (128, 128)
    info = json.loads(answer["info"])
    params = load_run(Journal.open(jdir), info["promptism_run"]).record.params
    assert (params.hires, params.hires_upscaler, params.hires_strength) == (2.0, "Latent", 0.7)
    assert params.vae.startswith("tinyvae.safetensors: ") and info["all_seeds"] == [77]
    assert not info["extra_generation_params"]
    assert [path for _, path in st.requests] == [
        "/sdapi/v1/options", "/sdapi/v1/samplers", "/sdapi/v1/options", "/sdapi/v1/sd-models", "/sdapi/v1/upscalers",
        "/sdapi/v1/latent-upscale-modes", "/sdapi/v1/schedulers", "/sdapi/v1/sd-vae", "/sdapi/v1/options",
        "/sdapi/v1/progress", "/sdapi/v1/options", "/sdapi/v1/txt2img", "/sdapi/v1/sd-models", "/sdapi/v1/options",
        "/sdapi/v1/options", "/sdapi/v1/txt2img"]


def test_sillytavern_without_the_token_is_refused_and_its_interrupt_stops_the_generation(sdapi, jdir):
    for auth in ("", "sillytavern:wrong", TOKEN):  # (A1111's --api-auth takes user:password, as this does)
        with pytest.raises(Refused, match="401"):
            SillyTavern(_root(sdapi), auth).ping()
    st = SillyTavern(_root(sdapi), f"me:{TOKEN}")
    done: dict = {}
    slow = {**ST_DEFAULTS, "width": 64, "height": 64, "steps": 1000, "sampler": "Euler a", "scheduler": "automatic"}
    call = threading.Thread(target=lambda: done.update(answer=st.generate(slow, PROMPT, "")))
    call.start()
    deadline = time.monotonic() + 300
    while st._call("GET", "/sdapi/v1/progress").json()["progress"] <= 0:
        assert time.monotonic() < deadline and call.is_alive()
        time.sleep(0.05)
    assert st.interrupt().status_code == 200  # the browser went away
    call.join(300)
    assert not call.is_alive()
    info = json.loads(done["answer"]["info"])
    assert info["promptism_state"] == "cancelled"
    assert st._call("GET", "/sdapi/v1/progress").json()["state"]["job_count"] == 0  # idle again


# ------------------------------------------------------------------ Open WebUI


class OpenWebUI:
    """Open WebUI's backend with the automatic1111 engine: the requests of its image routes."""

    def __init__(self, base_url: str, api_auth: str | None):
        self.base_url, self.api_auth = base_url, api_auth  # AUTOMATIC1111_BASE_URL, AUTOMATIC1111_API_AUTH
        self.requests: list[tuple[str, str]] = []

    def _send(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        self.requests.append((method, path))
        return httpx.request(method, f"{self.base_url}{path}", headers={"authorization": basic(self.api_auth)},
                             json=body, timeout=600)

    def verify_url(self) -> bool:  # GET /images/config/url/verify
        reply = self._send("GET", "/sdapi/v1/options")
        if not reply.is_success:
            raise Refused(f"{reply.status_code} {reply.text}")
        return True

    def get_models(self) -> list[dict]:  # GET /images/models
        return [{"id": m["title"], "name": m["model_name"]} for m in self._send("GET", "/sdapi/v1/sd-models").json()]

    def get_image_model(self) -> str:
        return self._send("GET", "/sdapi/v1/options").json()["sd_model_checkpoint"]

    def set_image_model(self, model: str) -> None:
        """On a config update (and before an admin's generation naming a model): the whole of GET /options posted
        back with the model changed, where it differs. (Open WebUI logs a failure at debug level and goes on.)"""
        options = self._send("GET", "/sdapi/v1/options").json()
        if model != options["sd_model_checkpoint"]:
            options["sd_model_checkpoint"] = model
            reply = self._send("POST", "/sdapi/v1/options", options)
            if not reply.is_success:
                raise Refused(f"{reply.status_code} {reply.text}")

    def image_generations(self, prompt: str, *, n: int = 1, size: str = "512x512", steps: int | None = None,
                          negative_prompt: str | None = None, params: dict | None = None,
                          model: str | None = None) -> list[Image.Image]:
        """POST /images/generations as an admin: the model, then txt2img; each of ``images`` is decoded (the status
        is not checked: an answer without ``images`` fails it) and stored with ``info``."""
        width, height = map(int, size.split("x"))
        self.get_image_model()
        if model:
            self.set_image_model(model)
        data = {"prompt": prompt, "batch_size": n, "width": width, "height": height}
        if steps is not None:
            data["steps"] = steps
        if negative_prompt is not None:
            data["negative_prompt"] = negative_prompt
        data = {**data, **(params or {})}
        res = self._send("POST", "/sdapi/v1/txt2img", data).json()
        self.info = json.loads(res["info"])
        return [decoded(image) for image in res["images"]]


def test_open_webui_verifies_switches_the_model_by_posting_the_options_back_and_generates(sdapi, jdir, install):
    owui = OpenWebUI(_root(sdapi), f"admin:{TOKEN}")
    assert owui.verify_url()
    before = owui._send("GET", "/sdapi/v1/options").json()
    with pytest.raises(Refused, match="sd_model_checkpoint takes a name"):  # (as A1111 refuses a model it lacks)
        owui.set_image_model("")  # saved before a model is chosen: IMAGE_GENERATION_MODEL's default
    assert owui._send("GET", "/sdapi/v1/options").json() == before  # nothing of the posted body was set
    models = owui.get_models()
    checkpoint = next(m["id"] for m in models if m["name"] == "tinyckpt")
    assert owui.get_image_model() in [m["id"] for m in models]
    owui.set_image_model(checkpoint)  # the admin saves the image settings with the install's checkpoint
    assert owui.get_image_model() == checkpoint
    before = len(owui.requests)
    owui.set_image_model(checkpoint)  # the same model again: nothing posted
    assert [r[0] for r in owui.requests[before:]] == ["GET"]

    images = owui.image_generations(PROMPT, n=2, size="64x64", steps=6, negative_prompt="blurry", model=checkpoint)
    assert [im.size for im in images] == [(64, 64), (64, 64)] and all(im.info == {} for im in images)
    run = load_run(Journal.open(jdir), owui.info["promptism_run"])
    assert run.record.model.info.id == "tinyckpt" and run.record.layout == [[0, 1]]  # n: one batch of two
    assert run.record.params.steps == 6 and [c.negative for c in run.done] == ["blurry", "blurry"]
    assert owui.info["all_seeds"] == [owui.info["seed"], owui.info["seed"] + 1]

    # an admin's AUTOMATIC1111_PARAMS, over the body: a sampler, its schedule type, a guidance, a VAE
    params = {"cfg_scale": 5, "sampler_name": "DPM++ 2M", "scheduler": "Karras", "seed": 9,
              "override_settings": {"sd_vae": "tinyvae.safetensors"}}
    images = owui.image_generations(PROMPT, size="64x64", steps=4, params=params)
    assert [im.size for im in images] == [(64, 64)]
    recorded = load_run(Journal.open(jdir), owui.info["promptism_run"]).record.params
    assert (recorded.sampler, recorded.guidance, recorded.vae.split(":")[0]) == ("DPM++ 2M Karras", 5.0,
                                                                                "tinyvae.safetensors")
    assert owui.info["all_seeds"] == [9] and not owui.info["extra_generation_params"]

    owui.set_image_model("tiny")  # and back to a promptism model, by its title
    images = owui.image_generations(PROMPT, size="64x64", steps=2)
    assert owui.info["sd_model_name"] == "tiny" and images[0].size == (64, 64)


def test_open_webui_without_an_api_auth_sends_an_empty_header_and_is_refused(sdapi):
    with pytest.raises(Refused, match="401"):
        OpenWebUI(_root(sdapi), None).verify_url()
    with pytest.raises(Refused, match="401"):
        OpenWebUI(_root(sdapi), "").verify_url()
    assert OpenWebUI(_root(sdapi), f":{TOKEN}").verify_url()  # an empty user name will do


# ------------------------------------------------------------------ webuiapi, against uvicorn


def test_webuiapi_util_set_model_switches_to_an_installs_checkpoint_by_a_lowercased_name(api, jdir, install, capsys):
    """util_set_model lowercases the name it is given and looks for that title (else the closest: "tinyckpt" alone
    finds "tiny"); the switch is real (the next run's model)."""
    title = next(t for t in api.util_get_model_names() if t.startswith("tinyckpt.safetensors"))
    api.util_set_model(title.upper())
    assert api.util_get_current_model() == title and f"model changed to {title}" in capsys.readouterr().out
    result = api.txt2img(prompt=PROMPT, seed=3, steps=2, width=64, height=64)
    assert result.info["sd_model_name"] == "tinyckpt" and result.images[0].size == (64, 64)
    assert load_run(Journal.open(jdir), result.info["promptism_run"]).record.model.info.id == "tinyckpt"
