"""AUTOMATIC1111's X/Y/Z axis types beyond S/R, seed, steps and guidance — sampler, model, size, strength, negative
S/R, Prompt order and a keyword's weight: parsed and refused like the others, set per cell, run with each cell's
settings (a model axis loads its models one after another), accepted one model at a time, rerun and resumed to the
same bytes; a weight axis's dose-response curve measured with a scorer."""

import json

import pytest

from journal import Journal
from tests.helpers import run_cli
from workshop.compose.errors import SpecError
from workshop.compose.grid import AxisSpec, GridSpec, build_grid
from workshop.compose.prompt import Keyword, Prompt
from workshop.compose.spec import spec_from
from workshop.runner import events as ev
from workshop.runner.runs import list_runs
from workshop.runner.execution import RunOptions, execute, resume

PROMPT = "a red circle on a blue background"


def grid(prompt=PROMPT, keywords=(), negative="", **values):
    return build_grid(spec_from({"prompt": prompt, "keywords": list(keywords), "negative": negative, **values}))


def test_setting_axes_set_each_cells_params_with_public_labels():
    g = grid(axes={"x": "sampler=Euler a,DPM++ 2M Karras", "y": "size=64x64, 96x64", "z": "model=tiny,shapes"})
    assert len(g.cells) == 8 and (g.cols, g.rows, g.subgrids) == (2, 2, 2)
    assert g.cells[3].params == {"sampler": "DPM++ 2M Karras", "width": 96, "height": 64, "model": "tiny"}
    assert g.cells[4].params["model"] == "shapes"
    labels = {lb.text: lb.private for c in g.cells for axis in c.labels.values() for lb in axis}
    assert labels == {"Sampler: Euler a": False, "Sampler: DPM++ 2M Karras": False, "Size: 64x64": False,
                      "Size: 96x64": False, "Model: tiny": False, "Model: shapes": False}
    strength = grid(axes={"x": "strength=0.3-0.5 (+0.1)"})
    assert [c.params["strength"] for c in strength.cells] == [0.3, 0.4, 0.5]
    assert strength.cells[1].labels["x"][0].text == "Strength: 0.4"


def test_negative_sr_replaces_in_the_negative_prompt_alone_privately():
    g = grid(prompt="a blurry red circle", negative="blurry, dark", axes={"x": "nsr=blurry,noisy"})
    assert [(c.prompt, c.negative) for c in g.cells] == [("a blurry red circle", "blurry, dark"),
                                                         ("a blurry red circle", "noisy, dark")]
    assert g.cells[1].labels["x"][0].private and "noisy" in g.terms


def test_prompt_order_permutes_the_listed_parts_in_their_slots_like_a1111():
    """A1111's apply_order: each listed part where it first occurs; the earliest slot takes the permutation's first."""
    g = grid(prompt="a circle", keywords=["red", "glowing", "pixel art"], axes={"x": "order=pixel art,red"})
    assert [c.prompt for c in g.cells] == ["a circle, pixel art, glowing, red", "a circle, red, glowing, pixel art"]
    assert [c.labels["x"][0].text for c in g.cells] == ["pixel art, red", "red, pixel art"]
    three = grid(prompt="a circle", keywords=["red", "glowing", "pixel art"], axes={"y": "order=red,glowing,pixel art"})
    assert len(three.cells) == 6 and len({c.prompt for c in three.cells}) == 6
    assert three.cells[0].prompt == "a circle, red, glowing, pixel art"  # the first permutation is the order listed
    assert three.cells[5].prompt == "a circle, pixel art, glowing, red"


def test_weight_axis_writes_each_weight_in_a1111_syntax_and_one_as_plain_text():
    g = grid(prompt="portrait of a gnome", keywords=["in the style of Basquiat", "oil"],
             axes={"x": "weight:in the style of basquiat=0,0.5,1,1.5"})
    assert [c.prompt for c in g.cells] == [
        "portrait of a gnome, (in the style of Basquiat:0), oil", "portrait of a gnome, (in the style of Basquiat:0.5), oil",
        "portrait of a gnome, in the style of Basquiat, oil", "portrait of a gnome, (in the style of Basquiat:1.5), oil"]
    assert all(c.keywords == ("in the style of Basquiat", "oil") for c in g.cells)
    assert [lb.text for c in g.cells for lb in c.labels["x"]][1] == "in the style of Basquiat: 0.5"
    assert all(c.labels["x"][0].private for c in g.cells)
    axis = AxisSpec.parse("weight:in the style of Basquiat=0-1 [3]", "x")
    assert axis.text == "weight:in the style of Basquiat=0,0.5,1" and AxisSpec.parse(axis.text, "x") == axis


