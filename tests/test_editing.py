"""A1111's prompt editing ``[from:to:when]`` and alternation ``[a|b]`` (``compose/editing.py``, the engine's
per-step conditioning): the schedule of A1111's documented examples; on tiny real pipelines, an edit at the last step
is the ``from`` prompt's image and one at step 0 the ``to`` prompt's, to the byte; the switch falls where A1111's
sampler makes it; SDXL, no guidance, img2img and the negative prompt; a batch of prompts of different lengths;
reruns byte-identical; bad input one line, nothing written."""

import numpy as np
import pytest
import torch

from journal import Journal
from tests.helpers import run_cli
from tests.test_weights import sdxl  # noqa: F401  (a fixture)
from workshop.compose.editing import final, schedule, variants
from workshop.compose.errors import SpecError
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.compose.tokens import clip_bpe, windows
from workshop.runner.engine import Engine, Job
from workshop.runner.execution import RunOptions, execute
from workshop.runner.models import load_pipeline, resolve
from workshop.runner.pixels import uint8_pixels
from workshop.runner.runs import list_runs

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny():
    return load_pipeline(resolve("tiny"), CPU)


def image(pipe, prompt, negative="", seed=1, steps=4, guidance=7.5, init=None, strength=None) -> np.ndarray:
    job = Job(0, prompt, negative, seed, steps, guidance, 64, 64, strength=strength, init_image=init)
    batch = next(Engine(pipe).run([job], [[0]]))
    return np.asarray(uint8_pixels(batch.pixels[0]), dtype=np.int16)


def test_the_schedule_of_a1111s_documented_example():
    """The wiki's example ("Features", prompt editing) over 100 steps: each part switches at its own step."""
    prompt = ("fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6]"
              "[ in background:0.25] [shoddy:masterful:0.5]")
    assert schedule(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
    ]
    assert schedule("a [fantasy:cyberpunk:16] landscape", 100) == [(16, "a fantasy landscape"), (100, "a cyberpunk landscape")]
    assert schedule("a [b:.5] c", 10) == [(5, "a  c"), (10, "a b c")]  # [to:when]: added; .5 a fraction
    assert schedule("a [b::3] c", 10) == [(3, "a b c"), (10, "a  c")]  # [from::when]: taken out
    assert schedule("[fe|]male", 4) == [(1, "female"), (2, "male"), (3, "female"), (4, "male")]  # every step
    assert schedule("a [b:c:20] d", 10) == [(10, "a b d")]  # past the end: never switches
    assert schedule("([cat:dog:2]:1.2) [x]", 4) == [(2, "(cat:1.2) [x]"), (4, "(dog:1.2) [x]")]  # emphasis kept
    assert schedule("[[a|b]:c:2]", 4) == [(1, "a"), (2, "b"), (4, "c")]  # nested
    assert schedule("no editing (here:1.1)", 7) == [(7, "no editing (here:1.1)")]
    # a hires fix's second pass: a step counts on from the first pass, a fraction from 1 (A1111 1.10's scheduling)
    assert schedule("a [b:c:15] d", 10, first_pass=10) == [(5, "a b d"), (10, "a c d")]
    assert schedule("a [b:c:1.5] d", 10, first_pass=20) == [(5, "a b d"), (10, "a c d")]
    assert schedule("a [b:c:1.5] d", 20) == [(20, "a b d")]  # the first pass: past its end, never switched
    assert schedule("a [b:c:0.5] d", 10, first_pass=20) == [(10, "a c d")]  # switched in the first pass: done
    assert final("a [cat:dog:3] [x|y]") == "a dog x y" and variants("a [cat:dog:3]") == ["a cat", "a dog"]


@pytest.mark.parametrize("text, message", [
    ("a [cat:dog]", '"[" at character 3 holds ":" but \'dog\' after the last one is no step to switch at'),
    ("a [cat:dog:-1]", "no step to switch at"),
    ("a [cat:dog:2.5]", "the edit at character 3 switches at 2.5, past the end: a fraction of the steps is 0 to 1"),
    ("a [cat:dog:0.5", 'unbalanced "[" at character 3: close it with "]"'),
    ("a [cat:dog:0.5]]", 'unbalanced "]" at character 16'),
    ("a [cat:dog:x:0.5]", 'holds 3 ":": prompt editing is [from:to:when]'),
    ("a [cat|dog:0.5]", 'holds both ":" and "|"'),
    ("a|b [cat:dog:1]", 'the "|" at character 2 is outside brackets'),
])
def test_malformed_editing_is_refused_naming_the_character(text, message):
    with pytest.raises(SpecError) as caught:
        schedule(text, 10)
    assert message in str(caught.value)


