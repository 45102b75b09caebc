from chat.llm.offline import NOT_FOUND, compose_answer
from knowledge.selectors import SearchHit


def hit(n, title, text, score, doc=None):
    return SearchHit(
        chunk_id=n, document_id=doc or n, title=title, url=f"/kb/documents/{n}/", text=text, score=score,
        dense_score=score,
    )


SQUAT = hit(1, "Barbell Squat", "Barbell Squat\n\nEquipment: barbell\n\nSet the bar on your back. Squat down "
            "until your thighs are parallel. Drive up through your heels.", 0.82)
CURL = hit(2, "Dumbbell Curl", "Dumbbell Curl\n\nCurl the weights while keeping elbows still.", 0.41)


def test_it_answers_with_the_sentences_of_the_best_chunk_and_cites_them():
    answer = compose_answer("How do I squat with a barbell?", [SQUAT, CURL])
    assert answer.text.startswith("Barbell Squat [1]")
    assert "Drive up through your heels." in answer.text
    assert answer.cited == (1,)  # the curl is far below the squat: not cited
    assert "Curl" not in answer.text


def test_it_merges_the_chunks_of_one_document_in_reading_order():
    second = hit(3, "Barbell Squat", "Barbell Squat\nDrive up through your heels. Rack the bar.", 0.80, doc=1)
    answer = compose_answer("barbell squat", [second, SQUAT])
    assert answer.text.count("Drive up through your heels.") == 1
    assert answer.text.index("Set the bar") < answer.text.index("Rack the bar")
    assert set(answer.cited) == {1, 2}


def test_it_says_it_does_not_know_when_nothing_is_close():
    assert compose_answer("capital of France?", [hit(1, "Plank", "Plank. Hold.", 0.12)]).text == NOT_FOUND
    assert compose_answer("anything", []).cited == ()
