"""Prompt weights in the runner (compel, ``runner/emphasis_encoder.py``) on tiny real pipelines: a prompt without
emphasis is encoded exactly as the pipeline encodes it; weights change the pixels and rerun byte-identically; BREAK
and weighted negatives are padded to one length; SDXL's two encoders and pooled output; weight 0 on shapes comes near
the prompt without the keyword; and models compel cannot encode are refused before anything is written."""

import numpy as np
import pytest
import torch

from journal import Journal
from tests.helpers import run_cli
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner.backends import DiffusersBackend
from workshop.compose.emphasis import parse
from workshop.runner.emphasis_encoder import family, token_chunks
from workshop.runner.engine import Engine, Job
from workshop.errors import RunError
from workshop.runner.models import load_pipeline, resolve
from workshop.runner.pixels import uint8_pixels
from workshop.runner.runs import list_runs
from workshop.runner.execution import RunOptions, execute

CPU = torch.device("cpu")
BASE = "portrait of a gnome"
KW = "in the style of Basquiat"


@pytest.fixture(scope="module")
def tiny():
    return load_pipeline(resolve("tiny"), CPU)


def image(pipe, prompt, negative="", seed=1, steps=2, guidance=7.5, emphasis="a1111") -> np.ndarray:
    batch = next(Engine(pipe, emphasis=emphasis).run([Job(0, prompt, negative, seed, steps, guidance, 64, 64)], [[0]]))
    return np.asarray(uint8_pixels(batch.pixels[0]), dtype=np.int16)


def encoded(pipe, prompt, negative="", emphasis="a1111"):
    return Engine(pipe, emphasis=emphasis)._encode(pipe, None, prompt, negative)


def test_a_prompt_without_emphasis_is_encoded_and_drawn_as_the_pipeline_does(tiny):
    ours = encoded(tiny, f"{BASE}, {KW}", "blurry")
    own = tiny.encode_prompt(prompt=f"{BASE}, {KW}", device=CPU, num_images_per_prompt=1, do_classifier_free_guidance=True,
                             negative_prompt="blurry")
    assert all(torch.equal(a, b) for a, b in zip(ours, own))
    with torch.inference_mode():  # the pipeline given the strings, encoding them itself
        direct = tiny(prompt=f"{BASE}, {KW}", negative_prompt="blurry", num_inference_steps=2, guidance_scale=7.5, width=64,
                      height=64, generator=[torch.Generator("cpu").manual_seed(1)], output_type="pt").images
    assert np.array_equal(image(tiny, f"{BASE}, {KW}", "blurry"), np.asarray(uint8_pixels(direct[0].permute(1, 2, 0).numpy()), dtype=np.int16))
    # weight 1 and escapes only: the words, through the pipeline's own encoding
    assert np.array_equal(image(tiny, f"{BASE}, ({KW}:1)"), image(tiny, f"{BASE}, {KW}"))
    literal = tiny.encode_prompt(prompt="a (red) circle", device=CPU, num_images_per_prompt=1, do_classifier_free_guidance=True,
                                 negative_prompt="")
    assert all(torch.equal(a, b) for a, b in zip(encoded(tiny, "a \\(red\\) circle"), literal))


def test_each_weight_of_a_keyword_gives_other_pixels(tiny):
    images = {w: image(tiny, f"{BASE}, ({KW}:{w})") for w in (0, 0.5, 1, 1.5)}
    assert np.array_equal(images[1], image(tiny, f"{BASE}, {KW}"))
    weights = sorted(images)
    for a, b in zip(weights, weights[1:]):
        assert not np.array_equal(images[a], images[b]), (a, b)
    assert not np.array_equal(image(tiny, BASE, "(blurry:1.5)"), image(tiny, BASE, "blurry"))  # the negative's too


def test_break_and_a_weighted_negative_are_padded_to_one_length(tiny):
    embeds, negative = encoded(tiny, f"{BASE} BREAK ({KW}:1.2)", "blurry")
    assert embeds.shape == negative.shape == (1, 154, 32)
    plain_negative = encoded(tiny, BASE, "blurry")[1]
    assert torch.equal(negative[:, :77], plain_negative)  # the negative as ever, then an empty prompt's window
    embeds, negative = encoded(tiny, BASE, "[blurry] BREAK noisy")
    assert embeds.shape == negative.shape == (1, 154, 32)
    assert image(tiny, f"{BASE} BREAK {KW}").shape == (64, 64, 3)


