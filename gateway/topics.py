"""Topic tagging: the first matching ``[[topics]]`` rule names a conversation's topic."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import TopicRule

__all__ = ["Topics", "DEFAULT_TOPIC"]

DEFAULT_TOPIC = "general"


@dataclass(frozen=True)
class Topics:
    """Compiled topic rules, tried in the order of the config file."""

    rules: tuple[tuple[str, re.Pattern[str]], ...]

    @classmethod
    def compile(cls, rules: tuple[TopicRule, ...]) -> "Topics":
        compiled = []
        for rule in rules:
            # Word boundaries by \w lookarounds rather than \b, so a keyword that
            # ends in punctuation ("c++") or is non-Latin ("возврат") still works.
            parts = [rf"(?<!\w){re.escape(keyword)}(?!\w)" for keyword in rule.keywords]
            parts += [f"(?:{pattern})" for pattern in rule.patterns]
            compiled.append((rule.name, re.compile("|".join(parts), re.IGNORECASE | re.UNICODE)))
        return cls(tuple(compiled))

    def tag(self, text: str) -> str:
        """The name of the first rule that matches ``text``, else ``general``."""
        for name, pattern in self.rules:
            if pattern.search(text):
                return name
        return DEFAULT_TOPIC
