"""Prompt composition and grids: every mode, A1111's matrix order and layout, S/R, ranges, dynamic prompts, seeds."""

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from workshop.compose import Keyword, Prompt, SpecError, build_grid
from workshop.compose.grid import AxisSpec, GridSpec
from workshop.compose.ranges import parse_values
from workshop.compose.spec import spec_from

BASE = "a red circle on a blue background"
KWS = ["glowing", "pixel art", "striped", "outlined", "blurry"]


def grid(**values):
    values.setdefault("prompt", BASE)
    return build_grid(spec_from(values))


@pytest.mark.parametrize("base, keywords, first, expected", [
    ("a cat", ["glowing"], False, "a cat, glowing"),
    (" a cat ,", [", glowing ,", "  pixel art"], False, "a cat, glowing, pixel art"),
    ("a cat", ["glowing", "pixel art"], True, "glowing, pixel art, a cat"),
    ("a cat,,", [], False, "a cat"),
    ("", ["glowing"], False, "glowing"),
])
def test_render_like_a1111(base, keywords, first, expected):
    assert Prompt(base, tuple(Keyword(k) for k in keywords), keywords_first=first).render() == expected


def test_switched_off_keywords_are_left_out():
    p = Prompt("a cat", (Keyword("glowing"), Keyword("pixel art", on=False)))
    assert p.render() == "a cat, glowing" and p.enabled == ["glowing"]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_matrix_order_and_layout_match_a1111(k):
    kws = KWS[:k]
    g = grid(keywords=kws, mode="matrix")
    cols, rows = 2 ** math.ceil(k / 2), 2 ** (k // 2)
    assert (len(g.cells), g.rows, g.cols) == (2 ** k, rows, cols)
    for i, cell in enumerate(g.cells):
        present = [kws[j] for j in range(k) if i >> j & 1]
        assert cell.index == i and cell.keywords == tuple(present)
        assert cell.prompt == ", ".join([BASE, *present])
        assert (cell.row, cell.col) == (i // cols, i % cols)
        assert cell.seed == 0  # one shared seed
        across = [(lb.text, lb.active) for lb in cell.labels["x"]]
        assert across == [(kws[j], bool(i >> j & 1)) for j in range(math.ceil(k / 2))]
        down = [(lb.text, lb.active) for lb in cell.labels.get("y", ())]
        assert down == [(kws[j], bool(i >> j & 1)) for j in range(math.ceil(k / 2), k)]


def test_matrix_first_cells_are_base_then_single_keywords():
    cells = grid(keywords=KWS[:2], mode="matrix").cells
    assert [c.prompt for c in cells] == [BASE, f"{BASE}, glowing", f"{BASE}, pixel art", f"{BASE}, glowing, pixel art"]


def test_matrix_per_cell_seeds():
    cells = grid(keywords=KWS[:2], mode="matrix", seeds=[10], per_cell_seeds=True).cells
    assert [c.seed for c in cells] == [10, 11, 12, 13]


def test_leave_one_out():
    cells = grid(keywords=KWS[:3], mode="leave-one-out").cells
    assert [c.prompt for c in cells] == [f"{BASE}, glowing, pixel art, striped", f"{BASE}, pixel art, striped",
                                         f"{BASE}, glowing, striped", f"{BASE}, glowing, pixel art"]
    assert [[lb.active for lb in c.labels["x"]] for c in cells] == [[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0]]


def test_add_one():
    cells = grid(keywords=KWS[:3], mode="add-one").cells
    assert [c.prompt for c in cells] == [BASE, f"{BASE}, glowing", f"{BASE}, pixel art", f"{BASE}, striped"]
    assert [c.keywords for c in cells] == [(), ("glowing",), ("pixel art",), ("striped",)]


def test_keyword_modes_use_only_switched_on_keywords():
    cells = grid(keywords=["glowing", {"text": "striped", "on": False}, "pixel art"], mode="leave-one-out").cells
    assert len(cells) == 3 and all("striped" not in c.prompt for c in cells)


@pytest.mark.parametrize("axis, values", [
    ('sr=red,blue,green', ("red", "blue", "green")),
    ('sr=red, "blue, dark" ,green', ("red", "blue, dark", "green")),
    ('sr="red",blue', ("red", "blue")),
    ('SR = red,"a ""quoted"" word"', ("red", 'a "quoted" word')),
])
def test_sr_values_are_a_csv_line(axis, values):
    assert AxisSpec.parse(axis, "x").values == values


def test_sr_replaces_every_occurrence_in_prompt_and_negative():
    g = grid(prompt="a red circle, red glow", negative="no red", axes={"x": "sr=red,blue,green"})
    assert g.spec.mode == "sr"
    assert [(c.prompt, c.negative) for c in g.cells] == [
        ("a red circle, red glow", "no red"), ("a blue circle, red glow".replace("red glow", "blue glow"), "no blue"),
        ("a green circle, green glow", "no green")]
    assert [c.labels["x"][0].text for c in g.cells] == ["red", "blue", "green"]


def test_sr_on_three_axes_is_x_fastest():
    g = grid(prompt="a red circle on blue, big", axes={"x": "sr=red,green", "y": "sr=blue,black", "z": "sr=big,small"})
    assert (g.cols, g.rows, g.subgrids, len(g.cells)) == (2, 2, 2, 8)
    assert g.cells[0].prompt == "a red circle on blue, big"
    assert g.cells[5].prompt == "a green circle on blue, small" and (g.cells[5].col, g.cells[5].row, g.cells[5].subgrid) == (1, 0, 1)


def test_sr_replaces_inside_keywords_too():
    g = grid(prompt="portrait", keywords=["in the style of Basquiat"], axes={"x": "sr=Basquiat,Klimt"})
    assert g.cells[1].keywords == ("in the style of Klimt",) and g.cells[1].prompt == "portrait, in the style of Klimt"


@pytest.mark.parametrize("text, integer, expected", [
    ("1-5", True, [1, 2, 3, 4, 5]),
    ("1-5 (+2)", True, [1, 3, 5]),
    ("10-5 (-3)", True, [10, 7]),
    ("1-3 (+0.5)", False, [1.0, 1.5, 2.0, 2.5, 3.0]),
    ("1-10 [5]", True, [1, 3, 5, 7, 10]),
    ("1-2 [5]", False, [1.0, 1.25, 1.5, 1.75, 2.0]),
    ("3, 7.5, 12", False, [3.0, 7.5, 12.0]),
    ("1,2,3", True, [1, 2, 3]),
    ("5-1", True, [5, 4, 3, 2, 1]),
    ("1-3, 10", True, [1, 2, 3, 10]),
    ("0.1-0.3 (+0.1)", False, [0.1, 0.2, 0.3]),
])
def test_range_forms(text, integer, expected):
    assert parse_values(text, integer=integer, what="x") == expected


@pytest.mark.parametrize("text", ["", "a-b", "1-5 (+0)", "1-5 (-1)", "1-3 (+0.5)", "1-5 [0]", "1..5", "1-"])
def test_bad_ranges(text):
    with pytest.raises(SpecError):
        parse_values(text, integer=True, what="seed")


def test_numeric_axes_set_parameters():
    g = grid(axes={"x": "steps=10-30 (+10)", "y": "guidance=3,7.5"})
    assert [(c.params, c.col, c.row) for c in g.cells] == [
        ({"steps": 10, "guidance": 3.0}, 0, 0), ({"steps": 20, "guidance": 3.0}, 1, 0), ({"steps": 30, "guidance": 3.0}, 2, 0),
        ({"steps": 10, "guidance": 7.5}, 0, 1), ({"steps": 20, "guidance": 7.5}, 1, 1), ({"steps": 30, "guidance": 7.5}, 2, 1)]
    assert g.cells[0].labels == {"x": (g.cells[0].labels["x"][0],), "y": (g.cells[0].labels["y"][0],)}
    assert g.cells[4].labels["x"][0].text == "Steps: 20" and g.cells[4].labels["y"][0].text == "Guidance: 7.5"
    assert grid(axes={"x": "seed=1-3"}).cells[2].labels["x"][0].text == "Seed: 3"


def test_seed_axis_crosses_any_grid():
    loo = grid(keywords=KWS[:2], mode="leave-one-out", seeds=[1, 2, 3])
    assert (loo.cols, loo.rows, len(loo.cells)) == (3, 3, 9)
    assert [c.seed for c in loo.cells] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert loo.cells[4].prompt == loo.cells[1].prompt  # same variant, next seed
    matrix = grid(keywords=KWS[:2], mode="matrix", seeds="1-2")
    assert (matrix.cols, matrix.rows, matrix.subgrids) == (2, 2, 2) and matrix.cells[4].seed == 2
    square = grid(seeds="1-9")
    assert (square.rows, square.cols) == (3, 3) and [(c.row, c.col) for c in square.cells[:4]] == [(0, 0), (0, 1), (0, 2), (1, 0)]


def test_dynamic_style_study(tmp_path):
    g = grid(prompt="portrait, in the style of {Basquiat|Signorelli|Klimt}", mode="dynamic", seeds=[4, 5])
    assert [c.prompt for c in g.cells[:3]] == [f"portrait, in the style of {a}" for a in ("Basquiat", "Signorelli", "Klimt")]
    assert [c.labels["x"][0].text for c in g.cells[:3]] == ["Basquiat", "Signorelli", "Klimt"] and g.rows == 2
    (tmp_path / "colours.txt").write_text("red\nblue\n")
    g = grid(prompt="a __colours__ circle", keywords=["{glowing|matte}"], mode="dynamic", wildcards=str(tmp_path))
    assert sorted(c.prompt for c in g.cells) == sorted(f"a {c} circle, {f}" for c in ("red", "blue") for f in ("glowing", "matte"))
    assert all(len(c.keywords) == 1 and c.keywords[0] in ("glowing", "matte") for c in g.cells)


@pytest.mark.parametrize("values, complaint", [
    ({"prompt": ""}, "prompt is empty"),
    ({"prompt": "  , "}, "prompt is empty"),
    ({"keywords": ["glowing", "Glowing"]}, "twice"),
    ({"keywords": ["", "x"]}, "empty"),
    ({"mode": "ablate"}, "unknown mode"),
    ({"mode": "matrix"}, "needs keywords"),
    ({"mode": "sr"}, "S/R axis"),
    ({"axes": {"x": "colour=red"}}, "TYPE=VALUES"),
    ({"axes": {"w": "seed=1"}}, "unknown axis"),
    ({"axes": {"x": "seed=one-two"}}, "cannot read seed"),
    ({"axes": {"x": "sr=purple,green"}}, "'purple' is not in the prompt"),
    ({"axes": {"x": "sr=red,blue,blue"}}, "twice"),
    ({"axes": {"x": "seed=-1"}}, "between 0 and"),
    ({"seeds": [1, 1]}, "twice"),
    ({"seeds": "1-65"}, "over the cap of 64"),
    ({"keywords": KWS + ["a", "b"], "mode": "matrix"}, "128 cells"),
    ({"keywords": KWS[:2], "mode": "matrix", "axes": {"x": "seed=1-2"}}, "fills the x and y axis"),
    ({"seeds": "1-2", "axes": {"y": "seed=1-2"}}, "twice"),
    ({"prompt": "a {b|c", "mode": "dynamic"}, "dynamic prompt"),
    ({"prompt": "a __nothing__", "mode": "dynamic"}, "__nothing__"),
    ({"keywords": ["x, y", "x", "y"], "mode": "matrix"}, "identical"),
    ({"max_cells": "many"}, "max_cells"),
])
def test_bad_specs(values, complaint):
    with pytest.raises(SpecError, match=complaint):
        grid(**values)


def test_cap_is_configurable():
    assert len(grid(keywords=KWS + ["a", "b"], mode="matrix", max_cells=128).cells) == 128


def _words(text):  # a tokenizer with one token per word, to make budgets exact
    return text.replace(",", " ,").split()


def test_token_budget_names_keywords_past_77():
    base = " ".join(["word"] * 60)
    kws = ["in the style of Basquiat", "trending on artstation", "rendered in unreal engine", "pixel art"]
    g = build_grid(spec_from({"prompt": base, "keywords": kws}), encode=_words)
    cell = g.cells[0]
    # 60 words, then ", in the style of Basquiat" (6 tokens: 66), ", trending on artstation" (70),
    # ", rendered in unreal engine" (75 — the last that fits), ", pixel art" (78: past the 75-token window)
    assert cell.tokens == 78 + 2
    assert cell.truncated_keywords == ("pixel art",)


def test_token_budget_with_clip_bpe():
    base = "a very detailed painting of " + ", ".join(["a lighthouse at dusk"] * 16)
    g = grid(prompt=base, keywords=["trending on artstation", "pixel art"])
    cell = g.cells[0]
    assert cell.tokens > 77 and cell.truncated_keywords == ("trending on artstation", "pixel art")
    short = grid(prompt="a red circle", keywords=["pixel art"]).cells[0]
    assert short.tokens == 8 and short.truncated_keywords == ()  # <start> a red circle , pixel art <end>


KEYWORD = st.text(alphabet=st.sampled_from("abcdefghij "), min_size=1, max_size=12).map(str.strip).filter(bool)


@settings(max_examples=60, deadline=None)
@given(kws=st.lists(KEYWORD, min_size=1, max_size=5, unique_by=str.casefold), mode=st.sampled_from(["matrix", "leave-one-out", "add-one"]),
       seeds=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3, unique=True))
def test_variants_in_a_grid_are_distinct(kws, mode, seeds):
    g = build_grid(spec_from({"prompt": "base", "keywords": kws, "mode": mode, "seeds": seeds, "max_cells": 256}), encode=_words)
    assert len({(c.prompt, c.seed) for c in g.cells}) == len(g.cells)
    assert len(g.cells) == (2 ** len(kws) if mode == "matrix" else len(kws) + 1) * len(seeds)


@settings(max_examples=60, deadline=None)
@given(kws=st.lists(KEYWORD, min_size=1, max_size=6, unique_by=str.casefold))
def test_each_leave_one_out_variant_drops_exactly_one_keyword(kws):
    cells = build_grid(spec_from({"prompt": "base", "keywords": kws, "mode": "leave-one-out"}), encode=_words).cells
    full = set(cells[0].keywords)
    assert full == set(kws)
    for j, cell in enumerate(cells[1:]):
        assert full - set(cell.keywords) == {kws[j]} and set(cell.keywords) < full


@settings(max_examples=30, deadline=None)
@given(kws=st.lists(KEYWORD, max_size=4, unique_by=str.casefold), mode=st.sampled_from(["plain", "matrix", "leave-one-out", "add-one"]))
def test_dry_run_json_is_stable(kws, mode):
    if mode != "plain" and not kws:
        return
    spec = {"prompt": "a red circle", "keywords": kws, "mode": mode, "seeds": "1-2"}
    once = json.dumps([c.to_json() for c in build_grid(spec_from(dict(spec))).cells])
    assert once == json.dumps([c.to_json() for c in build_grid(spec_from(dict(spec))).cells])


def test_gridspec_defaults():
    spec = spec_from({"prompt": "x"})
    assert isinstance(spec, GridSpec) and spec.mode == "plain" and spec.seeds == (0,) and spec.max_cells == 64


def test_composition_imports_no_heavy_libraries():
    from tests.helpers import imported_after

    assert imported_after("workshop.compose.spec", "workshop.compose.grid", watch=("textual", "torch", "diffusers", "open_clip")) == []


@pytest.mark.parametrize("text", ["a red circle, pixel art", "Trending on ArtStation!!", "𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 vision 🔅",
                                  "don't stop, it's 4k & 8K", "a   very\tlong   prompt, (dramatic lighting:1.2), [cat]",
                                  "日本語のテキスト", "café crème brûlée", "hello-world_test 123.45"])
def test_clip_bpe_matches_open_clips_tokenizer(text):
    from open_clip.tokenizer import SimpleTokenizer

    from workshop.compose.tokens import clip_bpe

    assert clip_bpe()(text) == SimpleTokenizer().encode(text)
