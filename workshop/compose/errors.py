"""The one error composition raises: a spec, flag or prompt that cannot make a grid, said in one line."""

from ..errors import PromptismError


class SpecError(PromptismError, ValueError):
    """Bad grid input; the message names the problem and the fix."""

    code = "bad_spec"
