"""The composer: prompt and negative prompt, keywords (add, remove, reorder, toggle, weigh, a personal library), the
X/Y/Z axes, the live grid shape and token budget, model, sampler and settings — and the keys that run the grid or one
image set. What it holds is kept per journal and comes back on the next start (``composition``)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import platformdirs
from pydantic import ValidationError
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Header, Input, Label, ListItem, ListView, Select, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ...compose import SpecError
from ...compose.grid import AXIS_NAMES, AXIS_TYPES, MODES, build_grid
from ...compose.prompt import Keyword
from ...compose.spec import spec_from, spec_values
from ...contract import GivenOptions, Spec, first_problem
from ...paths import APP
from ...samplers import NAMES, OWN
from journal.text import quoted, visible

from ..composition import Composition, CompositionError, from_job, load_composition, save_composition
from ..wording import say
from . import footer

WEIGHT_STEP = 0.1  # + / - on a keyword
SAVE_PAUSE = 0.5  # seconds of quiet before the composition is saved
PREVIEW_PAUSE = 0.1  # seconds of quiet before the grid is described again: a paste typed key by key is one rebuild
MODELS_OWN = "model's own"
WEIGHT_AXIS = "weight"  # the axis kind that weighs one keyword: weight:KEYWORD=VALUES
EXAMPLES = {"sr": "search,replacement,…  e.g. red,blue,green", "nsr": "search,replacement,… (negative prompt)",
            "seed": "e.g. 1-5", "steps": "e.g. 10-30 (+10)", "guidance": "e.g. 3,7.5", "sampler": "e.g. Euler a,DDIM",
            "model": "e.g. tiny,shapes", "size": "e.g. 512x512,768x512", "strength": "e.g. 0.3,0.5",
            "order": "parts to permute, e.g. kw1,kw2,kw3", WEIGHT_AXIS: "weights, e.g. 0,0.5,1,1.5"}


def library_file() -> Path:
    """The personal keyword library: one keyword per line in the user config directory."""
    return platformdirs.user_config_path(APP) / "keywords.txt"


class KeywordItem(ListItem):
    def __init__(self, text: str, on: bool = True, weight: float = 1.0):
        super().__init__(Label(markup=False))
        self.text = text
        self.on = on
        self.weight = weight

    @property
    def keyword(self) -> Keyword:
        return Keyword(self.text, self.on, self.weight)

    def on_mount(self) -> None:
        self.refresh_label()

    def refresh_label(self) -> None:
        text = Text("[x] " if self.on else "[ ] ")
        if self.weight != 1:  # before the words, which a narrow list cuts off
            text.append(f"×{self.weight:g} ", style="bold")
        text.append(visible(self.text), style="" if self.on else "dim strike")
        self.query_one(Label).update(text)


def split_axis(text: str) -> tuple[str, str, str]:
    """``TYPE=VALUES`` (``weight:KEYWORD=VALUES``) as the editor's three fields: type, keyword, values."""
    kind, _, values = text.partition("=")
    kind, _, keyword = kind.strip().partition(":")
    return kind.strip().lower(), keyword.strip(), values.strip()