def test_a_weighted_grid_reruns_byte_identically(tmp_path):
    grid = build_grid(spec_from({"prompt": BASE, "keywords": [f"{KW}:1.3", "[glowing]"], "mode": "leave-one-out"}))
    assert grid.cells[0].prompt == f"{BASE}, ({KW}:1.3), [glowing]"
    journal = Journal.init(tmp_path / "j")
    options = RunOptions(model="tiny", clip="none", steps=3)
    runs = [execute(grid, options, journal) for _ in range(2)]
    first, second = ([r.image(c).read_bytes() for c in r.record.cells] for r in runs)
    assert first == second and len(set(first)) == 3  # same grid, same bytes; every cell its own image
    assert runs[0].record.cells[0].prompt == f"{BASE}, ({KW}:1.3), [glowing]"  # recorded as written


def test_weights_multiply_the_vectors_then_restore_the_windows_mean_as_a1111s_original(tiny):
    """A1111 applies weights after the encoder: the weighted window is the plain one times each token's weight,
    scaled back to the plain window's mean ("Emphasis mode: Original")."""
    plain_z = encoded(tiny, "a red circle")[0]
    weighted = encoded(tiny, "a (red:1.5) [circle]")[0]
    weights = torch.ones(77)
    weights[2], weights[3] = 1.5, 1 / 1.1  # start, "a", "red", "circle"
    expected = plain_z * weights[None, :, None]
    expected = expected * (plain_z.mean() / expected.mean())
    assert torch.equal(weighted, expected)
    zero = encoded(tiny, "a (red:0) circle")[0]  # weight 0: its place kept, its vectors zeroed (then the mean)
    assert torch.count_nonzero(zero[0, 2]) == 0 and zero.shape == plain_z.shape


def test_a1111s_no_norm_and_ignore_emphasis_modes(tiny):
    """"No norm": the weights multiplied, the mean left as they make it; "Ignore": no weights at all."""
    plain_z = encoded(tiny, "a red circle")[0]
    weights = torch.ones(77)
    weights[2], weights[3] = 1.5, 1 / 1.1
    no_norm = Engine(tiny, emphasis_mode="No norm")._encode(tiny, None, "a (red:1.5) [circle]", "")[0]
    assert torch.equal(no_norm, plain_z * weights[None, :, None])
    assert not torch.equal(no_norm, encoded(tiny, "a (red:1.5) [circle]")[0])  # Original restores the mean
    ignored = Engine(tiny, emphasis_mode="Ignore")._encode(tiny, None, "a (red:1.5) [circle]", "")[0]
    assert torch.equal(ignored, plain_z)


def test_the_emphasis_mode_is_a_run_option_recorded_and_rerun(tmp_path, capsys):
    j = str(tmp_path / "j")
    made = []
    for mode in ("Original", "no norm"):
        code, _, err = run_cli(capsys, "generate", "a (red:1.6) circle", "--model", "tiny", "--steps", "2", "--size",
                               "64x64", "--emphasis", mode, "--clip", "none", "--journal", j)
        assert code == 0, err
        made.append(next(r for r in list_runs(Journal.open(j)) if r.id not in {m.id for m in made}))
    assert [r.record.params.emphasis_mode for r in made] == [None, "No norm"]  # Original: as every run is
    first, no_norm = ([r.image(c).read_bytes() for c in r.record.cells] for r in made)
    assert first != no_norm
    code, _, err = run_cli(capsys, "accept", made[1].id, "--title", "Unnormed", "--journal", j)
    assert code == 0, err
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", j)
    assert code == 0 and "identical" in out + err, out + err
    for args, said in [(("--model", "tiny", "--emphasis", "None"), "emphasis 'None': use one of Original, No norm, Ignore"),
                       (("--emphasis", "No norm"), "emphasis 'No norm' is A1111's, for the models promptism encodes")]:
        code, _, err = run_cli(capsys, "generate", "a (red:1.6) circle", "--steps", "2", *args, "--journal", j)
        assert code != 0 and err.count("\n") == 1 and said in err, err
    assert len(list_runs(Journal.open(j))) == 3  # (the two made and the rerun: nothing more written)


