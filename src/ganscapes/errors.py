"""Errors a user can cause and fix.

The command line prints a `UserError` as one sentence and exits non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input (a missing file, a bad option), described in one sentence."""
