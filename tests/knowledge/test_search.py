import pytest

from knowledge.embeddings import embed_query
from knowledge.models import Source
from knowledge.parsers import DocumentDraft
from knowledge.selectors import SearchFilters, search
from knowledge.services import documents_sync, lexeme_stats_refresh

pytestmark = pytest.mark.django_db

SHIPPING = DocumentDraft("shipping-kenya", "Shipping to Kenya", "Orders to Kenya ship within two days with the "
                         "carrier Trelidon. Returns are free within thirty days.")


def find(query, k=5, **options):
    vector = None if options.get("mode") == "lexical" else embed_query(query)
    return search(query=query, vector=vector, k=k, **options)


def titles(hits):
    return [h.title for h in hits]


@pytest.fixture
def catalogue(kb):
    """The exercise knowledge base, a shop page (tagged) and a German gear page (another language)."""
    shop = Source.objects.create(name="shop")
    documents_sync(source=shop, drafts=[SHIPPING])
    gear = Source.objects.create(name="gear", language="de")
    documents_sync(source=gear, drafts=[
        DocumentDraft("mat", "Gymnastikmatte", "Die Matte ist rutschfest und zehn Millimeter dick.", tags=("mats",)),
    ])
    lexeme_stats_refresh()
    return kb, shop, gear


def test_an_exact_rare_term_is_found_by_hybrid_search_where_dense_search_misses_it(catalogue):
    question = "Trelidon workout plan"  # the exercises are closer in meaning; only the rare name is the shop's
    assert "Shipping to Kenya" not in titles(find(question, mode="dense", k=5))
    assert titles(find(question, mode="lexical"))[0] == "Shipping to Kenya"
    assert titles(find(question))[0] == "Shipping to Kenya"


def test_a_paraphrase_is_found_by_hybrid_search_where_full_text_misses_it(catalogue):
    question = "a move for my six-pack"  # no word in common with the Crunches page
    assert "Crunches" not in titles(find(question, mode="lexical"))
    assert titles(find(question, mode="dense"))[0] == "Crunches"
    assert "Crunches" in titles(find(question, k=3))


def test_every_hit_carries_its_text_title_url_and_three_scores(catalogue):
    hit = find("how do I do a plank")[0]
    assert hit.title == "Plank" and "Plank" in hit.text and hit.url == f"/kb/documents/{hit.document_id}/"
    assert 0 < hit.dense_score <= 1 and hit.lexical_score > 0 and 0 < hit.score <= 1


def test_filters_by_source_tag_and_language(catalogue):
    exercises, shop, gear = catalogue
    assert {h.source_id for h in find("returns", filters=SearchFilters(source_ids=(shop.pk,)))} == {shop.pk}
    assert titles(find("Matte", filters=SearchFilters(tags=("mats",)))) == ["Gymnastikmatte"]
    assert titles(find("squat", filters=SearchFilters(tags=("kettlebells",)))) == ["Goblet Squat"]
    assert titles(find("Matte", filters=SearchFilters(language="de"), k=1)) == ["Gymnastikmatte"]
    assert find("squat", filters=SearchFilters(tags=("no-such-tag",))) == []


def test_a_minimum_score_drops_the_weak_hits(catalogue):
    everything = find("how do I do a plank", k=10, min_score=0)
    strong = find("how do I do a plank", k=10, min_score=0.6)
    assert len(strong) < len(everything) and strong[0].title == "Plank"
    assert all(h.score >= 0.6 for h in strong)


def test_diverse_results_spread_over_documents(catalogue):
    plain = find("squat", k=4)
    diverse = find("squat", k=4, diverse=True)
    assert plain[0].chunk_id == diverse[0].chunk_id  # the best hit stays first
    assert len(diverse) == 4


def test_websearch_operators_keep_their_meaning(catalogue):
    hits = find('squat -goblet', mode="lexical")
    assert hits and "Goblet Squat" not in titles(hits)
    assert titles(find('"thirty days"', mode="lexical")) == ["Shipping to Kenya"]


def test_the_search_api_returns_ranked_hits_with_scores(catalogue, client):
    response = client.get("/api/v1/knowledge/search", {"q": "plank core hold", "k": 2})
    assert response.status_code == 200
    body = response.json()
    assert body[0]["title"] == "Plank" and len(body) == 2
    assert {"dense_score", "lexical_score", "score", "heading", "chunk_id"} <= set(body[0])
    tagged = client.get("/api/v1/knowledge/search", {"q": "squat", "tag": "kettlebells"}).json()
    assert [h["title"] for h in tagged] == ["Goblet Squat"]


def test_the_search_api_rejects_bad_parameters_with_json(client, db):
    missing = client.get("/api/v1/knowledge/search")
    assert missing.status_code == 400 and missing.json()["details"]["q"]
    assert client.get("/api/v1/knowledge/search", {"q": "x", "k": 500}).status_code == 400
    assert client.get("/api/v1/knowledge/search", {"q": "x", "mode": "magic"}).status_code == 400


def test_the_admin_retrieval_test_page_shows_ranked_chunks_with_all_three_scores(catalogue, admin_client):
    page = admin_client.get("/admin/knowledge/source/retrieval-test/", {"q": "how do I do a plank", "k": 3})
    html = page.content.decode()
    assert page.status_code == 200 and "Plank" in html
    assert html.count('class="num fused"') == 3 and html.count('class="num dense"') == 3
    assert html.count('class="num lexical"') == 3
    assert "Retrieval test" in admin_client.get("/admin/knowledge/source/").content.decode()


@pytest.fixture
def two_languages(kb):
    """The same page in English and in German, and a page only in English."""
    english, german = Source.objects.create(name="returns-en"), Source.objects.create(name="returns-de", language="de")
    documents_sync(source=english, drafts=[
        DocumentDraft("returns-en", "Returns", "Returns are free within thirty days of delivery at Trelidon."),
        DocumentDraft("warranty-en", "Warranty", "Every Trelidon mat has a two-year warranty against tears."),
    ])
    documents_sync(source=german, drafts=[
        DocumentDraft("returns-de", "Rücksendungen", "Rücksendungen bei Trelidon sind innerhalb von dreißig Tagen "
                                                     "nach der Lieferung kostenlos."),
    ])
    lexeme_stats_refresh()


def test_chunks_in_the_visitors_language_come_first_and_the_others_are_the_fallback(two_languages):
    question = "returns Trelidon dreißig Tagen"  # a German visitor's question, one English word in it
    assert titles(find(question, k=2)) == ["Returns", "Rücksendungen"]  # no preference: English a little ahead
    assert titles(find(question, k=2, prefer_language="de"))[0] == "Rücksendungen"
    assert titles(find(question, k=2, prefer_language="en"))[0] == "Returns"
    # Nothing in German about warranties: the English page answers a German visitor all the same.
    assert titles(find("Trelidon mat warranty tears", k=1, prefer_language="de")) == ["Warranty"]
