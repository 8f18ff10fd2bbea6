"""The runner on the CPU with the tiny pipeline: determinism, embedding reuse, cancel, out-of-memory halving, crash
persistence, accept, rerun --verify, img2img, scoring, contact sheets, model resolution, and every bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from journal import Journal
from tests.helpers import imported_after, make_png, run_cli
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner import events as ev
from workshop.runner.engine import Engine, Job, plan_batches
from workshop.errors import RunError
from workshop.runner.models import load_pipeline, resolve
from workshop.runner.pixels import uint8_pixels
from workshop.runner.runs import accept_run, list_runs
from workshop.runner.execution import RunOptions, execute

PROMPT = "a lighthouse at dusk"


@pytest.fixture(autouse=True)
def tiny_by_default():
    """These tests are about plumbing: the random-weight tiny pipeline is the configured default model here."""
    Path(os.environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\n', encoding="utf-8")


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline(resolve("tiny"), torch.device("cpu"))


def jobs_for(prompts_seeds, steps=4):
    return [Job(i, p, "", s, steps, 7.5, 64, 64) for i, (p, s) in enumerate(prompts_seeds)]


def run_engine(pipe, jobs, layout, **kw):
    engine = Engine(pipe, **kw)
    out = {}
    for batch in engine.run(jobs, layout):
        out.update((i, uint8_pixels(pixels)) for i, pixels in zip(batch.cells, batch.pixels))
    return out, engine


def test_generate_command_from_the_issue(tmp_path, capsys):
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "generate", PROMPT, "--model", "tiny", "--seed", "7", "--steps", "4", "--size", "64x64",
                             "--journal", str(j))
    assert code == 0, err
    runs = list_runs(Journal.open(j))
    assert len(runs) == 1 and runs[0].state == "finished" and len(runs[0].done) == 1
    image = Image.open(runs[0].image(runs[0].done[0]))
    assert image.size == (64, 64) and image.info == {}
    assert "random-weight" in out and "lighthouse" not in out  # the tiny model is labelled; the prompt is not echoed


def test_alone_vs_batched_within_1_of_255_and_rerun_identical(pipe):
    jobs = jobs_for([(PROMPT, 1), ("a red circle", 2), (PROMPT, 3), ("a blue square", 4)])
    batched, _ = run_engine(pipe, jobs, [[0, 1, 2, 3]])
    again, _ = run_engine(pipe, jobs, [[0, 1, 2, 3]])
    alone, _ = run_engine(pipe, jobs, [[0], [1], [2], [3]])
    for i in range(4):
        a, b, c = (np.asarray(x[i], dtype=np.int16) for x in (batched, again, alone))
        assert np.array_equal(a, b)  # same layout: bit-identical
        assert np.abs(a - c).max() <= 1  # alone vs in a batch: at most 1/255 per channel
    assert not np.array_equal(np.asarray(batched[0]), np.asarray(batched[2]))  # same prompt, other seed: other image


def test_text_embeddings_computed_once_per_distinct_prompt(pipe):
    calls = []
    hook = pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        jobs = jobs_for([(PROMPT, s) for s in range(4)] + [("a red circle", s) for s in range(4)])
        run_engine(pipe, jobs, plan_batches(jobs, 3))
    finally:
        hook.remove()
    assert len(calls) == 2 * 2  # 2 distinct prompts × (prompt + negative), whatever the batches


def test_plan_batches_groups_compatible_jobs():
    jobs = [Job(0, "a", "", 1, 4, 7.5, 64, 64), Job(1, "a", "", 2, 8, 7.5, 64, 64), Job(2, "b", "", 1, 4, 7.5, 64, 64),
            Job(3, "b", "", 2, 4, 7.5, 64, 64), Job(4, "c", "", 3, 4, 7.5, 64, 64)]
    assert plan_batches(jobs, 2) == [[0, 2], [3, 4], [1]]


def test_progress_events_and_previews(pipe):
    seen = []
    jobs = jobs_for([(PROMPT, 1), (PROMPT, 2)], steps=4)
    run_engine(pipe, jobs, [[0, 1]], on_event=seen.append, preview_every=2)
    steps = [e for e in seen if isinstance(e, ev.Step)]
    assert [s.step for s in steps] == [1, 2, 3, 4] and steps[-1].done == steps[-1].total == 4 and steps[-1].eta_s == 0
    previews = [e for e in seen if isinstance(e, ev.Preview)]
    size = (jobs[0].width, jobs[0].height)  # the latents mapped to RGB, enlarged by the VAE's scale to the image's size
    assert len(previews) == 1 and len(previews[0].images) == 2 and previews[0].images[0].size == size
    assert isinstance(seen[0], ev.BatchStarted) and seen[-1] == steps[-1]  # BatchFinished is the writer's (on disk)
    assert json.loads(json.dumps(steps[0].to_json()))["event"] == "Step"


def test_cancel_keeps_finished_batches(tmp_path):
    journal = Journal.init(tmp_path / "j")
    grid = build_grid(spec_from({"prompt": PROMPT, "seeds": "1-6"}))
    batches_done = []

    def on_event(e):
        if isinstance(e, ev.BatchFinished):
            batches_done.append(e)

    run = execute(grid, RunOptions(model="tiny", max_batch=2), journal, on_event=on_event, cancel=lambda: len(batches_done) >= 2)
    assert run.state == "cancelled"
    assert [c.index for c in run.done] == [0, 1, 2, 3]  # two whole batches kept, the third stopped mid-way
    assert all(run.image(c).exists() for c in run.done) and (run.folder / "sheet.png").exists()


class OutOfMemoryAbove:
    """The real pipeline, except that a batch larger than ``limit`` raises CUDA's out-of-memory error."""

    def __init__(self, pipe, limit):
        self._pipe, self.limit, self.sizes = pipe, limit, []

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def __call__(self, **kwargs):
        size = len(kwargs["generator"])
        self.sizes.append(size)
        if size > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return self._pipe(**kwargs)