@pytest.mark.parametrize("axes, complaint", [
    ({"x": "sampler=Euler a,Euler a"}, "a sampler value is given twice"),
    ({"x": "model=tiny,tiny"}, "a model value is given twice"),
    ({"x": "size=64x64,100x64"}, "size '100x64' is not in multiples of 8"),
    ({"x": "size=64"}, "size '64': write WIDTHxHEIGHT"),
    ({"x": "size=64x64,64x64"}, "a size value is given twice"),
    ({"x": "strength=0.5,1.5"}, "strength 1.5 is outside (0, 1]"),
    ({"x": "strength=a"}, "cannot read strength values"),
    ({"x": "nsr=dark,light"}, "the nsr key 'dark' is not in the negative prompt"),
    ({"x": "order=red"}, "order needs two or more parts"),
    ({"x": "order=red,purple"}, "the order part 'purple' is not in the prompt"),
    ({"x": "weight:pixel art=0,1"}, "keyword 'pixel art' is not a keyword of the prompt"),
    ({"x": "weight:glowing=0,1,1"}, "a weight value is given twice"),
    ({"x": "weight=0,1"}, "write TYPE=VALUES"),
    ({"x": "weight:=0,1"}, "name the keyword to weigh"),
    ({"x": "checkpoint=a"}, "write TYPE=VALUES with TYPE one of sr, nsr, order, weight, seed, steps, guidance, sampler"),
    ({"x": "sampler=Euler,Euler a", "y": "sampler=Euler a,Euler"}, "would be identical"),  # the last axis wins
])
def test_bad_axes_are_refused_in_one_line(axes, complaint):
    values = {"prompt": "a red circle", "keywords": ["glowing"], "negative": "blurry", "axes": axes}
    with pytest.raises(SpecError) as caught:
        build_grid(spec_from(values))
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


def test_order_parts_a_mode_takes_out_are_refused():
    with pytest.raises(SpecError, match="cell 1's prompt has no 'glowing'"):
        grid(keywords=["glowing", "pixel art"], mode="leave-one-out", axes={"y": "order=glowing,pixel art"})


def test_dry_run_json_shows_each_cells_settings(tmp_path, capsys):
    code, out, err = run_cli(capsys, "grid", "-p", PROMPT, "-k", "glowing", "--x", "weight:glowing=0,1.5",
                             "--y", "sampler=Euler a,DPM++ 2M Karras", "--z", "size=64x64,64x96", "--model", "tiny",
                             "--dry-run", "--json")
    assert code == 0, err
    cells = json.loads(out)
    assert [(c["sampler"], c["width"], c["height"]) for c in cells[::2]] == [
        ("Euler a", 64, 64), ("DPM++ 2M Karras", 64, 64), ("Euler a", 64, 96), ("DPM++ 2M Karras", 64, 96)]
    assert cells[0]["prompt"].endswith("(glowing:0)") and cells[1]["prompt"].endswith("(glowing:1.5)")


@pytest.mark.parametrize("args, message", [
    (["--x", "sampler=Euler a,Euler b"], "unknown sampler 'Euler b': use one of"),
    (["--x", "model=tiny,no-such-model"], "unknown model 'no-such-model'"),  # (a dry run resolves no model)
    (["--x", "model=tiny,vqgan-clip"], "the model axis takes diffusion models"),
    (["--x", "strength=0.5,0.7"], "a strength axis goes with --init-image"),
    (["--x", "size=64x64,16384x8192"], "size 16384x8192 is 134,217,728 pixels, over the limit"),
])
def test_bad_axis_settings_are_refused_before_anything_is_written(tmp_path, capsys, args, message):
    j = tmp_path / "j"
    for dry_run in (*([["--dry-run"]] if "model=" not in args[1] else []), []):  # (a dry run first: it makes nothing)
        code, _, err = run_cli(capsys, "grid", "-p", PROMPT, "--model", "tiny", *args, *dry_run, "--journal", str(j))
        assert code != 0 and message in err and err.count("\n") == 1, err
    assert not j.exists()


def test_a_sampler_axis_runs_each_batch_with_its_sampler_and_reruns_byte_identical(tmp_path, capsys):
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "grid", "-p", PROMPT, "--x", "sampler=Euler a,DPM++ 2M Karras", "--seeds", "1-2",
                           "--size", "32x32", "--model", "tiny", "--steps", "2", "--accept", "--title", "Samplers",
                           "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    r = run.record
    assert [c.sampler for c in r.cells] == ["Euler a", "DPM++ 2M Karras"] * 2 and r.params.sampler is None
    assert r.layout == [[0, 2], [1, 3]]  # one batch per sampler
    images = [run.image(c).read_bytes() for c in r.cells]
    assert images[0] != images[1]  # the samplers make different images of the same seed
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0 and "pixel-identical" in out, out + err


