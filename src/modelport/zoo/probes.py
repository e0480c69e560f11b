"""Sentences the text models of the zoo are checked on when they are built: the exported graph
against the original model, and the int8 graph against fp32.

They are made from templates, so nothing is downloaded, and they cover what text models trip
on: negation, intensifiers, contrast ("but"), capitals, "!" and "?", emoticons and emoji,
accents, CJK, and a text longer than a window.
"""

from __future__ import annotations

import itertools

SUBJECTS = ["The movie", "This phone", "Our hotel room", "The service", "My new job", "The food"]
PREDICATES = [
    "is good",
    "was great",
    "is terrible",
    "was bad",
    "is okay",
    "is not good",
    "isn't bad at all",
    "was very good",
    "was extremely bad",
    "is kind of nice",
    "was barely acceptable",
    "is never this good",
    "is the worst",
    "is without a doubt excellent",
    "was at least not horrible",
    "is VERY GOOD",
    "was so boring",
    "is a place",
]
ENDINGS = [".", "!", "!!!", "?", "??", " :)", " :(", " 😀", " 😢", ", but the staff were rude."]
EXTRA = [
    "I love it, but I hate the price.",
    "Not bad, not great.",
    "Café naïve façade: déjà vu.",
    "東京タワーは高い。",
    "Emoji only 👍🏽👨‍👩‍👧",
    "Nothing to see here",
    "lol",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Make sure you :) or :D today!",
    "Turn on the lights.",
    "Switch the lamp on.",
    "What is the weather like in Paris tomorrow?",
    "Please cancel my subscription; I am very disappointed.",
    "Absolutely fantastic support, thank you so much!!",
    "meh",
    " ".join(["a very long and rather repetitive sentence that goes on"] * 60),
]


def sentences() -> list[str]:
    """About 200 sentences, always the same ones in the same order."""
    combos = itertools.product(SUBJECTS, PREDICATES, ENDINGS)
    chosen = [f"{s} {p}{e}" for i, (s, p, e) in enumerate(combos) if i % 6 == 0]
    return chosen + EXTRA
