"""promptism's workshop: the app around the journal — the command line, the composer, the runner, the service and
the TUI."""