def test_a_model_axis_runs_each_model_then_accepts_and_reruns_one_models_cells(tmp_path, capsys):
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "grid", "-p", PROMPT, "--x", "model=tiny,shapes", "--seeds", "1-2", "--steps", "2",
                           "--size", "32x32", "--clip", "none", "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    r = run.record
    assert r.model.id == "tiny" and list(r.models) == ["tiny", "shapes"]
    assert [m.info.id for m in r.models.values()] == ["tiny", "shapes"]
    assert [c.model for c in r.cells] == ["tiny", "shapes", "tiny", "shapes"]
    assert r.layout == [[0, 2], [1, 3]]  # each model's batch together
    code, _, err = run_cli(capsys, "accept", run.id, "--title", "Both", "--journal", j)
    assert code == 1 and err == ("promptism: accept the cells of each model as an experiment of its own: "
                                 "--pick 0,2 (tiny); --pick 1,3 (shapes)\n"), err
    code, out, err = run_cli(capsys, "accept", run.id, "--pick", "1,3", "--title", "Shapes alone", "--journal", j)
    assert code == 0 and "by shapes" in out, err
    exp = Journal.open(j).get(1)
    assert exp.model.id == "shapes" and exp.grid.model_source is None
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0 and "pixel-identical" in out, out + err
    assert list_runs(Journal.open(j))[0].record.model.id == "shapes"


def test_a_model_axis_run_cancelled_after_its_first_model_resumes_on_the_second(tmp_path):
    spec = spec_from({"prompt": PROMPT, "seeds": "1-2", "axes": {"x": "model=tiny,shapes"}})
    options = RunOptions(model="tiny", steps=2, size=(32, 32), clip="none")
    finished = []
    journal = Journal.init(tmp_path / "j")
    run = execute(build_grid(spec), options, journal, on_event=lambda e: isinstance(e, ev.BatchFinished) and finished.append(e),
                  cancel=lambda: len(finished) >= 1)
    assert run.state == "cancelled" and [c.model for c in run.done] == ["tiny", "tiny"]
    events = []
    resume(journal, run, options, on_event=events.append)
    assert run.state == "finished" and len(run.done) == 4
    fresh = []
    whole = execute(build_grid(spec), options, Journal.init(tmp_path / "whole"), on_event=fresh.append)
    loading = [e.model for e in events if isinstance(e, ev.Loading)]
    assert loading[:2] == ["tiny", "shapes"] and loading == [e.model for e in fresh if isinstance(e, ev.Loading)]
    assert {c.file: run.image(c).read_bytes() for c in run.done} == {c.file: whole.image(c).read_bytes() for c in whole.done}


def test_a_weight_axis_records_the_keywords_curve_and_runs_shows_it(tmp_path, capsys):
    """With literal or compel-weighted prompts alike: a point per weight, in weight order, paired by seed; the lowest
    weight is its own baseline. (The magnitudes are the model's: not asserted.)"""
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "grid", "-p", "a red circle", "-k", "glowing", "--x", "weight:glowing=1.5,0,0.5,1",
                           "--seeds", "1-2", "--steps", "2", "--model", "shapes", "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    curve = run.record.weight_curves["glowing"]
    assert [p.weight for p in curve] == [0, 0.5, 1, 1.5] and all(p.pairs == 2 for p in curve)
    assert curve[0].effect == 0 and all(-1 <= p.similarity <= 1 for p in curve)
    assert len({p.similarity for p in curve}) > 1  # each weight's images are its own
    code, out, err = run_cli(capsys, "runs", run.id, "--journal", j)
    assert code == 0 and "  keyword 1 by weight (CLIP" in out, err  # named only with --reveal-prompt
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["0.5"], ["1"], ["1.5"])]
    assert [row[0] for row in rows[-4:]] == ["0", "0.5", "1", "1.5"]
    code, out, err = run_cli(capsys, "runs", run.id, "--json", "--reveal-prompt", "--journal", j)
    shown = json.loads(out)[0]["weight_curves"]
    assert shown[0]["keyword"] == "glowing" and [p["weight"] for p in shown[0]["points"]] == [0, 0.5, 1, 1.5]


def test_keyword_effects_still_pair_cells_whose_keywords_carry_weights(tmp_path):
    prompt = Prompt("a red circle", (Keyword("glowing", weight=1.3), Keyword("pixel art")))
    spec = GridSpec(prompt=prompt, mode="leave-one-out", seeds=(1, 2))
    run = execute(build_grid(spec), RunOptions(model="shapes", steps=2), Journal.init(tmp_path / "j"))
    assert run.record.cells[0].prompt == "a red circle, (glowing:1.3), pixel art"
    effects = run.record.effects
    assert set(effects) == {"glowing", "pixel art"} and effects["glowing"].pairs == 2
