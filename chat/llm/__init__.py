"""LLM access: the OpenAI-compatible gateway and the offline extractive provider."""
