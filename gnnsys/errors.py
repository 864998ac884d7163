"""Error types that decide the exit code: a :class:`UserError` is a user mistake (exit 2)."""


class UserError(Exception):
    """A user mistake (bad input, bad option, bad file): the CLI prints one line and exits 2."""


class RuntimeFailure(Exception):
    """A failure at run time that is not the user's input (exit 1, one line, no traceback)."""
