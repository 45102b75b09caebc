"""Template variables in a system prompt: checked when a version is saved, filled in per answer.

A prompt names a variable as `{language}`; a literal brace is written twice (`{{`, `}}`), as in
Python's str.format. Rendering fills only the known variables, so a version saved before the check
existed (with stray braces) is still served as it was written."""

from __future__ import annotations

import re
import string

# What the answer path fills in, and what an operator reads next to the form.
ANSWER_PROMPT_VARIABLES: dict[str, str] = {
    "language": "the language code the answer is given in (en, de, fr...)",
}

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\w+)\}")


def template_errors(text: str, *, allowed: dict[str, str] = ANSWER_PROMPT_VARIABLES) -> list[str]:
    """What is wrong with the prompt's placeholders, in words an operator can act on; empty: fine."""
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as exc:
        return [f"Unbalanced brace ({exc}): write {{{{ and }}}} for a literal brace."]
    errors = []
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in allowed:
            known = ", ".join(f"{{{v}}}" for v in allowed) or "none"
            errors.append(f"Unknown variable {{{name}}}: the variables are {known}; "
                          "write {{{{ and }}}} for a literal brace.")
        elif spec or conversion:
            errors.append(f"{{{name}}} takes no format or conversion.")
    return errors


def template_render(text: str, values: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if name is None:
            return token[0]
        return values.get(name, token)

    return _PLACEHOLDER.sub(fill, text)
