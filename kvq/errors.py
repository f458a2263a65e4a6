"""The one exception type kvq raises for bad user input."""


class KvqError(ValueError):
    """A user-facing error: the message says what was wrong and what to do.

    The CLI prints it as a single line and exits with status 2.
    """
