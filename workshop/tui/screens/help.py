"""F1 / ?: every key of every screen, from the screens' own bindings (so the list cannot go stale)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static


class HelpScreen(Screen[None]):
    """A full screen, not a modal: nothing (like a grid of images) has to be redrawn beneath it."""

    BINDINGS = [Binding("escape,f1,question_mark,q", "close", "Close")]

    def action_close(self) -> None:
        self.dismiss()

    def compose(self) -> ComposeResult:
        from ..app import PromptismApp
        from .composer import ComposerScreen
        from .grid import CompareScreen, GridScreen, ZoomScreen
        from .journal import DetailScreen, JournalScreen

        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for name, owner in [("Everywhere", PromptismApp), ("Composer", ComposerScreen), ("Grid", GridScreen),
                            ("Zoom", ZoomScreen), ("Compare", CompareScreen), ("Journal", JournalScreen), ("Experiment", DetailScreen)]:
            table.add_row(Text(name, style="reverse"), "")
            for binding in owner.BINDINGS:
                if binding.action.startswith("app."):
                    continue  # the app's own key, listed under Everywhere
                keys = " / ".join(self.app.get_key_display(Binding(key.strip(), binding.action))
                                  for key in binding.key.split(","))
                table.add_row("  " + keys, binding.tooltip or binding.description)
        with VerticalScroll(id="help"):
            yield Static(Text("promptism — keys (Esc closes)", style="bold"))
            yield Static(table)