def test_an_edit_at_the_last_step_is_the_from_prompt_and_at_step_0_the_to_prompt(tiny):
    cat, dog = image(tiny, "a photo of a cat"), image(tiny, "a photo of a dog")
    assert not np.array_equal(cat, dog)
    assert np.array_equal(image(tiny, "a photo of a [cat:dog:4]"), cat)  # when = the last step: never switched
    assert np.array_equal(image(tiny, "a photo of a [cat:dog:0]"), dog)
    halfway = image(tiny, "a photo of a [cat:dog:0.5]")
    assert not np.array_equal(halfway, cat) and not np.array_equal(halfway, dog)
    assert np.array_equal(image(tiny, "a photo of a [cat:dog:2]"), halfway)  # 0.5 of 4 steps is step 2
    alternated = image(tiny, "a photo of a [cat|dog]")
    assert not any(np.array_equal(alternated, other) for other in (cat, dog, halfway))
    # the negative prompt is scheduled too
    assert np.array_equal(image(tiny, "a cat", "[blurry:sharp:4]"), image(tiny, "a cat", "blurry"))
    assert not np.array_equal(image(tiny, "a cat", "[blurry:sharp:2]"), image(tiny, "a cat", "blurry"))


def test_the_switch_falls_where_a1111s_sampler_makes_it(tiny):
    """``[cat:dog:2]`` over 4 steps: A1111 conditions steps 0, 1 and 2 (0-based) on "cat" and step 3 on "dog" (a step
    draws ``from`` while its number is at most ``when``) — made here by hand with the pipeline's own callback."""
    engine = Engine(tiny)
    cat, dog = (engine._encode(tiny, None, f"a photo of a {word}", "") for word in ("cat", "dog"))

    def switch(pipe, step, timestep, tensors):
        if step + 1 == 3:
            tensors["prompt_embeds"] = torch.cat([dog[1], dog[0]])
        return tensors

    with torch.inference_mode():
        made = tiny(prompt_embeds=cat[0], negative_prompt_embeds=cat[1], num_inference_steps=4, guidance_scale=7.5,
                    width=64, height=64, generator=[torch.Generator("cpu").manual_seed(1)], output_type="pt",
                    callback_on_step_end=switch, callback_on_step_end_tensor_inputs=["prompt_embeds"]).images
    by_hand = np.asarray(uint8_pixels(made[0].permute(1, 2, 0).numpy()), dtype=np.int16)
    assert np.array_equal(image(tiny, "a photo of a [cat:dog:2]"), by_hand)


def test_sdxl_without_guidance_and_img2img(sdxl, tiny, tmp_path):  # noqa: F811
    cat, dog = (image(sdxl, f"a photo of a {word}", steps=6, guidance=5) for word in ("cat", "dog"))
    assert np.array_equal(image(sdxl, "a photo of a [cat:dog:6]", steps=6, guidance=5), cat)
    assert np.array_equal(image(sdxl, "a photo of a [cat:dog:0]", steps=6, guidance=5), dog)  # pooled switched too
    switched = image(sdxl, "a photo of a [cat:dog:1]", steps=6, guidance=5)
    assert not np.array_equal(switched, cat) and not np.array_equal(switched, dog)
    plain = image(tiny, "a photo of a cat", guidance=1)  # no negative pass: the prompt's rows alone
    assert np.array_equal(image(tiny, "a photo of a [cat:dog:4]", guidance=1), plain)
    assert not np.array_equal(image(tiny, "a photo of a [cat:dog:1]", guidance=1), plain)
    from PIL import Image
    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(init)
    before = image(tiny, "a photo of a cat", steps=8, init=init, strength=0.5)
    assert np.array_equal(image(tiny, "a photo of a [cat:dog:8]", steps=8, init=init, strength=0.5), before)
    assert not np.array_equal(image(tiny, "a photo of a [cat:dog:1]", steps=8, init=init, strength=0.5), before)


