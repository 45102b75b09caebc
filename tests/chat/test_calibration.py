"""`manage.py cache_calibrate`: thresholds from labelled questions for a target precision."""

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from chat.models import CacheCalibration, CacheEntry
from chat.reuse.selectors import forget_guard_params, guard_params

pytestmark = pytest.mark.django_db
LABELLED = Path(__file__).resolve().parent.parent / "data" / "banking77-sample.csv"  # six intents


def test_it_stores_thresholds_that_reach_the_target_and_the_cache_uses_them():
    out = io.StringIO()
    call_command("cache_calibrate", file=LABELLED, target=0.99, stdout=out)
    calibration = CacheCalibration.objects.get()
    assert calibration.precision >= 0.99 and 0 < calibration.hit_rate <= 1 and calibration.labelled == 240
    forget_guard_params()
    assert guard_params().min_similarity == calibration.params["min_similarity"]
    assert "precision" in out.getvalue()


@pytest.mark.parametrize("content, message", [
    ("question,answer\nx,y\n", "columns text,category"),
    ("text,category\n" + "hello,a\n" * 10, "at least 50"),
])
def test_bad_labelled_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        call_command("cache_calibrate", file=path)
    assert not CacheCalibration.objects.exists()


def test_without_a_file_it_learns_from_the_cache_and_approved_answers():
    import csv

    with LABELLED.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    CacheEntry.objects.bulk_create(
        CacheEntry(question=r["text"], question_hash=str(n), answer=r["category"], answer_key=r["category"],
                   space_id=1, embedding=[1.0], kb_version=1, language="en")
        for n, r in enumerate(rows)
    )
    call_command("cache_calibrate", target=0.95, stdout=io.StringIO())
    calibration = CacheCalibration.objects.get()
    assert calibration.source == "approved answers and cache entries" and calibration.labelled == len(rows)
    assert calibration.precision >= 0.95
