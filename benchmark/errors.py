"""The one exception type that means "the user gave us something we cannot use".

Anything raised as :class:`UserError` reaches the command line as a one-paragraph message on
stderr and exit code 2, never as a traceback. The message must name the file and the field
(or argument) at fault.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: a recipe, a dataset folder, an argument, missing weights, ..."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""`` if none is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""
