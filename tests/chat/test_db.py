import threading

import pytest
from django.test import override_settings

from chat import db


def test_work_alongside_runs_on_the_caller_when_every_side_thread_is_busy_instead_of_waiting(monkeypatch):
    monkeypatch.setattr(db, "_side_executor", None)
    release = threading.Event()
    with override_settings(CHAT_DB_THREADS=1):
        busy = db.Alongside(release.wait, 5)  # holds the only side thread
        queued = db.Alongside(threading.current_thread)
        assert queued.result() is threading.current_thread()  # done here, not after the busy one
        release.set()
        assert busy.result() is True
    db._side_threads().shutdown()


def test_work_alongside_hands_its_failure_to_the_caller(monkeypatch):
    monkeypatch.setattr(db, "_side_executor", None)

    def failing():
        raise ValueError("no such chunk")

    with pytest.raises(ValueError, match="no such chunk"):
        db.Alongside(failing).result()
    db._side_threads().shutdown()
