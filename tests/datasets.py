"""Small generated datasets with the awkward parts of real tables: text, gaps, odd names."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mixed_classification(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Binary target 'churn' (yes/no) from numbers and categories, with missing values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "monthly fee": rng.gamma(2.0, 30.0, n).round(2),
            "plan": rng.choice(["basic", "plus", "premium"], n),
            "region": rng.choice(["north", "south", "east", "west", None], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    score = (
        (frame["monthly fee"] > 60).astype(int) + (frame["plan"] == "basic") + rng.random(n) * 0.8
    )
    frame["churn"] = np.where(score > 1.0, "yes", "no")
    return frame


def multiclass(n: int = 450, seed: int = 1) -> pd.DataFrame:
    """Three species from two measurements and an island name."""
    rng = np.random.default_rng(seed)
    species = rng.choice(["adelie", "gentoo", "chinstrap"], n)
    centre = pd.Series(species).map({"adelie": 38.0, "gentoo": 47.0, "chinstrap": 49.0})
    frame = pd.DataFrame(
        {
            "bill_length": centre + rng.normal(0, 2.0, n),
            "flipper": pd.Series(species).map({"adelie": 190, "gentoo": 217, "chinstrap": 196})
            + rng.normal(0, 6, n),
            "island": np.where(
                species == "gentoo", "biscoe", rng.choice(["dream", "torgersen"], n)
            ),
        }
    )
    frame["species"] = species
    return frame


def regression(n: int = 500, seed: int = 2) -> pd.DataFrame:
    """A price from an area, a room count and a district, with a few gaps."""
    rng = np.random.default_rng(seed)
    district = rng.choice(["centre", "suburb", "rural"], n)
    frame = pd.DataFrame(
        {
            "area": rng.uniform(30, 200, n),
            "rooms": rng.integers(1, 7, n).astype(float),
            "district": district,
        }
    )
    bonus = pd.Series(district).map({"centre": 900.0, "suburb": 300.0, "rural": 0.0})
    frame["price"] = frame["area"] * 25 + frame["rooms"] * 150 + bonus + rng.normal(0, 60, n)
    frame.loc[rng.random(n) < 0.05, "rooms"] = np.nan
    return frame


def wide_classification(n: int = 400, columns: int = 30, seed: int = 3) -> pd.DataFrame:
    """A wide table: two thirds of ``columns`` text categories, the rest numbers, with gaps;
    binary target 'label' (yes/no) from a few of each."""
    rng = np.random.default_rng(seed)
    frame, score = {}, np.zeros(n)
    for i in range(columns):
        if i % 3:
            levels = np.array([f"c{i}_{j}" for j in range(3 + i % 7)])
            codes = rng.integers(0, len(levels), n)
            frame[f"cat {i}"] = levels[codes]
            score += (codes == 0) * (i % 4 == 1)
        else:
            frame[f"num_{i}"] = rng.normal(0, 1, n).round(3)
            score += frame[f"num_{i}"] * (i % 2)
    table = pd.DataFrame(frame)
    table.loc[rng.random(n) < 0.05, "cat 1"] = None
    table.loc[rng.random(n) < 0.05, "num_0"] = np.nan
    table["label"] = np.where(score + rng.normal(0, 0.5, n) > 1.0, "yes", "no")
    return table


HAM_WORDS = [
    "meeting",
    "lunch",
    "tomorrow",
    "home",
    "call",
    "later",
    "dinner",
    "mum",
    "love",
    "thanks",
    "office",
    "bus",
    "class",
]
SPAM_WORDS = [
    "free",
    "prize",
    "winner",
    "claim",
    "cash",
    "urgent",
    "offer",
    "txt",
    "reply",
    "stop",
    "award",
    "guaranteed",
    "café",
]
COMMON_WORDS = [
    "the",
    "you",
    "to",
    "a",
    "and",
    "is",
    "for",
    "your",
    "it",
    "on",
    "now",
    "this",
    "at",
    "we",
]


def spam_messages(n: int = 400, seed: int = 4, spam_share: float = 0.15) -> pd.DataFrame:
    """Short messages ('message') labelled 'spam' or 'ham' ('label') by their words, written in
    any case and some with accents ("FREE", "Frée"), as people type them."""
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(n) < spam_share, "spam", "ham")
    messages = []
    for label in labels:
        own = SPAM_WORDS if label == "spam" else HAM_WORDS
        other = HAM_WORDS if label == "spam" else SPAM_WORDS
        words = []
        for _ in range(rng.integers(5, 13)):
            pick = rng.random()
            pool = own if pick < 0.5 else other if pick < 0.55 else COMMON_WORDS
            words.append(_typed(str(rng.choice(pool)), rng))
        messages.append(" ".join(words))
    return pd.DataFrame({"message": messages, "label": labels})


def _typed(word: str, rng: np.random.Generator) -> str:
    """``word`` as someone might type it: as is, capitalised, shouted, or with an accent."""
    return [
        word,
        word.capitalize(),
        word.upper(),
        word.replace("e", "é", 1).replace("a", "à", 1),
    ][rng.choice(4, p=[0.55, 0.2, 0.15, 0.1])]
