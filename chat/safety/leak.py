"""Does an answer give the system prompt away? A leak is a long run of the prompt's words
reproduced in order, verbatim or nearly (case, punctuation and spacing ignored).

Runs are found with word shingles: every SAFETY_LEAK_WORDS consecutive words of the prompt are
remembered, and an answer leaks when enough of its own shingles are among them. Short prompts
(fewer words than a shingle) cannot leak this way: quoting six words of policy is not a leak."""

from __future__ import annotations

import re

from django.conf import settings

_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _shingles(words: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


class LeakWatch:
    """Fed an answer piece by piece as it streams; says as soon as the text so far leaks."""

    def __init__(self, system_prompt: str) -> None:
        self.size = settings.SAFETY_LEAK_WORDS
        self.needed = settings.SAFETY_LEAK_SHINGLES
        self._prompt = _shingles(_words(system_prompt), self.size)
        self._tail = ""  # a word that may continue in the next piece
        self._window: list[str] = []
        self.matched = 0
        self.leaked = False

    def feed(self, piece: str) -> bool:
        if self.leaked or not self._prompt:
            return self.leaked
        text = self._tail + piece
        words = _words(text)
        # The last word is only complete once a non-word character follows it.
        self._tail = words.pop() if words and re.search(r"\w$", text) else ""
        for word in words:
            self._window = [*self._window[-(self.size - 1):], word] if self.size > 1 else [word]
            if len(self._window) == self.size and tuple(self._window) in self._prompt:
                self.matched += 1
        self.leaked = self.matched >= self.needed
        return self.leaked

    def finish(self) -> bool:
        """The answer has ended: its last word counts too."""
        tail, self._tail = self._tail, ""
        return self.feed(tail + " ") if tail else self.leaked


def leaks_system_prompt(answer: str, system_prompt: str) -> bool:
    watch = LeakWatch(system_prompt)
    watch.feed(answer)
    return watch.finish()
