"""A1111's routes that make no run — png-info, interrogate, extra-single-image, extra-batch-images — against uvicorn
on a loopback port (and through webuiapi, the A1111 client library), with real images: infotexts that A1111 wrote,
the importer's samples of other tools, a promptism run's own PNG, and the tiny random-weight CLIP."""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from tests.helpers import declared_png
from tests.import_samples import A1111, a1111_jpeg, a1111_stealth_png, comfy_graph, comfy_png, pixels
from tests import test_a1111
from tests.test_service_trust import SECRET, mutations
from workshop.runner.scoring import load_scorer
from workshop.service import a1111_extras
from workshop.service.server import create_app

TOKEN = test_a1111.TOKEN
# test_a1111's fixtures: an in-process Service on the test's journal, its app, uvicorn on a loopback port, webuiapi
serve_journal, service, app, sdapi, api = (test_a1111.serve_journal, test_a1111.service, test_a1111.app,
                                           test_a1111.sdapi, test_a1111.api)
INFOTEXTS = Path(__file__).parent / "bench" / "infotexts"
ROUTES = ("/png-info", "/interrogate", "/extra-single-image", "/extra-batch-images")


def _b64(image: Image.Image, text: dict[str, str] | None = None, fmt: str = "PNG") -> str:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"pnginfo": info} if fmt == "PNG" else {}))
    return base64.b64encode(buf.getvalue()).decode()