def test_out_of_memory_halves_the_batch_and_reports(pipe):
    flaky = OutOfMemoryAbove(pipe, limit=2)
    seen = []
    jobs = jobs_for([(PROMPT, s) for s in range(6)])
    images, engine = run_engine(flaky, jobs, [[0, 1, 2, 3, 4, 5]], on_event=seen.append)
    assert sorted(images) == list(range(6))
    assert flaky.sizes == [6, 3, 2, 1, 2, 1]  # 6 fails, 3 fails, then batches of 2 (later ones too)
    assert engine.layout == [[0, 1], [2], [3, 4], [5]]
    splits = [e for e in seen if isinstance(e, ev.BatchSplit)]
    assert [(s.size, s.new_size) for s in splits] == [(6, 3), (3, 2)]
    reference, _ = run_engine(pipe, jobs, engine.layout)  # the recorded layout reproduces the images exactly
    assert all(np.array_equal(np.asarray(images[i]), np.asarray(reference[i])) for i in range(6))
    with pytest.raises(RunError, match="single image"):
        run_engine(OutOfMemoryAbove(pipe, limit=0), jobs_for([(PROMPT, 1)]), [[0]])


def test_accept_pick_and_rerun_verify(tmp_path, capsys):
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "grid", "-p", "a red circle on a blue background", "-k", "glowing", "-k", "pixel art",
                           "--mode", "leave-one-out", "--seeds", "1-2", "--max-batch", "4", "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    assert len(run.done) == 6 and run.record.layout == [[0, 1, 2, 3], [4, 5]]
    code, out, err = run_cli(capsys, "accept", run.id[-4:], "--title", "𝔊𝔩𝔬𝔴 study", "--pick", "0,5", "--journal", j)
    assert code == 0 and out.startswith("#1 𝔊𝔩𝔬𝔴 study"), err
    exp = Journal.open(j).get(1)
    assert [i.seed for i in exp.images] == [1, 2] and exp.images[1].prompt == "a red circle on a blue background, glowing"
    assert exp.keywords == ("glowing", "pixel art") and exp.model.id == "tiny" and exp.model.pipeline == "StableDiffusionPipeline"
    assert exp.grid.picked == [0, 5] and exp.params["steps"] == 4 and exp.compute.seconds > 0
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", j)
    assert code == 0 and "pixel-identical" in out, out + err
    rerun = list_runs(Journal.open(j))[0]
    assert rerun.record.rerun_of == 1 and rerun.record.verified is True