class AxisRow(Horizontal):
    """One axis: its type, the keyword a weight axis weighs, its values (A1111's range syntax: 1-5, 10-30 (+10))."""

    def __init__(self, name: str):
        super().__init__(classes="axis-row", id=f"axis-{name}")
        self.axis = name
        self.offered: list[str] = []  # the keyword list's texts
        self.values_kind: str | None = None  # the type the values field holds values for

    def compose(self) -> ComposeResult:
        yield Label(self.axis, classes="axis-name")
        yield Select([(t, t) for t in AXIS_TYPES], prompt="no axis", compact=True, id=f"{self.axis}-type", classes="axis-type")
        yield Select([], prompt="keyword", compact=True, id=f"{self.axis}-keyword", classes="axis-keyword")
        yield Input(compact=True, placeholder=f"{self.axis} axis: choose a type", id=f"{self.axis}-values",
                    classes="axis-values")

    @property
    def kind(self) -> str | None:
        kind = self.query_one(".axis-type", Select).value
        return kind if isinstance(kind, str) else None

    @property
    def text(self) -> str:
        """The axis as the spec's ``[axes]`` takes it; empty with no type chosen."""
        if self.kind is None:
            return ""
        values = self.query_one(".axis-values", Input).value.strip()
        if self.kind == WEIGHT_AXIS:
            keyword = self.query_one(".axis-keyword", Select).value
            return f"{WEIGHT_AXIS}:{keyword if isinstance(keyword, str) else ''}={values}"
        return f"{self.kind}={values}"

    def problem(self) -> str | None:
        """What the spec cannot say for itself: a weight axis with no keyword chosen."""
        if self.kind == WEIGHT_AXIS and not isinstance(self.query_one(".axis-keyword", Select).value, str):
            return f"axis {self.axis}: choose the keyword to weigh (the list beside its type)"
        return None

    def set_keywords(self, texts: list[str]) -> None:
        """The keywords a weight axis can weigh (the one chosen stays chosen, also when it is not among them)."""
        select = self.query_one(".axis-keyword", Select)
        chosen = select.value if isinstance(select.value, str) else None
        texts = texts if chosen is None or chosen in texts else [*texts, chosen]
        if self.offered != texts:
            self.offered = texts
            select.set_options([(Text(visible(t)), t) for t in texts])
            if chosen is not None:
                select.value = chosen

    def show(self, text: str) -> str | None:
        """Fill the row from ``text`` (TYPE=VALUES or empty); the kind, when this workshop does not know it."""
        kind, keyword, values = split_axis(text)
        type_select = self.query_one(".axis-type", Select)
        if text.strip() and kind not in AXIS_TYPES:
            type_select.clear()
            return kind
        if keyword:
            self.set_keywords([keyword])
            self.query_one(".axis-keyword", Select).value = keyword
        if text.strip():
            type_select.value = kind
        else:
            type_select.clear()
        self.query_one(".axis-values", Input).value = values
        self.values_kind = self.kind  # (so the type's change, read later, keeps them)
        self.show_kind()
        return None

    def kind_chosen(self) -> None:
        """A type was chosen: values typed for another type go (a steps range is no list of samplers), and with no
        type, all of them."""
        if self.kind != self.values_kind and (self.values_kind is not None or self.kind is None):
            self.query_one(".axis-values", Input).value = ""
        self.values_kind = self.kind
        self.show_kind()

    def show_kind(self) -> None:
        """The keyword list only for a weight axis; the values field's example for the type chosen."""
        self.query_one(".axis-keyword", Select).display = self.kind == WEIGHT_AXIS
        values = self.query_one(".axis-values", Input)
        values.placeholder = EXAMPLES.get(self.kind, "values") if self.kind else f"{self.axis} axis: choose a type"


class ComposerScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "run_grid", "Run grid", priority=True),
        Binding("ctrl+o", "run_once", "Run once", priority=True),
        Binding("ctrl+n", "focus('new-keyword')", "New keyword", priority=True),
        Binding("ctrl+q", "app.quit", "Quit", priority=True),  # the app's keys, shown in this footer
        Binding("f3", "app.journal", "Journal"),
        Binding("ctrl+l", "focus('prompt')", "Prompt", show=False, priority=True),
        Binding("space", "toggle_keyword", "Toggle", show=False),
        Binding("delete,x", "remove_keyword", "Remove keyword", show=False),
        Binding("ctrl+up,K", "move_keyword(-1)", "Move up", show=False),
        Binding("ctrl+down,J", "move_keyword(1)", "Move down", show=False),
        Binding("s", "save_keyword", "Save to library", show=False),
        Binding("plus", "weigh_keyword(1)", "Weight +0.1", show=False),
        Binding("minus", "weigh_keyword(-1)", "Weight -0.1", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="composer"):
            with Vertical(id="left"):
                yield Input(compact=True, placeholder="prompt — e.g. a red circle on a blue background", id="prompt")
                yield Input(compact=True, placeholder="negative prompt", id="negative")
                with Horizontal(classes="row"):
                    yield Select([(m, m) for m in MODES], value="leave-one-out", allow_blank=False, compact=True, id="mode")
                    yield Input(compact=True, value="1-4", placeholder="seeds", id="seeds")
                    yield Input(compact=True, placeholder="steps", id="steps")
                    yield Input(compact=True, placeholder="guidance", id="guidance")
                with Horizontal(classes="row"):
                    yield Select([(Text(visible(self.app.model)), self.app.model)], value=self.app.model, allow_blank=False,
                                 compact=True, id="model")
                    yield Select(self._sampler_choices(), value="", allow_blank=False, compact=True, id="sampler")
                    yield Input(compact=True, placeholder="size WxH", id="size")
                with Horizontal(classes="row"):
                    yield Input(compact=True, placeholder="init: path, #N or #N:K", id="init")
                    yield Input(compact=True, placeholder="strength", id="strength")
                for name in AXIS_NAMES:
                    yield AxisRow(name)
                yield Static(id="preview", markup=False)
                yield Static(id="model-status", markup=False)
            with Vertical(id="right"):
                yield Label("Keywords", classes="heading")
                yield Static("space on/off · +/- weight · x remove · K/J move · s save", classes="hint", markup=False)
                yield ListView(id="keywords")
                yield Input(compact=True, placeholder="add keyword + Enter", id="new-keyword")
                yield Label("Library (Enter adds)", classes="heading")
                yield ListView(id="library")
        yield footer()

    def __init__(self):
        super().__init__()
        self._save_timer = None
        self._preview_timer = None
        self._described: tuple[object, Text] | None = None  # the grid described last, and its words

    async def on_mount(self) -> None:
        from ...runner.models import available

        self.models = [m.id for m in available(self.app.settings)]
        self.choose_model(self.app.model)
        library = self.query_one("#library", ListView)
        if library_file().exists():
            for line in library_file().read_text(encoding="utf-8").splitlines():
                if line.strip():
                    library.append(KeywordItem(line.strip()))
        for row in self.query(AxisRow):
            row.show_kind()
        self.show_model_status(self.app.model_status)
        self.query_one("#prompt", Input).focus()
        if self.app.journal is not None:
            try:
                saved = load_composition(self.app.journal_dir)
            except CompositionError as exc:
                self.notify(f"the composition saved with this journal could not be read ({exc}): starting empty",
                            severity="warning", timeout=10, markup=False)
            else:
                if saved is not None:  # on the model the workshop was started with (the one it loads)
                    await self.fill(replace(saved, model=None))
        self.refresh_preview()

    # ---------------------------------------------------------------- state → spec

    def _text(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def values(self, mode: str | None = None) -> dict:
        """The spec values (as a spec file's keys) the composer holds; ``mode``: instead of the chosen one."""
        axes = {row.axis: row.text for row in self.query(AxisRow) if row.text}
        return {
            "prompt": self._text("prompt"),
            "negative": self._text("negative"),
            "keywords": [{"text": k.text, "on": k.on, **({"weight": k.weight} if k.weight != 1 else {})}
                         for k in self.query_one("#keywords", ListView).query(KeywordItem)],
            "mode": mode or self.query_one("#mode", Select).value,
            "seeds": self._text("seeds") or "0",
            **({"axes": axes} if axes else {}),
        }

    def composition(self) -> Composition:
        """Everything the composer holds, as typed (what is saved per journal)."""
        model, sampler = self.query_one("#model", Select).value, self.query_one("#sampler", Select).value
        return Composition(
            prompt=self.query_one("#prompt", Input).value, negative=self.query_one("#negative", Input).value,
            keywords=tuple(k.keyword for k in self.query_one("#keywords", ListView).query(KeywordItem)),
            mode=self.query_one("#mode", Select).value, seeds=self.query_one("#seeds", Input).value,
            axes={row.axis: row.text for row in self.query(AxisRow) if row.text},
            **{f: self.query_one(f"#{f}", Input).value for f in ("steps", "guidance", "size", "init", "strength")},
            model=model if isinstance(model, str) else None, sampler=sampler or None)

    async def fill(self, composition: Composition) -> None:
        """Show ``composition``: a saved one, a run's or an experiment's settings ("load settings"), a job's. What
        the composer cannot show (an axis kind or a sampler this workshop does not know) is said, not dropped silently."""
        c = composition
        for field in ("prompt", "negative", "seeds", "steps", "guidance", "size", "init", "strength"):
            self.query_one(f"#{field}", Input).value = getattr(c, field)
        unknown = []
        if c.mode in MODES:
            self.query_one("#mode", Select).value = c.mode
        else:
            unknown.append(f"mode {quoted(c.mode)}")
        keywords = self.query_one("#keywords", ListView)
        await keywords.clear()
        await keywords.extend([KeywordItem(k.text, k.on, k.weight) for k in c.keywords])
        self.refresh_axis_keywords()
        for row in self.query(AxisRow):
            if kind := row.show(c.axes.get(row.axis, "")):
                unknown.append(f"the {row.axis} axis kind {quoted(kind)}")
        self.choose_model(c.model or self.app.model)
        if c.sampler is None or c.sampler in NAMES or c.sampler == OWN and self.app.settings.sampler:
            self.query_one("#sampler", Select).value = c.sampler or ""
        else:
            unknown.append(f"the sampler {quoted(c.sampler)}")
        if unknown:
            self.notify(f"the composer cannot show {', '.join(unknown)}: left out", severity="warning", markup=False)
        self.refresh_preview()

    async def restore(self, spec: Spec, options: GivenOptions) -> None:
        """Fill the composer with a job's composition — the spec values it was built from and its run options — as
        when the workshop re-attaches to a job that outlived it. Spec-file keys the composer has no field for are
        named in a notification, not silently dropped."""
        await self.fill(from_job(spec, options))
        if unshown := [k for k in ("wildcards", "keywords_first", "per_cell_seeds") if getattr(spec, k)]:
            self.notify(f"the job also has {', '.join(unshown)}, which the composer does not show", markup=False)

    def save(self, wait: bool = True) -> None:
        """Keep the composition with the journal (private, git-ignored): now, or (``wait=False``) in a thread, off
        the UI thread (the write is fsynced). A failure is said, never fatal."""
        if self._save_timer is not None:
            self._save_timer.stop()
            self._save_timer = None
        if self.app.journal is None:
            return
        write = partial(save_composition, self.app.journal_dir, self.composition())
        if not wait:
            self.run_worker(write, thread=True, group="save", exit_on_error=False)
            return
        try:
            write()
        except OSError as exc:
            self.composition_not_saved(exc)

    def composition_not_saved(self, error: BaseException) -> None:
        self.notify(f"the composition could not be saved: {say(error)}", severity="warning", markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "save" and event.state == WorkerState.ERROR:
            self.composition_not_saved(event.worker.error)

    def changed(self) -> None:
        """Something in the composer changed: show the new grid and save, each once the typing pauses."""
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(PREVIEW_PAUSE, self.refresh_preview)
        if self._save_timer is not None:
            self._save_timer.stop()
        self._save_timer = self.set_timer(SAVE_PAUSE, partial(self.save, wait=False))

    def refresh_axis_keywords(self) -> None:
        texts = [k.text for k in self.query_one("#keywords", ListView).query(KeywordItem)]
        for row in self.query(AxisRow):
            row.set_keywords(texts)

    def choose_model(self, model: str) -> None:
        """Select ``model`` in the model list (added to it when it is not among the available ones)."""
        if model not in self.models:
            self.models.insert(0, model)
        select = self.query_one("#model", Select)
        select.set_options([(Text(visible(m)), m) for m in self.models])
        select.value = model

    def axis_problem(self) -> str | None:
        return next((p for row in self.query(AxisRow) if (p := row.problem())), None)

    def refresh_preview(self) -> None:
        """Describe the grid the composer holds; its tokens are counted off the UI thread (``count_tokens``): a long
        prompt's count takes a while."""
        preview = self.query_one("#preview", Static)
        values = self.values()
        self._described = None
        if not values["prompt"] and not values["keywords"]:
            preview.update(Text("type a prompt, add keywords on the right, then ctrl+r runs the grid (F1: keys)", style="dim"))
            return
        try:
            if problem := self.axis_problem():
                raise SpecError(problem)
            grid = build_grid(spec_from(values))
        except (SpecError, ValueError) as exc:
            preview.update(Text(visible(say(exc)), style="red"))
            preview.add_class("error")
            self.mark_past_limit(set())
            return
        preview.remove_class("error")
        self._described = (grid, Text(visible(grid.describe())))
        preview.update(self._described[1] + Text("\ntokens: counting…", style="dim"))
        self.count_tokens(grid, str(self.query_one("#model", Select).value))

    @work(thread=True, exclusive=True, group="tokens")
    def count_tokens(self, grid, model: str) -> None:
        """The grid's token budget, counted in a thread — and, for a model that reads every A1111 window of a long
        prompt, how many windows the longest takes; shown if the grid is still the one described."""
        from ...compose.tokens import clip_bpe, windows
        from ...runner.models import reads_windows

        budgets = [c.token_budget for c in grid.cells]
        most = max((windows(c.prompt, clip_bpe()) for c in grid.cells), default=1) if reads_windows(model) else None
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_tokens, grid, budgets, most)

    def show_tokens(self, grid, budgets, windows: int | None = None) -> None:
        """``windows``: the most A1111 windows a cell's prompt takes, for a model that reads them all (None: one that
        reads one window, so what is past it is lost)."""
        previews = self.query("#preview")
        if self._described is None or self._described[0] is not grid or not previews:  # a newer grid, or none
            return
        longest = max(budgets, key=lambda b: b.tokens)
        over = {k for b in budgets for k in b.truncated} if windows is None else set()
        text = self._described[1] + "\n"
        if windows is not None and windows > 1:
            text.append(f"tokens: up to {longest.tokens} in {windows} windows of 75 — every one read, as A1111 reads them")
        elif any(b.over for b in budgets) and windows is None:
            past = max((b for b in budgets if b.over), key=lambda b: b.tokens)
            text.append(f"tokens: up to {past.tokens}/{past.limit} — past the limit: the model sees only the start",
                        style="bold red")
        else:
            text.append(f"tokens: up to {longest.tokens}/{longest.limit}")
        if over:
            text.append("  past the limit: " + ", ".join(visible(k) for k in sorted(over)), style="bold red")
        previews.first(Static).update(text)
        self.mark_past_limit(over)

    def mark_past_limit(self, over: set[str]) -> None:
        for item in self.query_one("#keywords", ListView).query(KeywordItem):
            item.set_class(item.text in over, "over-limit")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "new-keyword":
            self.changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        if "axis-type" in event.select.classes:
            event.select.parent.kind_chosen()
        elif event.select.id == "mode" and event.value == "sr":
            self.offer_sr_axis()
        self.changed()

    def offer_sr_axis(self) -> None:
        """The sr mode needs a Prompt S/R axis: with none, the first free axis becomes one, its values focused."""
        rows = list(self.query(AxisRow))
        if any(r.kind == "sr" for r in rows):
            return
        if row := next((r for r in rows if r.kind is None), None):
            row.query_one(".axis-type", Select).value = "sr"
            row.show_kind()
            values = row.query_one(".axis-values", Input)
            values.value = ""
            values.focus()

    def show_model_status(self, status: str) -> None:
        self.query_one("#model-status", Static).update(Text(visible(status), style="dim"))

    # ---------------------------------------------------------------- keywords

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "new-keyword" and event.value.strip():
            self.add_keyword(event.value.strip())
            event.input.value = ""
        elif event.input.id != "new-keyword":
            self.action_run_grid()

    def add_keyword(self, text: str) -> None:
        """Add ``text`` as a keyword; ``in the style of Basquiat:1.3`` comes with its weight, as ``-k`` takes it."""
        try:
            keyword = Keyword.from_text(text)
        except SpecError as exc:
            self.notify(visible(say(exc)), severity="error", markup=False)
            return
        keywords = self.query_one("#keywords", ListView)
        if any(k.text.casefold() == keyword.text.casefold() for k in keywords.query(KeywordItem)):
            self.notify(f"{quoted(keyword.text)} is already a keyword", markup=False)
            return
        keywords.append(KeywordItem(keyword.text, weight=keyword.weight))
        self.refresh_axis_keywords()
        self.call_after_refresh(self.changed)

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        if event.list_view.id == "library" and isinstance(event.item, KeywordItem):
            self.add_keyword(event.item.text)
        elif isinstance(event.item, KeywordItem):
            self.action_toggle_keyword()

    def on_descendant_focus(self, event) -> None:
        """A list that gets the focus highlights an item (its first), so the keys that act on one have one."""
        if isinstance(event.widget, ListView) and event.widget.index is None and len(event.widget):
            event.widget.index = 0

    def _focused_keyword(self) -> KeywordItem | None:
        keywords = self.query_one("#keywords", ListView)
        item = keywords.highlighted_child
        return item if self.focused is keywords and isinstance(item, KeywordItem) else None

    def action_focus(self, widget_id: str) -> None:
        self.query_one(f"#{widget_id}").focus()

    def action_toggle_keyword(self) -> None:
        if item := self._focused_keyword():
            item.on = not item.on
            item.refresh_label()
            self.changed()

    def action_weigh_keyword(self, steps: int) -> None:
        """Raise or lower the focused keyword's weight (A1111 emphasis) by 0.1; not below 0."""
        if item := self._focused_keyword():
            item.weight = max(0.0, round(item.weight + steps * WEIGHT_STEP, 2))
            item.refresh_label()
            self.changed()

    async def action_remove_keyword(self) -> None:
        if item := self._focused_keyword():
            keywords = self.query_one("#keywords", ListView)
            index = keywords.index or 0
            await item.remove()
            keywords.index = min(index, len(keywords) - 1) if len(keywords) else None  # the next one, to go on removing
            self.refresh_axis_keywords()
            self.changed()

    async def action_move_keyword(self, delta: int) -> None:
        keywords = self.query_one("#keywords", ListView)
        item = self._focused_keyword()
        if item is None:
            return
        items = list(keywords.query(KeywordItem))
        index = items.index(item)
        target = index + delta
        if not 0 <= target < len(items):
            return
        items[index], items[target] = items[target], items[index]
        state = [k.keyword for k in items]
        await keywords.clear()
        await keywords.extend([KeywordItem(k.text, k.on, k.weight) for k in state])
        keywords.index = target
        self.changed()

    def action_save_keyword(self) -> None:
        item = self._focused_keyword()
        if item is None:
            return
        path = library_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if item.text not in saved:
            path.write_text("\n".join([*saved, item.text]) + "\n", encoding="utf-8")
            self.query_one("#library", ListView).append(KeywordItem(item.text))
        self.notify("saved to your keyword library")

    # ---------------------------------------------------------------- running

    def action_run_grid(self) -> None:
        self._run(None)

    def action_run_once(self) -> None:
        self._run("plain")

    def _sampler_choices(self) -> list[tuple[str, str]]:
        """Left unchosen (""), a run takes the sampler setting, else the model's own; with a sampler setting, "model's
        own" is a choice of its own ("default", as --sampler default)."""
        setting = self.app.settings.sampler
        if setting is None or setting.lower() == OWN:
            return [(MODELS_OWN, "")] + [(name, name) for name in NAMES]
        return [(f"setting: {setting}", ""), (MODELS_OWN, OWN)] + [(name, name) for name in NAMES]

    def given(self, mode: str | None = None) -> tuple[Spec, GivenOptions]:
        """The job the composer holds: its spec and the run options its fields give (blank: not given, so the
        settings and the model's defaults decide, as for the CLI). SpecError, RunError or ValueError for a field
        that cannot be read."""
        from ...runner.options import parse_size

        if problem := self.axis_problem():
            raise SpecError(problem)
        size = self._text("size")
        try:
            given = GivenOptions(
                model=self.query_one("#model", Select).value, steps=self._number("steps", int),
                guidance=self._number("guidance", float), size=parse_size(size) if size else None,
                init_image=self._text("init") or None, strength=self._number("strength", float),
                sampler=self.query_one("#sampler", Select).value or None, preview_every=1)
        except ValidationError as exc:  # (a number field holding nan or inf)
            problem = first_problem(exc)
            raise ValueError(f"{problem.field} must be {problem.wanted}, not {quoted(problem.given)}") from None
        return spec_values(self.values(mode)), given

    def _run(self, mode: str | None) -> None:
        from ...errors import RunError
        from ...runner.options import resolve

        try:
            spec, given = self.given(mode)
            grid = build_grid(spec_from(spec))
            resolve(spec, given, self.app.settings)  # refused here what the run would refuse
        except (SpecError, RunError, ValueError) as exc:
            self.notify(visible(say(exc)), severity="error", markup=False)
            return
        self.save(wait=False)
        self.app.start_run(grid, spec, given)

    def _number(self, field: str, kind: type[int] | type[float]) -> int | float | None:
        """A number field: None when blank (the model's default), else the number, or one line saying what is wrong."""
        text = self.query_one(f"#{field}", Input).value.strip()
        if not text:
            return None
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{field} {quoted(text)} is not {'a whole number' if kind is int else 'a number'}; "
                             "leave it blank for the model's default") from None
