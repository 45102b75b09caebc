from .llm.gateway import llm_enabled


def llm_mode(request) -> dict[str, bool]:
    """Pages (admin included) say plainly when answers come from the offline extractive provider."""
    return {"llm_offline": not llm_enabled()}