def test_an_experiment_made_at_1_thread_reruns_byte_identically_at_2(tmp_path, capsys):
    """CPU float reduction order depends on torch's thread count (the TUI runs at cpu_count - 1): the count is recorded
    with the run and the experiment, and rerun uses it."""
    j = tmp_path / "j"
    journal = Journal.init(j)
    grid = build_grid(spec_from({"prompt": "two small red stars on a blue background, glowing", "seeds": "0-3"}))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        run = execute(grid, RunOptions(model="shapes", clip="none"), journal)
        assert run.record.compute.threads == 1
        exp = accept_run(journal, run, "threads")
        assert exp.compute.threads == 1 and Journal.open(j).get(exp.number).compute.threads == 1
        torch.set_num_threads(2)
        code, out, err = run_cli(capsys, "rerun", str(exp.number), "--verify", "--journal", str(j))
        assert code == 0 and "pixel-identical" in out, out + err
        assert torch.get_num_threads() == 2  # restored after the rerun
        assert list_runs(Journal.open(j))[0].record.compute.threads == 1
    finally:
        torch.set_num_threads(before)


def test_rerun_verify_fails_when_an_image_differs(tmp_path, capsys):
    j = tmp_path / "j"
    run_cli(capsys, "generate", PROMPT, "--seed", "3", "--accept", "--title", "kept", "--journal", str(j))
    journal = Journal.open(j)
    exp = journal.get(1)
    path = journal.image_path(exp, exp.images[0])
    make_png(path, (1, 2, 3))  # someone changed the image behind the journal's back …
    Journal.open(j)._index.put([exp.replace(images=(exp.images[0].__class__(**{**exp.images[0].__dict__, "sha256": "0" * 64}),)).to_doc()])
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", str(j))
    assert code == 1 and err.count("promptism:") == 1, err  # one error line, after the run's progress lines
    assert err.splitlines()[-1].startswith("promptism: #1 did not reproduce: see run "), err


def test_img2img_from_an_experiment_records_the_parent(tmp_path, capsys):
    j = str(tmp_path / "j")
    assert run_cli(capsys, "generate", PROMPT, "--seed", "1", "--accept", "--title", "parent", "--journal", j)[0] == 0
    code, _, err = run_cli(capsys, "generate", "a red circle", "--init-image", "#1", "--strength", "0.5", "--steps", "4",
                           "--accept", "--title", "child", "--journal", j)
    assert code == 0, err
    child = Journal.open(j).get(2)
    assert child.parent == 1 and child.params["init_image"] == "#1" and child.params["strength"] == 0.5
    init = make_png(tmp_path / "init.png", (0, 200, 0), size=(40, 40))
    code, _, err = run_cli(capsys, "generate", "x", "--init-image", str(init), "--journal", j)
    assert code == 0, err


def test_scores_effects_and_contact_sheet(tmp_path):
    journal = Journal.init(tmp_path / "j")
    grid = build_grid(spec_from({"prompt": "a red circle", "keywords": ["glowing", "pixel art"], "mode": "leave-one-out", "seeds": [1, 2]}))
    run = execute(grid, RunOptions(model="tiny", clip="tiny-clip"), journal)
    cells = run.record.dump()["cells"]
    assert all(-1 <= c["score"] <= 1 and -1 <= c["base_score"] <= 1 for c in cells)
    effects = run.record.dump()["effects"]
    assert set(effects) == {"glowing", "pixel art"} and effects["glowing"]["pairs"] == 2
    sheet = Image.open(run.folder / "sheet.png")
    bare = Image.open(run.folder / "sheet-unlabelled.png")
    assert bare.size == (3 * 128, 2 * 128) and sheet.width > bare.width and sheet.height > bare.height  # 64 px ×2
    exp = accept_run(journal, run, "scored")
    assert [i.score for i in exp.images] == [c["score"] for c in cells] and exp.grid.to_doc()["effects"] == effects


