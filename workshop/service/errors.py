"""The service's one error type for its clients: one line that names the fix."""


class ServiceError(Exception):
    """The service refused a request, is not running, or could not be started."""


class ServiceUnavailable(ServiceError):
    """No service answers on the socket."""
