"""What students type: names and guesses checked, and guesses grouped the way a teacher expects.

Everything here is a pure function of text, so the phones' requests never
need the model. There are three readings of a guess:

* ``typed_form``: what the student meant, as they wrote it. Spaces around it
  and doubled inside it are dropped, and so is trailing sentence punctuation
  ("cold." means "cold", which phones' autocorrect likes to add); case is kept.
  Punctuation alone ("?", "...") is kept as it is.
* ``bucket_key``: what the class histogram groups by, the typed form
  case-folded: " cold", "cold" and "Cold " are one bucket ("cold").
* ``model_surface``: the text the model would have to produce for the typed
  form to come next. The model writes the space before a word itself
  (" cold" is one token, "cold" another), so a word gets a leading space
  unless the prompt already ends in whitespace (a chat prompt ends in a
  newline) or an opening bracket or quote, or the guess begins with
  punctuation that attaches to the word before it ("," "." "'s").
  A prompt that stops mid-word is read as ending a word; scripts written
  without spaces (Chinese, Japanese) are out of scope.

Names and guesses are stored as typed; showing them safely (escaping) is the
page's job, and nothing here returns HTML.
"""

from __future__ import annotations

import re
import unicodedata

from core.errors import InvalidInput

MAX_NAME_CHARS = 40
MAX_GUESS_CHARS = 60
MAX_STUDENT_ID_CHARS = 64
ANONYMOUS = "anonymous"

# Line breaks, tabs and other C0/C1 controls, lone surrogates, and the marks that reverse the
# direction of the text after them (a name could otherwise flip the rest of a leaderboard row).
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TRAILING_PUNCTUATION = ".,!?;:…"
_ATTACHES_TO_WORD_BEFORE = tuple(".,;:!?)]}…%'’")
_OPENS_A_WORD = tuple("([{“‘«")
_STUDENT_ID = re.compile(r"[A-Za-z0-9_-]+")


def _check_characters(text: str, what: str) -> None:
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS:
            raise InvalidInput(
                f"The {what} contains an invisible control character (a line break, a tab or a "
                "text-direction mark): type it again without one."
            )


def clean_name(name: object) -> str:
    """A student's name, stripped; empty means ``"anonymous"``."""
    if name is None:
        return ANONYMOUS
    if not isinstance(name, str):
        raise InvalidInput("The name must be text.")
    name = name.strip()
    _check_characters(name, "name")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"The name has {len(name)} characters; at most {MAX_NAME_CHARS} are allowed.")
    return name or ANONYMOUS


def clean_guess(guess: object) -> str:
    """A guess exactly as typed, once it is known to be usable (it is stored as typed)."""
    if not isinstance(guess, str):
        raise InvalidInput("The guess must be text.")
    stripped = guess.strip()
    if not stripped:
        raise InvalidInput("The guess is empty: type the word you think comes next.")
    _check_characters(stripped, "guess")
    if len(stripped) > MAX_GUESS_CHARS:
        raise InvalidInput(
            f"The guess has {len(stripped)} characters; at most {MAX_GUESS_CHARS} are allowed: "
            "type the next word, or a few."
        )
    return guess


def check_student_id(student_id: object) -> str:
    """The random id a page makes for each browser; it is never shown to anyone."""
    if (
        not isinstance(student_id, str)
        or len(student_id) > MAX_STUDENT_ID_CHARS
        or not _STUDENT_ID.fullmatch(student_id)
    ):
        raise InvalidInput(
            f"The student id must be 1 to {MAX_STUDENT_ID_CHARS} letters, digits, '-' or '_' "
            "(the page makes one for each browser)."
        )
    return student_id


def typed_form(text: str) -> str:
    """What the student meant, case kept: ``"  Cold. "`` → ``"Cold"``; ``"?"`` stays ``"?"``."""
    collapsed = " ".join(unicodedata.normalize("NFC", text).split())
    return collapsed.rstrip(_TRAILING_PUNCTUATION).rstrip() or collapsed


def bucket_key(text: str) -> str:
    """What the class histogram groups by: ``" cold"``, ``"cold"`` and ``"Cold "`` all give ``"cold"``.

    Applied to a model token too (``" Cold"`` → ``"cold"``), so the class and
    the model are compared the same way. A token that is only whitespace
    gives ``""``, which no guess can equal (a guess is never empty).
    """
    return typed_form(text).casefold()


def model_surface(prompt_text: str, typed: str) -> str:
    """The text the model must produce next for ``typed`` to follow ``prompt_text``: usually ``" " + typed``."""
    if (
        not prompt_text
        or prompt_text[-1].isspace()
        or prompt_text.endswith(_OPENS_A_WORD)
        or typed.startswith(_ATTACHES_TO_WORD_BEFORE)
    ):
        return typed
    return " " + typed
