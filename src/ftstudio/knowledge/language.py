"""The language of a document or a query, as an ISO 639-1 code ("en", "ja"), from its script, else its short words.

Search prefers chunks in the query's language (see store.py), so ingest records each document's language: the one
the document declares (HTML `lang`, EPUB `dc:language`, a PDF's `/Lang`, DOCX core properties, front matter), else
this detection. Our own rather than a library: none is installed with ftstudio, langdetect answers at random unless
seeded, and the others carry models of megabytes; what is needed is coarse. A script of its own (kana, hangul,
Cyrillic, Greek, ...) settles most non-Latin languages; Latin-script text is told apart by its commonest function
words, which short queries have too ("how to configure apt sources": "how", "to").
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Function words frequent in each language; a word listed for several languages (such as "die": German and Dutch)
# counts for each of them as that share of a word.
_WORDS = {
    "en": "the of and to is in that it for are with as be this by was how what which does do can you not or from "
    "an have has if when there their will should would where why who use using",
    "de": "der die das und ist nicht ein eine mit auf für sich dem den des auch wird werden von zu im wie bei "
    "oder wenn kann sie wir ich aus nach noch",
    "fr": "le la les et est des une dans pour pas que qui sur avec sont par vous nous ce cette aux du être ou "
    "peut plus comment quoi",
    "es": "el los las y es una para con por que del se su sus como más pero este esta son está puede cómo qué",
    "it": "il di che è della delle degli con per sono una gli nel nella questo questa come anche più può cosa",
    "pt": "o os as e um uma não com para por que do da dos das em se no na como mais pode você são é",
    "nl": "het een van dat niet op zijn voor met hoe wat die ook aan er worden kan wordt bij naar",
    "pl": "nie na się że jest jak czy oraz przez dla są może jego ale tak już być",
    "ca": "el els les i és amb per que del una dels als com més però pot són aquest",
    "ro": "și în este cu pe care pentru nu un o din sunt se la ce mai poate",
    "sv": "och att det är som en på för med inte av till den har kan hur vad",
}
_LISTED = Counter(w for words in _WORDS.values() for w in set(words.split()))
_WEIGHT = {lang: {w: 1 / _LISTED[w] for w in words.split()} for lang, words in _WORDS.items()}
_WORD = re.compile(r"[^\W\d_]+")
_SAMPLE = 20_000  # characters of a document looked at: enough for its language, bounded for a large book
# Scripts by the first word of their Unicode character names, and the language each implies.
_SCRIPTS = {
    "HIRAGANA": "ja", "KATAKANA": "ja", "HANGUL": "ko", "CJK": "zh", "CYRILLIC": "ru", "GREEK": "el",
    "ARABIC": "ar", "HEBREW": "he", "THAI": "th", "DEVANAGARI": "hi",
}  # fmt: skip


def function_words(language: str | None) -> frozenset[str]:
    """The function words listed for `language` ("how", "to", "the" for "en"); empty for a language not listed."""
    return frozenset(_WEIGHT.get(language or "", ()))


def normalise(tag: str | None) -> str | None:
    """A declared language tag ("en-US", "pt_BR", " DE ") as its primary language ("en", "pt", "de"), or None."""
    primary = re.split(r"[-_]", (tag or "").strip().lower(), maxsplit=1)[0]
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) and primary not in ("und", "mul", "zxx") else None


def detect(text: str) -> str | None:
    """The language of `text`, or None when it gives too little to tell (a bare term, a code sample)."""
    text = text[:_SAMPLE]
    scripts: Counter[str] = Counter()
    latin = 0
    for ch in text:
        if ch.isalpha():
            if ch.isascii():
                latin += 1
                continue
            script = unicodedata.name(ch, "").split(" ", 1)[0]
            if script == "LATIN":
                latin += 1
            elif script in _SCRIPTS:
                scripts[_SCRIPTS[script]] += 1
    letters = latin + sum(scripts.values())
    if not letters:
        return None
    if scripts["ja"]:
        # Japanese writes kanji (CJK) beside kana; kana at all, with enough of the text in these scripts, is Japanese.
        scripts["ja"] += scripts.pop("zh", 0)
    script, count = scripts.most_common(1)[0] if scripts else (None, 0)
    # A fifth of the letters: manuals in Japanese or Russian quote many commands and names in Latin letters.
    if script and count >= 0.2 * letters:
        return script
    words = Counter(w for w in _WORD.findall(text.lower()))
    hits = Counter({lang: sum(n * weight.get(w, 0) for w, n in words.items()) for lang, weight in _WEIGHT.items()})
    (best, first), (_, second) = hits.most_common(2)
    # Some evidence (more than one word's worth), and twice any other language's: else there is no telling.
    return best if first > 1 and first >= 2 * second else None
