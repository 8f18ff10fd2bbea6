"""The runner as a service: one process per user that owns the device, keeps models warm and runs jobs from a
persisted FIFO queue, over HTTP on a private Unix socket (``server``/``daemon``), and the client the CLI and the TUI
use (``client``). Importing the package loads nothing heavy: only ``executor`` and the worker touch the runner."""