def test_a_run_recorded_before_a1111s_encoding_is_weighed_by_compel_as_it_was(tiny):
    """Runs recorded without ``emphasis`` (before issue 26) rerun to their bytes: compel's weights, one window."""
    from workshop.runner.emphasis_encoder import WeightedEncoder, encode

    prompt = f"{BASE}, ({KW}:1.3)"
    legacy = encoded(tiny, prompt, emphasis=None)
    own = tiny.encode_prompt(prompt=f"{BASE}, {KW}", device=CPU, num_images_per_prompt=1, do_classifier_free_guidance=True,
                             negative_prompt="")
    assert all(torch.equal(a, b) for a, b in zip(legacy, encode(WeightedEncoder(tiny), prompt, "", tuple(own))))
    assert not torch.equal(legacy[0], encoded(tiny, prompt)[0])


def words(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_long_prompts_are_75_token_windows_broken_after_a_late_comma(tiny):
    tok = tiny.tokenizer
    cat, dog, comma = words(tok, "cat")[0], words(tok, "dog")[0], tok.get_vocab()[",</w>"]
    start, end = tok.bos_token_id, tok.eos_token_id
    # a comma 15 tokens before the window fills: the window ends after it, the 14 words after it move on
    windows = token_chunks(tok, parse("cat " * 60 + ", " + "dog " * 20))
    assert [ids for ids, _ in windows] == [[start, *[cat] * 60, comma, end, *[end] * 14],
                                            [start, *[dog] * 20, end, *[end] * 55]]
    # a comma 35 tokens back is too far: the window is cut at 75 tokens
    windows = token_chunks(tok, parse("cat " * 40 + ", " + "dog " * 50))
    assert windows[0][0] == [start, *[cat] * 40, comma, *[dog] * 34, end] and windows[1][0][1:17] == [dog] * 16
    # BREAK starts a window; an empty prompt is one window; weights follow their tokens
    windows = token_chunks(tok, parse("(cat:1.3) BREAK dog"))
    assert [w[0][:3] for w in windows] == [[start, cat, end], [start, dog, end]] and windows[0][1][:3] == [1.0, 1.3, 1.0]
    assert token_chunks(tok, parse("")) == [([start, end, *[end] * 75], [1.0] * 77)]


def test_a_prompt_past_75_tokens_is_not_cut_its_second_window_changes_the_image(tiny):
    first = ", ".join(["a red circle"] * 25)  # 75 tokens: one window
    embeds, negative = encoded(tiny, f"{first}, glowing")
    assert embeds.shape == negative.shape == (1, 154, 32)
    assert not np.array_equal(image(tiny, first), image(tiny, f"{first}, glowing stripes"))


def test_weight_zero_on_shapes_comes_near_the_prompt_without_the_keyword():
    """The shapes model encodes with compel (its keyword weights say how much of it: 0 is none), not A1111's."""
    shapes = load_pipeline(resolve("shapes"), CPU)
    prompt = "a red circle on a blue background"
    assert resolve("shapes").emphasis == "compel"
    without, full = (image(shapes, p, steps=8, emphasis="compel") for p in (prompt, f"{prompt}, glowing"))
    zero, half = (image(shapes, f"{prompt}, (glowing:{w})", steps=8, emphasis="compel") for w in (0, 0.5))
    diff = lambda a, b: float(np.abs(a - b).mean())  # noqa: E731
    assert diff(zero, without) < diff(full, without) / 3  # weight 0: the keyword is nearly gone
    assert diff(zero, without) < diff(half, without) < diff(full, without)  # and half way is in between



@pytest.fixture(scope="module")
def sdxl():
    return tiny_sdxl()


def tiny_sdxl():
    """A tiny random SDXL pipeline (two CLIP text encoders, the second with a projection and "!" padding)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=3, num_attention_heads=4,
                            projection_dim=32, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    tiny = load_pipeline(resolve("tiny"), CPU)
    tokenizer_2 = type(tiny.tokenizer).from_pretrained(resolve("tiny").path / "tokenizer", pad_token="!")
    return StableDiffusionXLPipeline(vae=vae, text_encoder=CLIPTextModel(config), text_encoder_2=CLIPTextModelWithProjection(config),
                                     tokenizer=tiny.tokenizer, tokenizer_2=tokenizer_2, unet=unet,
                                     scheduler=EulerDiscreteScheduler(beta_schedule="scaled_linear"))


def test_sdxl_two_encoders_and_the_pooled_output(sdxl):
    assert family(sdxl) == "sdxl"
    plain = encoded(sdxl, f"{BASE}, {KW}")
    weighted = encoded(sdxl, f"{BASE}, ({KW}:1.4)")
    assert [t.shape for t in weighted] == [t.shape for t in plain] == [(1, 77, 64), (1, 77, 64), (1, 32), (1, 32)]
    assert not torch.equal(weighted[0], plain[0])
    assert torch.equal(weighted[2], plain[2])  # pooled: the words' end token, which weights do not change
    assert torch.equal(weighted[1], plain[1])  # the negative without weights: the pipeline's own encoding
    same = encoded(sdxl, f"{BASE}, {KW}")
    own = sdxl.encode_prompt(prompt=f"{BASE}, {KW}", device=CPU, num_images_per_prompt=1, do_classifier_free_guidance=True,
                             negative_prompt="")
    assert all(torch.equal(a, b) for a, b in zip(same, own))
    a, b = (image(sdxl, p, steps=2, guidance=5) for p in (f"{BASE}, {KW}", f"{BASE}, ({KW}:1.4)"))
    assert not np.array_equal(a, b)
    embeds, negative, pooled, negative_pooled = encoded(sdxl, f"{BASE} BREAK {KW}", "(blurry:1.2)")
    assert embeds.shape == negative.shape == (1, 154, 64) and negative_pooled.shape == (1, 32)


def test_models_compel_cannot_encode_refuse_weights_before_anything_is_written(tmp_path, capsys):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                            projection_dim=32, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    tokenizer = load_pipeline(resolve("tiny"), CPU).tokenizer
    sd3 = StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                                          num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
                                          pooled_projection_dim=64, out_channels=4),
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=AutoencoderKL(latent_channels=4, norm_num_groups=8, block_out_channels=(32,)),
        text_encoder=CLIPTextModelWithProjection(config), tokenizer=tokenizer, text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer_2=tokenizer, text_encoder_3=None, tokenizer_3=None)
    assert family(sd3) is None and family(load_pipeline(resolve("shapes"), CPU)) == "sd"
    backend = DiffusersBackend(resolve("tiny"), sd3)
    backend.check(build_grid(spec_from({"prompt": BASE, "keywords": [KW]})), RunOptions())  # no weights: fine
    with pytest.raises(RunError) as caught:
        backend.check(build_grid(spec_from({"prompt": BASE, "keywords": [f"{KW}:1.3"]})), RunOptions())
    assert str(caught.value) == ("prompt weights and editing ((text:1.3), [text], BREAK, [from:to:when]) work with Stable "
                                 "Diffusion 1.x/2.x and SDXL models only; tiny is a StableDiffusion3Pipeline: take the "
                                 "brackets and weights out of the prompt")
    # the CLIP-guided backend, whose prompts weigh parts their own way ("a|b:0.5"), through the command line
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "grid", "-p", BASE, "-k", f"{KW}:1.3", "--model", "vqgan-clip", "--steps", "2",
                             "--journal", str(j))
    assert code == 1 and err.count("\n") == 1 and "work with Stable Diffusion 1.x/2.x and SDXL models only" in err, err
    assert "the vqgan-clip backend weighs prompts its own way" in err and KW not in err
    assert not j.exists() or list_runs(Journal.open(j)) == []


def test_clip_skip_takes_the_nth_layer_from_the_end_layer_normed_as_a1111(tiny):
    """A1111's Clip skip N: the Nth hidden state from the end, through the text encoder's final layer norm."""
    skipped = Engine(tiny, clip_skip=2)._encode(tiny, None, f"{BASE}, {KW}", "blurry")
    expected = []
    for text in (f"{BASE}, {KW}", "blurry"):
        ids = tiny.tokenizer(text, padding="max_length", max_length=77, return_tensors="pt").input_ids
        with torch.inference_mode():
            hidden = tiny.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
            expected.append(tiny.text_encoder.final_layer_norm(hidden))
    assert all(torch.equal(a, b) for a, b in zip(skipped, expected))
    assert not torch.equal(skipped[0], encoded(tiny, f"{BASE}, {KW}", "blurry")[0])
