"""The one exception type for bad input: the CLI prints its message (no traceback) and exits with status 2."""


class ReasonerError(Exception):
    """A problem the user can fix: the message names the file, field or key, and the allowed values."""
