"""Errors a user can cause and fix.

The command line prints a `UserError` as one sentence and exits non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input (a missing file, a bad option), described in one sentence."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, for quoting inside one of our sentences.

    Library errors (torch, Pillow, safetensors) can span pages; a user sentence quotes
    only their first line, without its final period, cut to `limit` characters.
    """
    lines = str(error).strip().splitlines()
    text = (lines[0] if lines else type(error).__name__).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"
