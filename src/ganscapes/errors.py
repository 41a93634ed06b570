"""Errors a user can cause and fix.

The command line prints a `UserError` as one sentence and exits non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input (a missing file, a bad option), described in one sentence."""


class SettingError(UserError):
    """A bad value of one named setting, e.g. `SettingError("psi", "must be between -1 and 2, not 5")`.

    The library names the setting as its own API does; each front end says it in its own
    words — the command line as its option (`--psi`, see `cli.app.option_name`), the
    studio as the label of its field — through `worded(name)`.
    """

    def __init__(self, setting: str, problem: str):
        self.setting, self.problem = setting, problem
        super().__init__(f"{setting} {problem}")

    def worded(self, name: str) -> str:
        """The same sentence about the setting called `name`."""
        return f"{name} {self.problem}"


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, for quoting inside one of our sentences.

    Library errors (torch, Pillow, safetensors) can span pages; a user sentence quotes
    only their first line, without its final period, cut to `limit` characters.
    """
    lines = str(error).strip().splitlines()
    text = (lines[0] if lines else type(error).__name__).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"
