from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed answer; the last one of a stream may carry only usage."""

    text: str = ""
    model: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None


class LLMError(Exception):
    """Generation failed; `code` is the stable error code the client sees."""

    code = "generation_failed"


class LLMUnavailable(LLMError):
    code = "llm_unavailable"


class StreamInterrupted(LLMError):
    code = "stream_interrupted"
