class CodedError(Exception):
    """An error the client is shown, with a stable `code` (websocket error frames, API bodies)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
