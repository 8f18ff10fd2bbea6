"""The runner as a service: one long-lived process per user that owns the device, keeps models warm and runs jobs
from a queue, over HTTP on a Unix socket (and AUTOMATIC1111's API on the same service)."""
