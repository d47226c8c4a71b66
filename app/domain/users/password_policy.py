"""The password policy: the one module every path that sets a password uses.

Passwords are normalised with NFKC before they are checked *and* before they
are hashed or verified, so a password typed on a keyboard that produces a
different but equivalent code-point sequence still matches. Character classes
are Unicode categories, so `€ ¥ £ § « — ・` are specials and any script's
letters are letters: the old backend's ASCII-only check rejected `€`.

Length and every other rule are judged on the NFKC form. A character class
(letter, digit, special) is also satisfied by a character as typed: NFKC turns
some symbols into letters or spaces (`№` -> `No`, `™` -> `TM`, `¨` -> space and a
combining mark), and `№` is Shift+3 on the Russian keyboard. A user who typed a
symbol has typed a special character and must not be told otherwise.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

from app.domain.shared.errors import FieldIssue

MIN_LENGTH = 8
MAX_LENGTH = 128
# A username or email local part shorter than this is not searched for inside the
# password: a one-letter local part would otherwise forbid that letter everywhere.
MIN_IDENTITY_FRAGMENT = 3
# A common word left after stripping leading/trailing digits and specials must be at
# least this long to count ("dragon2024!" is common, "ab12345!" is not on that ground).
MIN_COMMON_CORE = 4
# Bounds the number of de-leeted spellings tried for one password.
MAX_LEET_VARIANTS = 256

_LEET: dict[str, tuple[str, ...]] = {
    "@": ("a",),
    "4": ("a",),
    "0": ("o",),
    "1": ("i", "l"),
    "!": ("i", "l"),
    "|": ("l", "i"),
    "3": ("e",),
    "5": ("s",),
    "$": ("s",),
    "7": ("t",),
    "+": ("t",),
    "9": ("g",),
    "6": ("g",),
    "8": ("b",),
    "2": ("z",),
}

MESSAGES: dict[str, str] = {
    "too_short": f"Password must be at least {MIN_LENGTH} characters long.",
    "too_long": f"Password must be at most {MAX_LENGTH} characters long.",
    "missing_letter": "Password must contain at least one letter.",
    "missing_digit": "Password must contain at least one digit.",
    "missing_special": "Password must contain at least one special character (punctuation or symbol, e.g. ! € ¥ §).",
    "contains_username": "Password must not contain the username.",
    "contains_email": "Password must not contain the email address's local part.",
    "too_common": "Password is too common or a simple variant of a common password.",
}


def normalize_password(password: str) -> str:
    """The form a password is checked, hashed and verified in."""
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships a curated list of the 30,000 most common passwords; it is plain data.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # noqa: PLC0415 - large: loaded on first use

    return frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])


def _deleet_variants(text: str) -> Iterator[str]:
    choices = [_LEET.get(ch, (ch,)) for ch in text]
    for count, combo in enumerate(itertools.product(*choices)):
        if count >= MAX_LEET_VARIANTS:
            return
        yield "".join(combo)


def _strip_decoration(text: str) -> str:
    """Drop leading and trailing digits and specials: 'dragon2024!' -> 'dragon'."""
    start, end = 0, len(text)
    while start < end and not unicodedata.category(text[start]).startswith("L"):
        start += 1
    while end > start and not unicodedata.category(text[end - 1]).startswith("L"):
        end -= 1
    return text[start:end]


def is_common_password(password: str) -> bool:
    """True for a listed common password, its leet spellings, and either with digits/specials around it."""
    common = _common_passwords()
    folded = normalize_password(password).casefold()
    candidates = itertools.chain((folded,), _deleet_variants(folded))
    for candidate in candidates:
        if candidate in common:
            return True
        core = _strip_decoration(candidate)
        if len(core) >= MIN_COMMON_CORE and core in common:
            return True
    return False


def _has_category(text: str, prefixes: tuple[str, ...]) -> bool:
    return any(unicodedata.category(ch).startswith(prefixes) for ch in text)


def _has_class(typed: str, normalized: str, prefixes: tuple[str, ...]) -> bool:
    """A class is present when the normalised form or the password as typed has a character of it."""
    return _has_category(normalized, prefixes) or _has_category(typed, prefixes)


def check_password(password: str, *, username: str | None = None, email: str | None = None) -> list[FieldIssue]:
    """Every rule the password breaks, in a stable order; an empty list means accepted."""
    normalized = normalize_password(password)
    folded = normalized.casefold()
    broken: list[str] = []
    if len(normalized) < MIN_LENGTH:
        broken.append("too_short")
    if len(normalized) > MAX_LENGTH:
        broken.append("too_long")
    if not _has_class(password, normalized, ("L",)):
        broken.append("missing_letter")
    if not _has_class(password, normalized, ("N",)):
        broken.append("missing_digit")
    if not _has_class(password, normalized, ("P", "S")):
        broken.append("missing_special")
    if username:
        fragment = normalize_password(username).casefold()
        if len(fragment) >= MIN_IDENTITY_FRAGMENT and fragment in folded:
            broken.append("contains_username")
    if email:
        local_part = normalize_password(email.rpartition("@")[0] or email).casefold()
        if len(local_part) >= MIN_IDENTITY_FRAGMENT and local_part in folded:
            broken.append("contains_email")
    # A 129+ character password is not looked up: it is already refused, and the
    # look-up's cost grows with the length.
    if len(normalized) <= MAX_LENGTH and is_common_password(normalized):
        broken.append("too_common")
    return [FieldIssue(code=code, message=MESSAGES[code], field="password") for code in broken]