def test_prompts_of_different_lengths_in_one_grid_each_run_as_alone(tmp_path):
    """A grid whose cells take 1 and 3 windows (leave-one-out of a long keyword): each length its own pipeline call —
    a shorter prompt padded to a longer one's length would draw another image (it was an error before)."""
    long = ", ".join(f"word{i} thing" for i in range(45))
    grid = build_grid(spec_from({"prompt": "a cat", "keywords": [long, "red"], "mode": "leave-one-out"}))
    assert sorted(windows(c.prompt, clip_bpe()) for c in grid.cells) == [1, 3, 3]
    journal = Journal.init(tmp_path / "j")
    run = execute(grid, RunOptions(model="tiny", clip="none", steps=2, size=(64, 64)), journal)
    assert sorted(map(len, run.record.layout)) == [1, 2] and run.record.planned_layout == [[0, 1, 2]]
    short = next(c for c in run.record.cells if long not in c.prompt)
    alone = execute(build_grid(spec_from({"prompt": short.prompt})), RunOptions(model="tiny", clip="none", steps=2,
                                                                                 size=(64, 64)), journal)
    assert run.image(short).read_bytes() == alone.image(alone.record.cells[0]).read_bytes()


def test_an_edited_grid_reruns_byte_identically_and_the_record_keeps_the_prompt_as_written(tmp_path):
    grid = build_grid(spec_from({"prompt": "a photo of a [cat:dog:0.5]", "keywords": ["[red|blue] hat", "sunny"],
                                 "mode": "leave-one-out"}))
    journal = Journal.init(tmp_path / "j")
    runs = [execute(grid, RunOptions(model="tiny", clip="none", steps=3, size=(64, 64)), journal) for _ in range(2)]
    first, second = ([r.image(c).read_bytes() for c in r.record.cells] for r in runs)
    assert first == second and len(set(first)) == 3
    assert runs[0].record.cells[0].prompt == "a photo of a [cat:dog:0.5], [red|blue] hat, sunny"


def test_bad_editing_is_one_line_and_nothing_is_written(tmp_path, capsys):
    j = tmp_path / "j"
    for prompt, message in [("a [cat:dog:1.5]", "the prompt: the edit at character 3 switches past 1, in a hires fix's "
                                                 "second pass as A1111 reads it, and this run makes none: give --hires"),
                            ("a [cat:dog", 'unbalanced "[" at character 3')]:
        code, out, err = run_cli(capsys, "generate", prompt, "--model", "tiny", "--steps", "2", "--size", "64x64",
                                 "--journal", str(j))
        assert code != 0 and err.count("\n") == 1 and message in err and "Traceback" not in err, err
    code, out, err = run_cli(capsys, "generate", "a [cat:dog:2]", "--steps", "2", "--journal", str(j))  # shapes: compel
    assert code == 1 and err.count("\n") == 1 and "prompt editing ([from:to:when], [a|b]) is for the models" in err, err
    assert "cat" not in err  # the prompt stays private
    assert not j.exists() or list_runs(Journal.open(j)) == []


def test_the_token_count_is_the_longest_text_the_prompt_takes():
    long = ", ".join(f"word{i} thing" for i in range(45))
    assert windows(f"a [cat:{long}:0.5]", clip_bpe()) == 3
    assert windows(f"a [{long}::3]", clip_bpe()) == 3
    assert windows("a [cat|dog]", clip_bpe()) == 1


def test_an_edit_past_1_switches_in_the_hires_fixs_second_pass(tmp_path):
    journal = Journal.init(tmp_path / "j")
    options = RunOptions(model="tiny", clip="none", steps=2, size=(64, 64), hires=2.0, hires_steps=4)

    def made(prompt):
        run = execute(build_grid(spec_from({"prompt": prompt})), options, journal)
        return run.image(run.record.cells[0]).read_bytes()

    cat, late, dog_second = made("a photo of a cat"), made("a photo of a [cat:dog:1.5]"), made("a photo of a [cat:dog:1.0]")
    assert len({cat, late, dog_second}) == 3  # cat throughout / dog halfway through the second pass / dog in all of it
    assert made("a photo of a [cat:dog:2]") == made("a photo of a [cat:dog:0.99]") != cat  # steps 2: a 2 is the end
