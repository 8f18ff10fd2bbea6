"""The composer: prompt and negative prompt, keywords (add, remove, reorder, toggle, a personal library), the live
grid shape and token budget, model and settings — and the keys that run the grid or one image set."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Header, Input, Label, ListItem, ListView, Select, Static

from ...compose import SpecError
from ...compose.grid import MODES, build_grid
from ...compose.spec import spec_from
from ...paths import APP
from journal.text import quoted, visible

from ..wording import say
from . import footer


def library_file() -> Path:
    """The personal keyword library: one keyword per line in the user config directory."""
    return platformdirs.user_config_path(APP) / "keywords.txt"


class KeywordItem(ListItem):
    def __init__(self, text: str, on: bool = True):
        super().__init__(Label(markup=False))
        self.text = text
        self.on = on

    def on_mount(self) -> None:
        self.refresh_label()

    def refresh_label(self) -> None:
        mark = "[x]" if self.on else "[ ]"
        self.query_one(Label).update(Text(f"{mark} {visible(self.text)}", style="" if self.on else "dim strike"))


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
                    yield Input(compact=True, placeholder="size WxH", id="size")
                    yield Input(compact=True, placeholder="init image: path or #N", id="init")
                    yield Input(compact=True, placeholder="strength", id="strength")
                yield Static(id="preview", markup=False)
                yield Static(id="model-status", markup=False)
            with Vertical(id="right"):
                yield Label("Keywords", classes="heading")
                yield Static("space on/off · x remove · K/J move · s save", classes="hint", markup=False)
                yield ListView(id="keywords")
                yield Input(compact=True, placeholder="add keyword + Enter", id="new-keyword")
                yield Label("Library (Enter adds)", classes="heading")
                yield ListView(id="library")
        yield footer()

    def on_mount(self) -> None:
        from ...runner.models import available

        self.models = [m.id for m in available(self.app.settings)]
        self.choose_model(self.app.model)
        library = self.query_one("#library", ListView)
        if library_file().exists():
            for line in library_file().read_text(encoding="utf-8").splitlines():
                if line.strip():
                    library.append(KeywordItem(line.strip()))
        self.show_model_status(self.app.model_status)
        self.query_one("#prompt", Input).focus()
        self.refresh_preview()

    # ---------------------------------------------------------------- state → spec

    def values(self, mode: str | None = None) -> dict:
        get = lambda i: self.query_one(f"#{i}", Input).value.strip()  # noqa: E731
        return {
            "prompt": get("prompt"),
            "negative": get("negative"),
            "keywords": [{"text": k.text, "on": k.on} for k in self.query_one("#keywords", ListView).query(KeywordItem)],
            "mode": mode or self.query_one("#mode", Select).value,
            "seeds": get("seeds") or "0",
        }

    async def restore(self, spec: dict, options: dict) -> None:
        """Fill the composer with a job's composition — the spec values it was built from and its run options — as
        when the workshop re-attaches to a job that outlived it. Axes and spec-file keys the composer has no field for
        are named in a notification, not silently dropped."""
        set_text = lambda i, v: setattr(self.query_one(f"#{i}", Input), "value", "" if v is None else str(v))  # noqa: E731
        set_text("prompt", spec.get("prompt", ""))
        set_text("negative", spec.get("negative", ""))
        seeds = spec.get("seeds", [0])
        set_text("seeds", seeds if isinstance(seeds, str) else ",".join(map(str, seeds if isinstance(seeds, list) else [seeds])))
        if spec.get("mode") in MODES:
            self.query_one("#mode", Select).value = spec["mode"]
        keywords = self.query_one("#keywords", ListView)
        await keywords.clear()
        await keywords.extend([KeywordItem(k) if isinstance(k, str) else KeywordItem(k["text"], bool(k.get("on", True)))
                               for k in spec.get("keywords", [])])
        size = options.get("size")
        for field, value in (("steps", options.get("steps")), ("guidance", options.get("guidance")),
                             ("size", f"{size[0]}x{size[1]}" if size else None), ("init", options.get("init_image")),
                             ("strength", options.get("strength"))):
            set_text(field, value)
        if model := options.get("model"):
            self.choose_model(model)
        if unshown := [k for k in ("axes", "wildcards", "keywords_first", "per_cell_seeds") if spec.get(k)]:
            self.notify(f"the job also has {', '.join(unshown)}, which the composer does not show", markup=False)
        self.refresh_preview()

    def choose_model(self, model: str) -> None:
        """Select ``model`` in the model list (added to it when it is not among the available ones)."""
        if model not in self.models:
            self.models.insert(0, model)
        select = self.query_one("#model", Select)
        select.set_options([(Text(visible(m)), m) for m in self.models])
        select.value = model

    def refresh_preview(self) -> None:
        preview = self.query_one("#preview", Static)
        values = self.values()
        if not values["prompt"] and not values["keywords"]:
            preview.update(Text("type a prompt, add keywords on the right, then ctrl+r runs the grid (F1: keys)", style="dim"))
            return
        try:
            grid = build_grid(spec_from(self.values()))
        except (SpecError, ValueError) as exc:
            preview.update(Text(visible(say(exc)), style="red"))
            preview.add_class("error")
            over = set()
        else:
            preview.remove_class("error")
            longest = max(c.tokens for c in grid.cells)
            over = {k for c in grid.cells for k in c.truncated_keywords}
            text = Text(visible(grid.describe()) + f"\ntokens: up to {longest}/77")
            if over:
                text.append("  past the limit: " + ", ".join(visible(k) for k in sorted(over)), style="bold red")
            preview.update(text)
        for item in self.query_one("#keywords", ListView).query(KeywordItem):
            item.set_class(item.text in over, "over-limit")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "new-keyword":
            self.refresh_preview()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.refresh_preview()

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
        keywords = self.query_one("#keywords", ListView)
        if any(k.text.casefold() == text.casefold() for k in keywords.query(KeywordItem)):
            self.notify(f"{quoted(text)} is already a keyword", markup=False)
            return
        keywords.append(KeywordItem(text))
        self.call_after_refresh(self.refresh_preview)

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
            self.refresh_preview()

    async def action_remove_keyword(self) -> None:
        if item := self._focused_keyword():
            keywords = self.query_one("#keywords", ListView)
            index = keywords.index or 0
            await item.remove()
            keywords.index = min(index, len(keywords) - 1) if len(keywords) else None  # the next one, to go on removing
            self.refresh_preview()

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
        state = [(k.text, k.on) for k in items]
        await keywords.clear()
        await keywords.extend([KeywordItem(t, on) for t, on in state])
        keywords.index = target
        self.refresh_preview()

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

    def _run(self, mode: str | None) -> None:
        from ...runner.errors import RunError
        from ...runner.options import RunOptions, check_options, parse_size
        from ...runner.speedups import Speedups

        get = lambda i: self.query_one(f"#{i}", Input).value.strip()  # noqa: E731
        try:
            grid = build_grid(spec_from(self.values(mode)))
            options = RunOptions(
                model=self.query_one("#model", Select).value, steps=self._number("steps", int),
                guidance=self._number("guidance", float), size=parse_size(get("size")) if get("size") else None,
                init_image=get("init") or None, strength=self._number("strength", float),
                max_batch=self.app.settings.max_batch, clip=self.app.settings.clip, preview_every=1,
                co2_g_per_kwh=self.app.settings.co2_g_per_kwh, speedups=Speedups.chosen(self.app.settings))
            check_options(options)
        except (SpecError, RunError, ValueError) as exc:
            self.notify(visible(say(exc)), severity="error", markup=False)
            return
        self.app.start_run(grid, options, self.values(mode))

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
