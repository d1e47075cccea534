"""Closed choices of a setting (``precision: auto | 32 | bf16``, ``mode: style | ...``) as string enums.

A :class:`Choice`'s members are named by their values, so the same word works everywhere: OmegaConf (which
matches a string to a member's name) checks it where a structured config reads it (the entry points' schemas,
e.g. :class:`l2sae.editing.run.EditConfig`), and plain Python (``Precision("bf16")``) reads it too. Members
are strings (``Precision.bf16 == "bf16"``), so code and messages use them as such. Library functions called
without a config check their argument with :meth:`Choice.parse`, which names the key and the choices.
"""

from __future__ import annotations

from enum import StrEnum

from l2sae.utils.errors import ConfigError


class Choice(StrEnum):
    """A string enum whose members are named by their values (see the module docstring)."""

    @classmethod
    def _missing_(cls, value: object) -> Choice | None:
        # an integer choice (``precision=32`` reaches OmegaConf as the int 32) is found by its text
        return cls.__members__.get(str(value))

    @classmethod
    def parse(cls, value: object, key: str) -> Choice:
        """``value`` as a member; anything else is a ConfigError naming ``key`` and the choices."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"{key}: expected one of {', '.join(cls)}, got {value!r}") from None
