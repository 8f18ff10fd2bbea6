"""The app's screens: composer, grid, journal (and detail), help, and small modal dialogs."""

from textual.widgets import Footer


def footer() -> Footer:
    """Every screen's footer: compact, and without the command palette's entry (ctrl+p still opens it), so that the
    keys fit 80 columns."""
    return Footer(compact=True, show_command_palette=False)
