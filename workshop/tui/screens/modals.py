"""Small dialogs: ask for one line of text (a title, a folder), or ask before doing something that cannot be undone.

Full screens rather than modals: a modal redraws the screen beneath it, and a grid of images costs a second.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Input, Label, Static
from textual.worker import Worker, WorkerState

from journal.text import visible

from ..wording import say


class AskText(Screen):
    """Ask one question. Without ``submit``: dismiss with the answer (Enter) or None (Esc).

    With ``submit``, Enter runs ``submit(answer)`` in a thread worker (a journal write: it never blocks the UI) and
    dismisses with what it returns; if it raises, the error is shown here and the dialog stays open to fix the answer.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "", submit: Callable[[str], object] | None = None):
        super().__init__()
        self.question = question
        self.value = value
        self.placeholder = placeholder
        self.submit = submit
        self.working = False

    def compose(self) -> ComposeResult:
        with Vertical(id="ask"):
            yield Label(self.question, markup=False)
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")
            yield Static(id="ask-error", markup=False)
            yield Label("Enter to confirm · Esc to cancel", classes="hint", id="ask-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.submit is None:
            self.dismiss(event.value)
        elif not self.working:
            self.working = True
            self.query_one("#ask-error", Static).update("")
            self.query_one("#ask-hint", Label).update("working…")
            self.run_worker(partial(self.submit, event.value), thread=True, exit_on_error=False, group="ask")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.SUCCESS:
            self.dismiss(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.working = False
            self.query_one("#ask-error", Static).update(Text(visible(say(event.worker.error)), style="bold red"))
            self.query_one("#ask-hint", Label).update("Enter to confirm · Esc to cancel")
            self.query_one("#answer", Input).focus()

    def action_cancel(self) -> None:
        if not self.working:  # a write under way finishes, and is reported: it is not abandoned half-said
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
