"""Where settings come from: the environment, over an optional `.env` file (django-environ). Shared by
config/settings.py and the settings modules it imports, so the file is read once."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # optional; real env wins