def _file64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _image(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def _post(sdapi, route: str, body: dict) -> httpx.Response:
    return httpx.post(sdapi.url + route, json=body, auth=sdapi.auth, timeout=300)


def _refused(reply: httpx.Response, field: str) -> str:
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"][0]
    assert detail["loc"][-1] == field, detail
    return detail["msg"]


@pytest.fixture
def tiny_clip(isolated_env):
    """The service's clip setting: the tiny random-weight CLIP."""
    (isolated_env / "config.toml").write_text('clip = "tiny-clip"\n')


# ------------------------------------------------------------------ png-info


def test_png_info_of_a1111_pngs_answers_as_a1111(sdapi):
    for name in ("017.txt", "010.txt", "011.txt"):
        text = (INFOTEXTS / name).read_text(encoding="utf-8")
        reply = _post(sdapi, "/png-info", {"image": "data:image/png;base64," + _b64(pixels(seed=1), {
            "parameters": text, "Software": "a painter"})})
        assert reply.status_code == 200, reply.text
        got = reply.json()
        assert got["info"] == text and got["items"] == {"Software": "a painter"}
        fields = dict(part.split(": ", 1) for part in text.splitlines()[-1].split(", ") if ": " in part)
        p = got["parameters"]
        prompt, _, rest = text.partition("\nNegative prompt: ")
        assert p["Prompt"] == (prompt if rest else text.rpartition("\nSteps: ")[0])
        assert p["Negative prompt"] == rest.partition("\nSteps: ")[0]
        for key in ("Steps", "Sampler", "CFG scale", "Seed", "Model hash"):
            assert p[key] == fields[key], key  # strings, as A1111 parses them
        width, height = fields["Size"].split("x")
        assert (p["Size-1"], p["Size-2"]) == (width, height) and "Size" not in p
        assert p["Clip skip"] == fields.get("Clip skip", "1") and p["Schedule type"] == fields.get("Schedule type", "Automatic")
        assert p["Hires resize-1"] == 0 and p["RNG"] == "GPU"  # A1111's defaults for what the infotext leaves out
    duck = _post(sdapi, "/png-info", {"image": _b64(pixels(seed=2), {"parameters": (INFOTEXTS / "017.txt").read_text()})})
    assert (duck.json()["parameters"]["Prompt"], duck.json()["parameters"]["Seed"]) == ("photo of a duck", "235284042")


def test_png_info_reads_jpeg_exif_stealth_and_comfyui_through_the_importer(sdapi, tmp_path):
    for path in (a1111_jpeg(tmp_path / "a.jpg"), a1111_stealth_png(tmp_path / "s.png")):
        got = _post(sdapi, "/png-info", {"image": _file64(path)}).json()
        assert got["info"] == A1111 and got["parameters"]["Seed"] == "1234" and got["parameters"]["Schedule type"] == "Karras"
        assert got["parameters"]["Negative prompt"] == "blurry, lowres"
    graph = comfy_graph()
    got = _post(sdapi, "/png-info", {"image": _file64(comfy_png(tmp_path / "c.png", graph))}).json()
    sampler = graph["3"]["inputs"]
    assert json.loads(got["items"]["prompt"]) == graph and "workflow" in got["items"]  # A1111 answers with its chunks
    p = got["parameters"]  # … and promptism reads them: an infotext written from the graph
    assert p["Prompt"] == graph["6"]["inputs"]["text"] and p["Negative prompt"] == graph["7"]["inputs"]["text"]
    assert (p["Seed"], p["Steps"], p["CFG scale"]) == (str(sampler["seed"]), "20", "8.0")
    assert (p["Size-1"], p["Size-2"]) == ("64", "64")  # the image's own (the importer reads no size from this graph)
    assert p["Sampler"] == "Euler" and p["Model"] == "v1-5-pruned-emaonly"
    assert got["info"].startswith(graph["6"]["inputs"]["text"] + "\nNegative prompt: text, watermark\nSteps: 20, ")


def test_png_info_of_a_promptism_run_finds_pixels_only(sdapi):
    made = _post(sdapi, "/txt2img", {"prompt": SECRET, "seed": 4, "steps": 1, "width": 32, "height": 32,
                                     "override_settings": {"sd_model_checkpoint": "tiny"}})
    assert made.status_code == 200, made.text
    got = _post(sdapi, "/png-info", {"image": made.json()["images"][0]}).json()
    assert got["info"] == "" and got["items"] == {} and got["parameters"]["Prompt"] == ""  # the prompt is not in it
    assert "SECRETWORD" not in json.dumps(got)


def test_png_info_refuses_what_is_no_image(sdapi):
    assert "base64" in _refused(_post(sdapi, "/png-info", {"image": "not base64!"}), "image")
    assert "not an image" in _refused(_post(sdapi, "/png-info", {"image": base64.b64encode(b"hello").decode()}), "image")
    assert _refused(_post(sdapi, "/png-info", {"image": ""}), "image")
    assert _refused(_post(sdapi, "/png-info", {}), "image")


# ------------------------------------------------------------------ interrogate


def _expected_caption(image: Image.Image) -> str:
    """The caption by the scorer itself: each category's best entries by cosine similarity, A1111's order."""
    scorer = load_scorer("tiny-clip", torch.device("cpu"))
    terms = []
    for _, top, entries in a1111_extras.vocabulary():
        sims = scorer.similarity([image], entries)[0]
        terms += [entries[i] for i in sorted(range(len(entries)), key=lambda i: (-float(sims[i]), i))[:top]]
    return ", ".join(terms)


def test_interrogate_ranks_the_vocabulary_with_the_services_clip(sdapi, tiny_clip):
    categories = a1111_extras.vocabulary()
    assert [(name, top) for name, top, _ in categories] == [("artists", 1), ("flavors", 3), ("mediums", 1), ("movements", 1)]
    candidates = [pixels((48, 48), seed=s) for s in range(2)] + [Image.new("RGB", (48, 48), c) for c in ("red", "navy", "white")]
    expected = [_expected_caption(im) for im in candidates]
    assert len(set(expected)) > 1  # images the scorer tells apart
    for image, caption in zip(candidates, expected):
        got = _post(sdapi, "/interrogate", {"image": _b64(image), "model": "clip"})
        assert got.status_code == 200 and got.json() == {"caption": caption}
        terms = caption.split(", ")
        assert len(terms) == 6 and terms[0] in categories[0][2] and all(t in categories[1][2] for t in terms[1:4])
    again = _post(sdapi, "/interrogate", {"image": _b64(candidates[0])}).json()["caption"]  # model: "clip" by default
    assert again == expected[0]


def test_interrogate_offers_clip_alone_and_says_when_no_scorer_is_set(sdapi, isolated_env):
    image = _b64(pixels((32, 32)))
    assert '"clip"' in _refused(_post(sdapi, "/interrogate", {"image": image, "model": "deepdanbooru"}), "model")
    (isolated_env / "config.toml").write_text('model = "tiny"\nclip = "none"\n')
    assert "config.toml" in _refused(_post(sdapi, "/interrogate", {"image": image}), "model")
    (isolated_env / "config.toml").write_text('clip = "ViT-B-32:no-such-tag"\n')
    assert "clip setting" in _refused(_post(sdapi, "/interrogate", {"image": image}), "model")
    (isolated_env / "config.toml").write_text('clip = "tiny-clip"\n')
    assert _refused(_post(sdapi, "/interrogate", {"image": "@@"}), "image")


# ------------------------------------------------------------------ extras


def test_extra_single_image_lanczos_x2_is_pillows_own_resize_pixels_only(sdapi):
    source = pixels((40, 24), seed=5)
    reply = _post(sdapi, "/extra-single-image", {"image": _b64(source, {"parameters": SECRET}), "upscaler_1": "Lanczos",
                                                  "upscaling_resize": 2})
    assert reply.status_code == 200, reply.text
    got = reply.json()
    out = _image(got["image"])
    assert out.size == (80, 48) and out.tobytes() == source.resize((80, 48), Image.LANCZOS).tobytes()
    assert out.info == {} and got["html_info"] == "<p>Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos</p>"
    assert b"tEXt" not in base64.b64decode(got["image"]) and "SECRETWORD" not in reply.text


def test_extras_follow_a1111s_upscaler_rule(sdapi):
    source = pixels((30, 20), seed=6)
    nearest = _image(_post(sdapi, "/extra-single-image", {"image": _b64(source), "upscaler_1": "Nearest",
                                                           "upscaling_resize": 3}).json()["image"])
    # 90x60 by Nearest, then Lanczos to A1111's size: each side rounded down to a multiple of 8
    assert nearest.tobytes() == source.resize((90, 60), Image.NEAREST).resize((88, 56), Image.LANCZOS).tobytes()
    untouched = _image(_post(sdapi, "/extra-single-image", {"image": _b64(source)}).json()["image"])  # upscaler_1 None
    assert untouched.size == source.size and untouched.tobytes() == source.tobytes()
    to = _post(sdapi, "/extra-single-image", {"image": _b64(source), "upscaler_1": "Lanczos", "resize_mode": 1,
                                              "upscaling_resize_w": 64, "upscaling_resize_h": 64}).json()
    cropped = _image(to["image"])  # scaled by max(64/30, 64/20) = 3.2 to 96x64, centred on a 64x64 canvas
    assert cropped.size == (64, 64)
    assert cropped.tobytes() == source.resize((96, 64), Image.LANCZOS).crop((16, 0, 80, 64)).tobytes()
    assert "Postprocess upscale to: 64x64" in to["html_info"] and "Postprocess crop to: 64x64" in to["html_info"]
    blended = _image(_post(sdapi, "/extra-single-image", {
        "image": _b64(source), "upscaler_1": "Lanczos", "upscaler_2": "Nearest", "extras_upscaler_2_visibility": 0.25,
        "upscaling_resize": 2}).json()["image"])
    assert blended.tobytes() == Image.blend(source.resize((60, 40), Image.LANCZOS).resize((56, 40), Image.LANCZOS),
                                            source.resize((60, 40), Image.NEAREST).resize((56, 40), Image.LANCZOS),
                                            0.25).tobytes()
    batch = _post(sdapi, "/extra-batch-images", {"imageList": [{"data": _b64(source), "name": "a"},
                                                               {"data": _b64(pixels((16, 16), seed=8)), "name": "b"}],
                                                 "upscaler_1": "Lanczos", "upscaling_resize": 2}).json()
    assert [_image(i).size for i in batch["images"]] == [(56, 40), (32, 32)] and "Lanczos" in batch["html_info"]


def test_extras_refuse_what_needs_weights_or_makes_no_image(sdapi):
    image = _b64(pixels((32, 32)))
    for upscaler in ("R-ESRGAN 4x+", "Latent", "lanczos"):
        assert "None, Lanczos, Nearest" in _refused(_post(sdapi, "/extra-single-image", {"image": image,
                                                                                          "upscaler_1": upscaler}), "upscaler_1")
    assert "None, Lanczos, Nearest" in _refused(_post(sdapi, "/extra-single-image", {
        "image": image, "upscaler_1": "Lanczos", "upscaler_2": "SwinIR 4x"}), "upscaler_2")
    for field in ("gfpgan_visibility", "codeformer_visibility"):
        assert "faces" in _refused(_post(sdapi, "/extra-single-image", {"image": image, field: 0.5}), field)
    assert "over the limit" in _refused(_post(sdapi, "/extra-single-image", {"image": image, "upscaler_1": "Lanczos",
                                                                             "upscaling_resize": 1000}), "upscaling_resize")
    assert "over the limit" in _refused(_post(sdapi, "/extra-single-image", {
        "image": image, "upscaler_1": "Lanczos", "resize_mode": 1, "upscaling_resize_w": 10**9}), "upscaling_resize_w")
    assert "no image" in _refused(_post(sdapi, "/extra-single-image", {"image": image, "upscaler_1": "Lanczos",
                                                                       "upscaling_resize": 0.1}), "upscaling_resize")
    assert _refused(_post(sdapi, "/extra-single-image", {"image": image, "resize_mode": 2}), "resize_mode")
    assert _refused(_post(sdapi, "/extra-single-image", {"image": "####"}), "image")
    many = [{"data": image, "name": str(i)} for i in range(a1111_extras.MAX_BATCH + 1)]
    assert _refused(_post(sdapi, "/extra-batch-images", {"imageList": many}), "imageList")
    bad = _refused(_post(sdapi, "/extra-batch-images", {"imageList": [{"data": image, "name": "a"},
                                                                      {"data": "AAAA", "name": "b"}]}), "imageList[1].data")
    assert "imageList[1].data" in bad


# ------------------------------------------------------------------ the service's rules


def test_every_new_route_needs_the_token(sdapi):
    for route in ROUTES:
        assert httpx.post(sdapi.url + route, json={}).status_code == 401
        assert httpx.post(sdapi.url + route, json={}, auth=("x", "wrong")).status_code == 401


@pytest.mark.parametrize("route", ROUTES)
def test_new_routes_take_malformed_bodies_log_nothing_and_the_service_runs_on(service, tmp_path, caplog, route,
                                                                              tiny_clip):
    http = TestClient(create_app(service, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"})
    image = _b64(pixels((24, 24)), {"parameters": f"{SECRET}\nSteps: 3, Sampler: Euler, Seed: 1"})
    bases = {"/png-info": {"image": image}, "/interrogate": {"image": image, "model": "clip"},
             "/extra-single-image": {"image": image, "upscaler_1": "Lanczos", "upscaling_resize": 2, "resize_mode": 0,
                                     "upscaling_resize_w": 32, "upscaling_resize_h": 32, "upscaler_2": "Nearest",
                                     "extras_upscaler_2_visibility": 0.5, "gfpgan_visibility": 0,
                                     "codeformer_visibility": 0, "upscaling_crop": True},
             "/extra-batch-images": {"imageList": [{"data": image, "name": "a"}], "upscaler_1": "Nearest",
                                     "upscaling_resize": 1.5, "resize_mode": 1, "upscaling_resize_w": 40,
                                     "upscaling_resize_h": 16, "upscaling_crop": False}}
    bomb = _file64(declared_png(tmp_path / "bomb.png", 100_000, 100_000))
    truncated = image[: len(image) // 2 // 4 * 4]
    images = [bomb, truncated, "data:image/png;base64," + bomb, "data:,", base64.b64encode(b"GIF89a").decode()]
    bodies = mutations(bases[route]) + [json.dumps(
        {**bases[route], "image": i} if "image" in bases[route] else {**bases[route], "imageList": [{"data": i, "name": "x"}]}
    ).encode() for i in images]
    assert len(bodies) >= 60
    with caplog.at_level(logging.INFO):
        for body in bodies:
            reply = http.post("/sdapi/v1" + route, content=body, headers={"content-type": "application/json"})
            assert reply.status_code < 500, (body[:200], reply.text[:300])
            if reply.status_code >= 400:  # a refusal: one line, and nothing of the request's text sent back
                assert "SECRETWORD" not in reply.text and "\\n" not in reply.text, reply.text[:300]
        assert http.post("/sdapi/v1" + route, json=bases[route]).status_code == 200  # the service runs on
    assert "SECRETWORD" not in caplog.text


# ------------------------------------------------------------------ the A1111 client library


def test_webuiapi_png_info_interrogate_and_extra_single_image(api, tiny_clip):
    text = (INFOTEXTS / "017.txt").read_text(encoding="utf-8")
    image = pixels((32, 32), seed=9)
    image.info["parameters"] = text  # webuiapi sends an image's text chunks along
    info = api.png_info(image)
    assert info.info == text and info.parameters["Prompt"] == "photo of a duck" and info.parameters["Steps"] == "15"
    assert api.interrogate(image).info == _expected_caption(image.convert("RGB"))
    up = api.extra_single_image(image, upscaler_1="Lanczos", upscaling_resize=2)
    assert up.image.size == (64, 64) and up.image.tobytes() == image.resize((64, 64), Image.LANCZOS).tobytes()
    assert "Lanczos" in up.info
