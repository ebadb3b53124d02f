"""Errors a user can cause and fix.

`UserError` carries one line that names the problem and the fix; the CLI prints it and
exits with code 2. Anything else is a programmer error and keeps its traceback.
"""


class UserError(Exception):
    """Bad input, missing file, unknown profile, ...: one clear line, exit code 2."""


class NotBuiltError(UserError):
    """A command whose stage is not built yet."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not built yet in this version of sculptor")
