from chat.llm.offline import NOT_FOUND, compose_answer
from knowledge.selectors import SearchHit


def hit(n, title, text, score, doc=None):
    return SearchHit(
        chunk_id=n, document_id=doc or n, title=title, url=f"/kb/documents/{n}/", text=text, score=score,
        dense_score=score,
    )


SQUAT = hit(1, "Barbell Squat", "Barbell Squat\n\nEquipment: barbell\nLevel: beginner\nPrimary muscles: quadriceps\n\n"
            "Set the bar on your back. Squat down until your thighs are parallel. Drive up through your heels. "
            "Rack the bar when you are done. Breathe out at the top.", 0.82)
CURL = hit(2, "Dumbbell Curl", "Dumbbell Curl\n\nCurl the weights while keeping elbows still.", 0.41)


def test_a_how_to_question_gets_a_short_cited_paragraph_of_steps_without_field_lines():
    answer = compose_answer("How do I squat with a barbell?", [SQUAT, CURL])
    assert answer.text == ("Set the bar on your back. Squat down until your thighs are parallel. "
                           "Drive up through your heels. [1]")
    assert answer.cited == (1,)  # the curl is far below the squat: not cited


def test_a_question_about_a_field_is_answered_with_that_field():
    muscles = compose_answer("Which muscles does the barbell squat work?", [SQUAT])
    assert muscles.text == "Primary muscles: quadriceps [1]"
    assert "Level: beginner" in compose_answer("What level is the barbell squat?", [SQUAT]).text


def test_the_sentence_that_answers_comes_within_the_first_two(settings):
    settings.OFFLINE_ANSWER_SENTENCES = 2
    answer = compose_answer("When do I rack the bar?", [SQUAT])
    assert answer.text == "Set the bar on your back. Rack the bar when you are done. [1]"


def test_it_merges_the_chunks_of_one_document_in_reading_order():
    first = hit(1, "Barbell Squat", "Barbell Squat\nSet the bar on your back. Squat down until parallel.", 0.80, doc=1)
    second = hit(3, "Barbell Squat", "Barbell Squat\nSquat down until parallel. Drive up through your heels.", 0.82,
                 doc=1)
    answer = compose_answer("how to squat down and drive up", [second, first])
    assert answer.text.count("Squat down until parallel.") == 1
    assert answer.text.index("Squat down") < answer.text.index("Drive up")  # the two that answer, in reading order
    assert set(answer.cited) == {1, 2}


def test_it_says_it_does_not_know_when_nothing_is_close():
    assert compose_answer("capital of France?", [hit(1, "Plank", "Plank. Hold.", 0.12)]).text == NOT_FOUND
    assert compose_answer("anything", []).cited == ()