def test_a_sheet_of_small_images_enlarges_them_sharply_and_fits_its_header():
    from workshop.runner.sheet import MIN_TILE, _width, contact_sheet

    tiles = {i: Image.new("RGB", (32, 32), "blue") for i in range(2)}
    tiles[1].putpixel((0, 0), (255, 0, 0))
    cells = [{"index": i, "subgrid": 0, "row": 0, "col": i, "labels": {"x": [{"text": f"Seed: {i}"}]}} for i in range(2)]
    title = "a long title that is wider than two small tiles together"
    sheet = contact_sheet(cells, tiles, rows=1, cols=2, subgrids=1, title=title, model_line="Generated with shapes")
    bare = contact_sheet(cells, tiles, rows=1, cols=2, subgrids=1, labels=False)
    assert bare.size == (2 * MIN_TILE, MIN_TILE)  # 32 px ×4, whole pixels: no blur between the red pixel and blue
    assert bare.getpixel((MIN_TILE + 3, 3)) == (255, 0, 0) and bare.getpixel((MIN_TILE + 4, 4)) == (0, 0, 255)
    assert sheet.width >= _width(title) > bare.width  # the header is not cut off


def test_crash_after_first_batch_keeps_it(tmp_path):
    j = tmp_path / "j"
    Journal.init(j)
    exe = str(Path(sys.executable).parent / "promptism")
    proc = subprocess.Popen([exe, "generate", PROMPT, "--seeds", "1-40", "--max-batch", "2", "--steps", "30", "--json",
                             "--journal", str(j)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if json.loads(line)["event"] == "BatchFinished":
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    runs = list_runs(Journal.open(j))
    assert len(runs) == 1 and runs[0].state == "interrupted" and 2 <= len(runs[0].done) < 40
    assert all(Image.open(runs[0].image(c)).size == (64, 64) for c in runs[0].done)
    code = subprocess.run([exe, "runs", "--journal", str(j)], capture_output=True, text=True)
    assert "interrupted" in code.stdout
    assert subprocess.run([exe, "accept", runs[0].id, "-t", "saved", "--journal", str(j)], capture_output=True).returncode == 0


def test_an_interrupted_run_is_settled_like_a_cancelled_one(tmp_path, capsys):
    """A run whose process was killed gets scores, keyword effects, a contact sheet and its compute record, as a
    cancelled run has: when it is shown (`runs RUN`) or accepted."""
    j = tmp_path / "j"
    Journal.init(j)
    exe = str(Path(sys.executable).parent / "promptism")
    proc = subprocess.Popen([exe, "grid", "-p", PROMPT, "-k", "glowing", "--mode", "leave-one-out", "--seeds", "1-20",
                             "--max-batch", "2", "--steps", "30", "--clip", "tiny-clip", "--json", "--journal", str(j)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if json.loads(line)["event"] == "BatchFinished":
                break
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = list_runs(Journal.open(j))[0]
    assert run.state == "interrupted" and len(run.done) >= 2 and not (run.folder / "sheet.png").exists()
    assert run.record.compute.threads >= 1  # recorded when the run started
    code, out, err = run_cli(capsys, "runs", run.id, "--journal", str(j))
    assert code == 0 and "interrupted" in out and "contact sheet" in out, out + err
    run = list_runs(Journal.open(j))[0]
    assert run.state == "interrupted" and (run.folder / "sheet.png").exists() and (run.folder / "sheet-unlabelled.png").exists()
    assert all(c.score is not None for c in run.done) and run.record.effects["glowing"].pairs >= 1
    exp = accept_run(Journal.open(j), run, "saved")
    assert all(i.score is not None for i in exp.images) and exp.grid.effects == run.record.effects
    assert exp.compute is not None and exp.compute.threads == run.record.compute.threads


def test_model_from_the_hugging_face_cache_and_local_folder(tmp_path, capsys, monkeypatch):
    tiny = resolve("tiny").path
    cache = Path(__import__("os").environ["HF_HUB_CACHE"])
    snapshot = cache / "models--someone--tiny-sd" / "snapshots" / "0123456789abcdef"
    shutil.copytree(tiny, snapshot)
    (cache / "models--someone--tiny-sd" / "refs").mkdir()
    (cache / "models--someone--tiny-sd" / "refs" / "main").write_text("0123456789abcdef")
    source = resolve("someone/tiny-sd")
    assert source.kind == "hf-cache" and source.revision == "0123456789abcdef"
    code, out, _ = run_cli(capsys, "models", "--json")
    ids = {m["id"]: m for m in json.loads(out)}
    assert "tiny" in ids and ids["someone/tiny-sd"]["revision"] == "0123456789abcdef"
    j = str(tmp_path / "j")
    for model in ("someone/tiny-sd", str(tiny)):
        code, _, err = run_cli(capsys, "generate", PROMPT, "--model", model, "--steps", "2", "--accept", "--title", model[-7:],
                               "--journal", j)
        assert code == 0, err
    local = Journal.open(j).get(2)
    assert local.model.id == tiny.name and str(tiny.parent) not in json.dumps(local.public_doc())  # credited by name
    code, out, err = run_cli(capsys, "rerun", "2", "--verify", "--journal", j)  # the private record finds the folder
    assert code == 0 and "pixel-identical" in out, err


@pytest.mark.parametrize("args, fragment", [
    (["--model", "no-such-model"], "unknown model 'no-such-model': use shapes, tiny"),
    (["--model", "someone/absent"], "not in the local Hugging Face cache"),
    (["--model", "{pickle}"], "pickle"),
    (["--model", "{notapipe}"], "no model_index.json"),
    (["--init-image", "{notimage}"], "not an image"),
    (["--init-image", "#9"], "no experiment #9"),
    (["--size", "60x64"], "not a multiple of 8"),
    (["--size", "big"], "WIDTHxHEIGHT"),
    (["--steps", "0"], "steps must be 1 or more"),
    (["--seed", "-1"], "outside"),
    (["--seed", str(2**32)], "outside"),
    (["--strength", "1.5", "--init-image", "{image}"], "strength"),
    (["--clip", "nonsense"], "CLIP"),
    (["--steps", "1", "--strength", "0.5", "--init-image", "{image}"], "no step to run"),
    (["--guidance", "nan"], "guidance"),
    (["--out", "/proc/promptism-out"], "--out"),
    (["--clip", "ViT-B-32:{pickle_ckpt}"], "pickle"),
])
def test_bad_run_input_is_one_line_and_writes_nothing(args, fragment, tmp_path, capsys):
    j = tmp_path / "j"
    Journal.init(j)
    pickle_model = tmp_path / "pickled"
    shutil.copytree(resolve("tiny").path, pickle_model)
    for f in pickle_model.rglob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    (tmp_path / "notapipe").mkdir()
    (tmp_path / "notimage.png").write_text("no")
    (tmp_path / "clip.pt").write_bytes(b"x")
    subs = {"{pickle}": str(pickle_model), "{notapipe}": str(tmp_path / "notapipe"), "{notimage}": str(tmp_path / "notimage.png"),
            "{image}": str(make_png(tmp_path / "i.png")), "ViT-B-32:{pickle_ckpt}": f"ViT-B-32:{tmp_path / 'clip.pt'}"}
    code, out, err = run_cli(capsys, "generate", PROMPT, *[subs.get(a, a) for a in args], "--journal", str(j))
    assert code != 0 and err.count("\n") == 1 and fragment in err and "Traceback" not in err, err
    assert list_runs(Journal.open(j)) == []  # nothing half-written


@pytest.mark.parametrize("setup, fragment", [
    ("decoy", "unet has only pickle weights (diffusion_pytorch_model.bin)"),
    ("decoy_only", "cannot load model"),
    ("class_42", '"_class_name" must be text'),
    ("list_index", "must be a JSON object"),
    ("not_json", "cannot be read as JSON"),
    ("bad_component", "component 'unet' must be [library, class]"),
])
def test_a_broken_model_folder_is_one_line_of_ours_and_nothing_else(setup, fragment, tmp_path, capsys):
    """Only promptism's line on stderr: no diffusers log line before it, no internal error."""
    folder = tmp_path / "model"
    shutil.copytree(resolve("tiny").path, folder)
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    index = folder / "model_index.json"
    if setup == "decoy":  # a .safetensors beside pickle weights that diffusers would never load
        unet.rename(unet.with_suffix(".bin"))
        (folder / "unet" / "decoy.safetensors").write_bytes(b"not weights")
    elif setup == "decoy_only":
        unet.rename(unet.with_name("decoy.safetensors"))
    elif setup == "class_42":
        index.write_text('{"_class_name": 42}')
    elif setup == "list_index":
        index.write_text("[]")
    elif setup == "not_json":
        index.write_text("{")
    elif setup == "bad_component":
        index.write_text(json.dumps({**json.loads(index.read_text()), "unet": ["diffusers"]}))
    j = tmp_path / "j"
    Journal.init(j)
    exe = str(Path(sys.executable).parent / "promptism")
    result = subprocess.run([exe, "generate", PROMPT, "--model", str(folder), "--journal", str(j)], capture_output=True,
                            text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("promptism: ") and fragment in result.stderr, result.stderr
    assert list_runs(Journal.open(j)) == []


def test_init_image_of_an_experiment_whose_image_is_gone_is_one_line(tmp_path, capsys):
    j = tmp_path / "j"
    code, _, err = run_cli(capsys, "generate", PROMPT, "--steps", "1", "--accept", "--title", "start", "--journal", str(j))
    assert code == 0, err
    journal = Journal.open(j)
    exp = journal.get(1)
    shutil.rmtree(journal.image_path(exp, exp.images[0]).parent)
    runs_before = len(list_runs(journal))
    code, out, err = run_cli(capsys, "generate", PROMPT, "--init-image", "#1", "--journal", str(j))
    assert code == 1 and err.count("\n") == 1 and "#1's image" in err and "missing" in err and "internal error" not in err, err
    assert len(list_runs(Journal.open(j))) == runs_before


def test_every_image_the_runner_opens_goes_through_open_image(tmp_path, monkeypatch):
    """The init image is opened by journal.images.open_image (which bounds pixels), at check time and at run time."""
    import journal.images as images
    from workshop.runner import checks, engine

    opened = []
    real = images.open_image

    def spy(path):
        opened.append(Path(path))
        return real(path)

    monkeypatch.setattr(checks, "open_image", spy)
    monkeypatch.setattr(engine, "open_image", spy)
    init = make_png(tmp_path / "init.png", size=(64, 64))
    journal = Journal.init(tmp_path / "j")
    execute(build_grid(spec_from({"prompt": PROMPT})), RunOptions(model="tiny", init_image=str(init), steps=2), journal)
    assert opened.count(init) == 2  # checked before the run, loaded for the pipeline


def test_runner_never_imports_textual():
    modules = ("workshop.runner.execution", "workshop.runner.engine", "workshop.runner.scoring", "workshop.runner.sheet")
    assert imported_after(*modules, watch=("textual",)) == []


def test_runs_show_json_and_discard(tmp_path, capsys):
    j = str(tmp_path / "j")
    run_cli(capsys, "generate", PROMPT, "--seeds", "1,2", "--journal", j)
    run_id = list_runs(Journal.open(j))[0].id
    code, out, _ = run_cli(capsys, "runs", run_id, "--journal", j)
    assert code == 0 and "finished · 2/2 images" in out and "cell-001-s2.png" in out
    code, out, _ = run_cli(capsys, "runs", "--json", "--journal", j)
    data = json.loads(out)
    assert data[0]["id"] == run_id and len(data[0]["images"]) == 2 and data[0]["layout"] == [[0, 1]]
    assert "lighthouse" not in out and data[0]["cells"][1]["seed"] == 2  # the prompt stays private …
    code, out, _ = run_cli(capsys, "runs", "--json", "--reveal-prompt", "--journal", j)
    assert json.loads(out)[0]["cells"][0]["prompt"] == PROMPT  # … unless revealed
    code, out, err = run_cli(capsys, "accept", run_id, "-t", "none", "--pick", ",", "--journal", j)
    assert code == 2 and "--pick" in err and not Journal.open(j).list()
    code, out, _ = run_cli(capsys, "discard", run_id, "--journal", j)
    assert code == 0 and list_runs(Journal.open(j)) == []
    code, _, err = run_cli(capsys, "accept", run_id, "-t", "gone", "--journal", j)
    assert code == 1 and "no run" in err


def test_generate_out_dir_and_json_events(tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "generate", PROMPT, "--seeds", "1-3", "--json", "--out", str(out_dir), "--journal", str(tmp_path / "j"))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["Loading", "RunStarted"] and "Step" in kinds and kinds[-2:] == ["RunFinished", "Result"]
    assert len(list(out_dir.glob("*.png"))) == 3 and all("lighthouse" not in p.name for p in out_dir.iterdir())
    assert all("lighthouse" not in line for line in out.splitlines())  # progress events carry no prompt


def test_cancel_on_the_last_step_keeps_the_batch(pipe):
    """A cancel that arrives after the last step (during decoding) must not throw away finished images."""
    state = {"steps": 0}

    def on_event(e):
        if isinstance(e, ev.Step):
            state["steps"] = e.step

    jobs = jobs_for([(PROMPT, 1), (PROMPT, 2)], steps=3)
    images, engine = run_engine(pipe, jobs, [[0, 1]], on_event=on_event, cancel=lambda: state["steps"] >= 3)
    assert sorted(images) == [0, 1] and engine.layout == [[0, 1]]


class OutOfCpuMemory:
    """The real pipeline, except that every call fails as torch's CPU allocator does when the machine refuses."""

    def __init__(self, pipe):
        self._pipe = pipe

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def __call__(self, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 39993600256 bytes. Error code 12 (Cannot allocate memory)")


def test_a_cpu_allocation_failure_is_one_run_error_naming_the_fix(pipe):
    with pytest.raises(RunError) as caught:
        run_engine(OutOfCpuMemory(pipe), jobs_for([(PROMPT, 1), (PROMPT, 2)]), [[0, 1]])
    message = str(caught.value)
    assert "out of memory making 2 image(s) of 64x64" in message and "--size or --max-batch" in message
    assert "\n" not in message and "DefaultCPUAllocator" not in message


@pytest.mark.parametrize("args, fragment", [
    (["--steps", "1001"], "steps must be at most 1000 for tiny (its scheduler has 1000 timesteps), not 1001"),
    (["--steps", "2", "--size", "99992x99992"], "over the limit of 67,108,864 (max_image_pixels in config.toml): use e.g. 8192x8192"),
    (["--size", "99999x99999"], "not a multiple of 8: use e.g. 8192x8192"),
    (["--strength", "0.5"], "--strength goes with --init-image"),
    (["--clip", "bogus"], "CLIP scorer 'bogus'"),
    (["--clip", "ViT-B-32:/nonexistent"], "does not exist"),
    (["--init-image", "#2"], "no experiment #2; the journal does not exist yet"),
    (["--init-image", "#abc"], "write #N"),
    (["--init-image", "{folder}"], "is a directory"),
    (["--init-image", "{notimage}"], "not an image"),
    (["--model", "{decoy}"], "only pickle weights"),
    (["--model", "{unknown_class}"], "cannot load model"),
])
@pytest.mark.parametrize("journal_there", ["absent", "empty"])
def test_bad_run_input_creates_no_journal_and_no_out_folder(args, fragment, journal_there, tmp_path, capsys):
    """Everything is checked (and the model loaded) before the journal, the run or the --out folder is created."""
    j = tmp_path / "new" / "j"
    if journal_there == "empty":
        j.mkdir(parents=True)
    decoy = tmp_path / "decoy"
    shutil.copytree(resolve("tiny").path, decoy)
    unet = decoy / "unet" / "diffusion_pytorch_model.safetensors"
    unet.rename(unet.with_suffix(".bin"))
    (decoy / "unet" / "decoy.safetensors").write_bytes(b"not weights")
    unknown_class = tmp_path / "unknown-class"
    shutil.copytree(resolve("tiny").path, unknown_class)
    index = unknown_class / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "_class_name": "NoSuchPipeline"}))
    (tmp_path / "notimage.png").write_text("no")
    subs = {"{folder}": str(tmp_path), "{notimage}": str(tmp_path / "notimage.png"), "{decoy}": str(decoy),
            "{unknown_class}": str(unknown_class)}
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "generate", PROMPT, *[subs.get(a, a) for a in args], "--out", str(out_dir),
                             "--journal", str(j))
    assert code == 1 and err.count("\n") == 1 and fragment in err and "internal error" not in err, err
    assert (list(j.iterdir()) == [] if journal_there == "empty" else not (tmp_path / "new").exists())
    assert not out_dir.exists()


def test_the_size_suggestions_are_valid_sizes():
    from journal.limits import pixel_limit
    from workshop.runner.options import check_options, parse_size, suggest_size

    for w, h in [(99999, 99999), (99992, 99992), (60, 64), (0, 64), (10**7, 8), (8, 10**7), (8193, 8192), (3, 5)]:
        suggested = parse_size(suggest_size(w, h))
        check_options(RunOptions(size=suggested))  # refused sizes suggest only sizes that are accepted
        assert suggested[0] * suggested[1] <= pixel_limit()


def test_a_rerun_keeps_the_grid_layout_of_its_cells(tmp_path, capsys):
    """A 3×3 leave-one-out grid run in batches of one row; cells 0 and 7 picked: the rerun runs their batches (rows 0
    and 2) and shows them as a 2×3 grid, each cell in its column, its row closed up — not as 1×6 tiles."""
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "grid", "-p", "a red circle", "-k", "glowing", "-k", "pixel art", "--mode",
                           "leave-one-out", "--seeds", "1-3", "--max-batch", "3", "--steps", "1", "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    assert run.record.grid.dump() == {"rows": 3, "cols": 3, "subgrids": 1} and run.record.layout == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    code, out, err = run_cli(capsys, "accept", run.id, "--title", "Corners", "--pick", "0,7", "--journal", j)
    assert code == 0, err
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", j)
    assert code == 0 and "pixel-identical" in out, out + err
    rerun = list_runs(Journal.open(j))[0].record.dump()
    assert rerun["grid"] == {"rows": 2, "cols": 3, "subgrids": 1}
    assert [(c["row"], c["col"], c["seed"]) for c in rerun["cells"]] == [(0, 0, 1), (0, 1, 1), (0, 2, 1), (1, 0, 3), (1, 1, 3), (1, 2, 3)]
    original = {c["index"]: c for c in run.record.dump()["cells"]}
    assert [c["prompt"] for c in rerun["cells"]] == [original[i]["prompt"] for i in (0, 1, 2, 6, 7, 8)]


def test_init_image_hash_n_colon_k_starts_from_image_k_of_experiment_n(tmp_path, capsys):
    """``#N:K``: image K (1-based, in `promptism show N`'s order) of experiment N, from the flag and a spec file alike;
    a K past N's images is one line saying how many it has."""
    from journal.images import sha256_file

    j = str(tmp_path / "j")
    red, green = make_png(tmp_path / "red.png", (200, 0, 0)), make_png(tmp_path / "green.png", (0, 200, 0))
    assert run_cli(capsys, "import", str(red), str(green), "--title", "two", "--model", "m", "--journal", j)[0] == 0
    journal = Journal.open(j)
    exp = journal.get(1)
    shown = run_cli(capsys, "show", "1", "--journal", j)[1]
    assert f"Image 2    {journal.image_path(exp, exp.images[1])}" in shown  # K as `show` numbers them
    spec = tmp_path / "s.toml"
    spec.write_text(f'prompt = "{PROMPT}"\n[params]\ninit_image = "#1:2"\nsteps = 4\n', encoding="utf-8")
    for args in (["generate", PROMPT, "--init-image", "#1:2", "--steps", "4"], ["grid", str(spec)],
                 ["generate", PROMPT, "--init-image", "#1", "--steps", "4"]):
        code, _, err = run_cli(capsys, *args, "--journal", j)
        assert code == 0, err
    second, first = sha256_file(journal.image_path(exp, exp.images[1])), sha256_file(journal.image_path(exp, exp.images[0]))
    made = [(r.record.params.init_image, r.record.params.init_sha256, r.record.params.parent)
            for r in reversed(list_runs(Journal.open(j)))]
    assert made == [("#1:2", second, 1), ("#1:2", second, 1), ("#1", first, 1)] and first != second
    for given, says in (("#1:3", "experiment #1 has 2 image(s): pick K from 1 to 2"), ("#1:0", "has 2 image(s)"),
                        ("#1:x", "#N:K for its image K")):
        code, _, err = run_cli(capsys, "generate", PROMPT, "--init-image", given, "--journal", j)
        assert code == 1 and err.count("\n") == 1 and says in err, err
    assert len(list_runs(Journal.open(j))) == 3
