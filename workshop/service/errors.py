"""The service's one error type for its clients: one line that names the fix."""


from ..errors import PromptismError


class ServiceError(PromptismError):
    """The service refused a request, is not running, or could not be started."""

    code = "service"


class ServiceUnavailable(ServiceError):
    """No service answers on the socket."""
