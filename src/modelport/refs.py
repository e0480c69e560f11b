"""Model references: ``name``, ``name:3`` or ``name@alias``.

Resolution rule for a plain ``name``: the version the ``production`` alias points to if the model has
one, otherwise the newest version. ``name@latest`` always means the newest version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidReference

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ALIAS_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
DEFAULT_ALIAS = "production"
LATEST = "latest"


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference; at most one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        text = text.strip()
        name, version, alias = text, None, None
        if "@" in text:
            name, alias = text.split("@", 1)
            check_alias(alias)
        elif ":" in text:
            name, number = text.split(":", 1)
            if not (number.isascii() and number.isdigit()) or not 1 <= int(number) < 10**9:
                raise InvalidReference(
                    f"Model reference '{text}' has version '{number}', but a version is a whole "
                    f"number from 1. Write '{name}:1', '{name}@production' or just '{name}'."
                )
            version = int(number)
        check_name(name, what=f"model reference '{text}'")
        return cls(name, version, alias)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def check_name(name: str, what: str = "model name") -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidReference(
            f"The {what} is not valid: '{name}'. A model name is 1 to 64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit; for example 'credit-risk'."
        )
    return name


def check_alias(alias: str) -> str:
    if not ALIAS_PATTERN.fullmatch(alias):
        raise InvalidReference(
            f"The alias '{alias}' is not valid. An alias is 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter; for example 'production' or 'staging'."
        )
    return alias
