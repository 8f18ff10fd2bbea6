"""promptism's workshop: the app around the journal — command line now; composer, runner and TUI as they land."""
