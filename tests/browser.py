"""What the browser tests share: Debian's Chromium, the flags it runs with, and the mark that skips them
where it is missing (the `browser` fixture is in tests/conftest.py)."""

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The probe-tested flags: no sandbox as root, and no background calls to a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="no chromium")
