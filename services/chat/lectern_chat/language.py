"""The reader's language: which one an answer is written in (Urdu or English), whether a
question must be put into English before the book (written in English) is searched, and the
words that ask the model for both."""

from __future__ import annotations

import re
from typing import Literal

Language = Literal["ur", "en"]
LANGUAGES: tuple[Language, ...] = ("ur", "en")

# Arabic-script letters (Urdu is written in them): Arabic, its supplement and extended-A, and
# the presentation forms a keyboard sometimes produces.
_ARABIC_SCRIPT = re.compile(r"[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
# Function words of English questions: Roman Urdu ("ROS 2 mein node kya hai") has none of them.
_ENGLISH_WORDS = frozenset(
    "a an and are can could do does for from how i if in is it of on or should the to use "
    "what when where which who why will with would you my me there this that these".split()
)

TRANSLATE_SYSTEM = (
    "You turn a reader's question, written in Urdu (in Urdu or Latin script), into one short "
    "English search query for an English textbook. Keep code, commands, package, file and API "
    "names exactly as written. Reply with the English query only, on one line, without quotes "
    "or explanations."
)

ANSWER_IN = {
    "ur": (
        "Write the whole answer in Urdu (اردو), in Urdu script, whatever language the sources"
        " are in. Keep code, commands, file names, package and API names, and the technical"
        " terms the sources use exactly as they are written (in English, in Latin script);"
        " never translate or transliterate them. Cite the English sources with their numbers"
        " in square brackets as usual, like [1]."
    ),
    "en": "Write the answer in English.",
}

# The not-covered answer (no model call) is English text; an Urdu reader gets this first.
NOT_COVERED_UR = "یہ کتاب اس سوال کا جواب نہیں دیتی۔ قریب ترین حصے یہ ہیں:"  # noqa: RUF001


def has_urdu_script(text: str) -> bool:
    return _ARABIC_SCRIPT.search(text) is not None


def looks_english(text: str) -> bool:
    """Latin script with at least one English function word: a question to search as it is."""
    if has_urdu_script(text):
        return False
    words = [w.lower() for w in _LATIN_WORD.findall(text)]
    return any(w in _ENGLISH_WORDS for w in words)


def detected(text: str) -> Language:
    """The language a question without a stated one is answered in."""
    return "ur" if has_urdu_script(text) else "en"


def answer_language(
    question: str, *, requested: Language | None, profile_default: str | None
) -> Language:
    """The request's language, else the reader's profile default, else the question's own."""
    if requested is not None:
        return requested
    if profile_default in LANGUAGES:
        return profile_default
    return detected(question)


def needs_english_query(question: str, language: Language | None) -> bool:
    """Whether the question must be rewritten into English before the book is searched: it is
    in Urdu script, or the reader asks in Urdu and the question is not English."""
    if has_urdu_script(question):
        return True
    return language == "ur" and not looks_english(question)


def may_need_profile(question: str, requested: Language | None) -> bool:
    """Whether the profile's default language could decide `needs_english_query` (a
    Latin-script question that is not English, asked without a language)."""
    return requested is None and not has_urdu_script(question) and not looks_english(question)
