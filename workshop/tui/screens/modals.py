"""Small dialogs: ask for one line of text (a title, a folder), or ask before doing something that cannot be undone.

Full screens rather than modals: a modal redraws the screen beneath it, and a grid of images costs a second.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Input, Label


class AskText(Screen[str | None]):
    """Ask one question; dismiss with the answer (Enter) or None (Esc)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = ""):
        super().__init__()
        self.question = question
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="ask"):
            yield Label(self.question, markup=False)
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")
            yield Label("Enter to confirm · Esc to cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Confirm(Screen[bool]):
    """Ask before something that cannot be undone: y goes ahead, n or Esc does not."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes: str):
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="ask"):
            yield Label(self.question, markup=False)
            yield Label(f"y: {self.yes} · n or Esc: no", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
