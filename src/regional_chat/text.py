"""Language helpers shared by the stages: which script a text is written in.

The house layout (CONVENTIONS.md) puts every language helper here; the stop
word lists and stemmers still live with their stages and move here when the
issue that unifies them is taken.
"""

from __future__ import annotations

import re

CYRILLIC = re.compile(r"[\u0400-\u04ff]")  # Russian and Kazakh letters (Kazakh's extra ones are in the block too)
LATIN = re.compile(r"[a-z]")


def script_of(text: str) -> str:
    """``"cyrillic"`` when a text has more Cyrillic than Latin letters, else ``"latin"``."""
    lower = text.lower()
    return "cyrillic" if len(CYRILLIC.findall(lower)) > len(LATIN.findall(lower)) else "latin"


_KAZAKH_ONLY = re.compile(r"[әғқңөұүһі]")  # Cyrillic letters Kazakh writes and Russian does not
LANGUAGE_NAMES = {"english": "English", "russian": "Russian", "kazakh": "Kazakh"}


def language_of(text: str) -> str:
    """``"kazakh"``, ``"russian"`` or ``"english"``: the corpus's languages, told apart by their letters.

    Latin script is taken as English (the corpus's other Latin-script language
    would need a real language identifier); Cyrillic with Kazakh's own letters
    (ә, ғ, қ, ң, ө, ұ, ү, һ, і) as Kazakh, else Russian.
    """
    if script_of(text) == "latin":
        return "english"
    return "kazakh" if _KAZAKH_ONLY.search(text.lower()) else "russian"
