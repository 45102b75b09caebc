"""Which language a question is in: py3langid's model ships in its wheel (no download)."""

from functools import lru_cache

from django.conf import settings
from py3langid.langid import MODEL_FILE, LanguageIdentifier

# Below this the identifier guesses; the conversation's language (or the default) stands.
MIN_PROBABILITY = 0.9


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(settings.CHAT_LANGUAGES)
    return identifier


def detect_language(text: str, fallback: str) -> str:
    """The question's language when it says enough to tell, else `fallback`."""
    if len(text.split()) < settings.CHAT_LANGUAGE_MIN_WORDS:
        return fallback
    language, probability = _identifier().classify(text)
    return language if probability >= MIN_PROBABILITY else fallback


def confident_language(text: str) -> str | None:
    """The language the identifier is sure of, however short the text; None when it is not sure."""
    language, probability = _identifier().classify(text)
    return language if probability >= MIN_PROBABILITY else None
