"""The one exception a user may cause.

A ``UserError`` is bad input: the command line prints its message as one line and exits with
status 2, with no traceback, before any model is loaded and before anything is written.
"""


class UserError(Exception):
    """Bad input from the user. The message names the problem and the fix, on one line."""

    exit_code = 2
