"""ComfyUI workflows with LoRA loaders (issue 26): ``LoraLoader`` (``strength_model`` on the UNet, ``strength_clip`` on
the text encoder) and ``LoraLoaderModelOnly`` nodes on the way from the checkpoint to the sampler are imported as
A1111's ``<lora:NAME:TE:UNET>`` tags at the prompt's end — so the prompt says what made the picture in the syntax
every promptism surface applies — recorded in the experiment's ``loras``, and a rerun applies them: the pixels of a
promptism run with those tags, not those of the prompt alone. What cannot be applied is said at import and named by
rerun (``--strict``: refused)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from journal import Journal
from journal.importing import experiment_from_sources, read_source
from tests import import_samples as samples
from tests.helpers import generated, images_of, run_cli
from tests.test_loras import kohya_lora
from workshop.runner.runs import list_runs

PROMPT = "a red circle, glowing"


def graph(*loras: dict, seed: int = 1) -> dict:
    """ComfyUI's default workflow (its API graph, the PNG's "prompt" chunk), tiny-sized, with ``loras`` chained
    between the checkpoint and the sampler in the order given: each a LoRA loader's inputs (``class_type`` picks
    LoraLoaderModelOnly), its ``model`` / ``clip`` linked to the one before."""
    g = samples.comfy_graph()
    g["3"]["inputs"] |= {"seed": seed, "steps": 2, "cfg": 7.0}
    g["5"]["inputs"] |= {"width": 64, "height": 64}
    g["6"]["inputs"]["text"] = PROMPT
    model, clip = ["4", 0], ["4", 1]
    for n, given in enumerate(loras, 20):
        inputs = {k: v for k, v in given.items() if k != "class_type"}
        kind = given.get("class_type", "LoraLoader")
        g[str(n)] = {"class_type": kind, "inputs": inputs | {"model": model} | ({"clip": clip} if kind == "LoraLoader" else {})}
        model, clip = [str(n), 0], [str(n), 1] if kind == "LoraLoader" else clip
    g["3"]["inputs"]["model"] = model
    g["6"]["inputs"]["clip"] = g["7"]["inputs"]["clip"] = clip
    return g


def ui_workflow(api: dict) -> dict:
    """The UI workflow ComfyUI saves beside the graph (the "workflow" chunk), shaped as ComfyUI writes it: nodes with
    their input slots (linked), outputs and widget values in order, and the links."""
    links, nodes = [], []
    for target, node in api.items():
        slots, widgets = [], []
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                links.append([len(links) + 1, int(value[0]), value[1], int(target), len(slots), name.upper()])
                slots.append({"name": name, "type": name.upper(), "link": len(links)})
            else:
                widgets.append(value)
        nodes.append({"id": int(target), "type": node["class_type"], "pos": [0, 0], "size": [315, 98], "flags": {},
                      "order": len(nodes), "mode": 0, "inputs": slots, "outputs": [], "properties": {
                          "Node name for S&R": node["class_type"]}, "widgets_values": widgets})
    return {"last_node_id": max(map(int, api)), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


def comfy_png(path: Path, api: dict, workflow: bool = True, noise: int = 0) -> Path:
    text = {"prompt": json.dumps(api)} | ({"workflow": json.dumps(ui_workflow(api))} if workflow else {})
    path.parent.mkdir(parents=True, exist_ok=True)
    return samples.png(path, text, seed=noise)


def info(tmp_path, api: dict, workflow: bool = True):
    return read_source(comfy_png(tmp_path / "ComfyUI_00001_.png", api, workflow)).info


DETAIL = {"lora_name": "sub\\tinydetail.safetensors", "strength_model": 0.8, "strength_clip": 0.5}  # (saved on Windows)
STYLE = {"class_type": "LoraLoaderModelOnly", "lora_name": "tinystyle.safetensors", "strength_model": 0.6}


@pytest.mark.parametrize("workflow", [True, False], ids=["png-with-ui-workflow", "api-graph-only"])
def test_chained_lora_loaders_become_a1111_tags_at_the_prompts_end(tmp_path, workflow):
    found = info(tmp_path, graph(DETAIL, STYLE), workflow)
    tags = ("<lora:sub/tinydetail:0.5:0.8>", "<lora:tinystyle:0:0.6>")  # TE (strength_clip), then UNet (strength_model)
    assert (found.prompt, found.networks, found.left_out) == (f"{PROMPT} {' '.join(tags)}", tags, ())
    assert found.params["loras"] == ["sub/tinydetail", "tinystyle"]  # a graph holds no hash: the names alone
    new = experiment_from_sources([read_source(tmp_path / "ComfyUI_00001_.png")], "Comfy")
    assert new.keywords == ["a red circle", "glowing", *tags]  # each LoRA a keyword of its own


def test_a_lora_at_strength_0_is_left_out_and_one_loaded_twice_adds_up(tmp_path):
    zero = {"lora_name": "off.safetensors", "strength_model": 0, "strength_clip": 0.0}
    again = {"lora_name": "sub/tinydetail.safetensors", "strength_model": 0.2, "strength_clip": 0.5}
    found = info(tmp_path, graph(DETAIL, zero, again))
    assert found.prompt == f"{PROMPT} <lora:sub/tinydetail:1>" and found.params["loras"] == ["sub/tinydetail"]
    assert found.left_out == ()


def test_a_lora_off_the_way_or_with_no_number_is_recorded_said_and_named_by_rerun(tmp_path, capsys):
    """A LoRA on another sampler's way (a first pass's) and one whose strength another node gives are not applied:
    each said at import in one line, recorded, and named by rerun — never dropped silently."""
    api = samples.comfy_hires_graph()
    api["9"]["inputs"]["filename_prefix"] = "ComfyUI"
    api |= {"20": {"class_type": "LoraLoader", "inputs": DETAIL | {"model": ["4", 0], "clip": ["4", 1]}},
            "21": {"class_type": "PrimitiveFloat", "inputs": {"value": 0.7}},
            "22": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "tinystyle.safetensors",
                                                                   "strength_model": ["21", 0], "model": ["4", 0]}}}
    api["3"]["inputs"]["model"] = ["20", 0]  # the first pass (previewed) has the LoRA, the pass that made the image not
    api["11"]["inputs"]["model"] = ["22", 0]
    found = info(tmp_path, api)
    assert found.params["loras"] == ["tinystyle", "sub/tinydetail"] and "<lora:" not in found.prompt
    assert found.left_out == (
        "ComfyUI LoRA tinystyle (node 22): its strength_model is no number (another node's output?): not applied",
        "ComfyUI LoRA sub/tinydetail (node 20) is not on the way from v1-5-pruned-emaonly.safetensors to its sampler "
        "and prompt (another pass's): not applied")
    j = str(tmp_path / "j")
    code, out, err = run_cli(capsys, "import", str(tmp_path / "ComfyUI_00001_.png"), "-t", "Two passes", "--journal", j)
    assert code == 0 and "strength_model is no number" in out + err and "node 20" in out + err, out + err
    code, out, err = run_cli(capsys, "rerun", "1", "--model", "tiny", "--strict", "--journal", j)
    assert code != 0 and list_runs(Journal.open(j)) == []
    assert err.splitlines() == [f"promptism: --strict: #1 is not made, as it would leave out LoRA {name} (recorded, but "
                                "no <lora:…> tag of the prompt applies it)" for name in ("tinystyle", "sub/tinydetail")]


def test_the_negative_prompts_own_loras_are_said(tmp_path):
    api = graph(DETAIL)
    api["7"]["inputs"]["clip"] = ["4", 1]  # the negative prompt's encoder without the LoRA
    found = info(tmp_path, api)
    assert found.prompt.endswith("<lora:sub/tinydetail:0.5:0.8>")
    assert found.left_out == ("the negative prompt's text encoder has other ComfyUI LoRAs than the prompt's: the "
                              "prompt's are applied to both",)


@pytest.fixture
def comfyui(tmp_path):
    """A ComfyUI install with a kohya LoRA for tiny in a subfolder of models/loras."""
    from diffusers import StableDiffusionPipeline

    from workshop.runner.models import resolve

    folder = tmp_path / "ComfyUI"
    pipe = StableDiffusionPipeline.from_pretrained(resolve("tiny").path, local_files_only=True)
    kohya_lora(pipe, folder / "models" / "loras" / "sub" / "tinydetail.safetensors")
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'comfyui = "{folder}"\n', encoding="utf-8")
    return folder


def test_a_rerun_applies_the_workflows_lora_as_a_promptism_run_with_its_tag(comfyui, tmp_path, capsys):
    j = tmp_path / "j"
    for noise, (name, api) in enumerate((("with", graph(DETAIL)), ("without", graph()))):
        src = comfy_png(tmp_path / name / "ComfyUI_00001_.png", api, noise=noise)
        assert run_cli(capsys, "import", str(src), "-t", f"Comfy {name}", "--journal", str(j))[0] == 0
    made = {}
    for number in (1, 2):
        before = {r.id for r in list_runs(Journal.open(j))}
        code, out, err = run_cli(capsys, "rerun", str(number), "--model", "tiny", "--strict", "--journal", str(j))
        assert code == 0 and "not applied" not in out + err, out + err
        (made[number],) = [r for r in list_runs(Journal.open(j)) if r.id not in before]
    tag = "<lora:sub/tinydetail:0.5:0.8>"
    assert made[1].record.spec.prompt == f"{PROMPT} {tag}"
    from workshop.runner.model_files import addnet_hash

    assert made[1].record.params.loras == [f"sub/tinydetail: {addnet_hash(comfyui / 'models/loras/sub/tinydetail.safetensors')[:12]}"]
    assert images_of(made[1]) != images_of(made[2])  # the LoRA is applied
    by_hand = generated(capsys, j, f"{PROMPT} {tag}", "-n", "text, watermark", "--guidance", "7",
                        "--sampler", "Euler", "--size", "64x64")
    assert images_of(made[1]) == images_of(by_hand)  # exactly as promptism applies the tag
    before = {r.id for r in list_runs(Journal.open(j))}
    code, out, err = run_cli(capsys, "rerun", "1", "--model", "tiny", "--journal", str(j))
    (again,) = [r for r in list_runs(Journal.open(j)) if r.id not in before]
    assert code == 0 and images_of(again) == images_of(made[1])  # byte-identical rerun


def test_a_lora_that_is_not_here_is_the_runs_one_line_refusal(tmp_path, capsys):
    j = str(tmp_path / "j")
    src = comfy_png(tmp_path / "ComfyUI_00001_.png", graph(DETAIL))
    assert run_cli(capsys, "import", src.as_posix(), "-t", "Comfy", "--journal", j)[0] == 0
    code, out, err = run_cli(capsys, "rerun", "1", "--model", "tiny", "--journal", j)
    assert code != 0 and err.count("\n") == 1 and "no lora 'sub/tinydetail' here" in err, err
    assert list_runs(Journal.open(j)) == []
