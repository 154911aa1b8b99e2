"""The knowledge store on real SQLite files: schema, transactions, the FTS index in step, search that never raises."""

from __future__ import annotations

import sqlite3

import pytest

from ftstudio.errors import BadInput, NotFound
from ftstudio.knowledge.store import SCHEMA_VERSION, KnowledgeStore, NewChunk, NewDocument


def _doc(path: str, sha: str = "h1") -> NewDocument:
    return NewDocument(path, sha, "markdown", 10, 1.0, "estimate-v1", 512, 64, title=None)


def test_open_creates_migrated_wal_database(tmp_path):
    db_path = tmp_path / "knowledge.db"
    with KnowledgeStore.open(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.count_chunks() == 0 and store.documents() == [] and store.chunk_ids() == []
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # Opening again runs no migration twice.
    with KnowledgeStore.open(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION


def test_newer_schema_and_garbage_file_are_refused(tmp_path):
    newer = tmp_path / "newer.db"
    raw = sqlite3.connect(newer)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    raw.close()
    with pytest.raises(BadInput, match="newer"):
        KnowledgeStore.open(newer)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(BadInput, match="not a usable knowledge store"):
        KnowledgeStore.open(garbage)


def test_replace_keeps_index_in_step_and_ids_never_reused(tmp_path):
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        first = store.replace_document(
            _doc("/a.md"),
            [NewChunk("Fractions are parts of a whole.", 7, ("Ch 1", "Fractions")), NewChunk("Decimals.", 2, (), 3, 4)],
        )
        assert first.chunks == 2 and first.tokens == 9
        old_ids = store.chunk_ids()
        chunks = store.get_chunks(list(reversed(old_ids)))
        assert [c.ordinal for c in chunks] == [1, 0]
        assert chunks[1].location == "Ch 1 > Fractions" and chunks[1].heading_path == ("Ch 1", "Fractions")
        assert chunks[0].location == "pages 3-4" and chunks[0].document == "/a.md"

        store.replace_document(_doc("/a.md", "h2"), [NewChunk("Percentages only.", 3)])
        assert store.count_chunks() == 1
        assert not set(store.chunk_ids()) & set(old_ids)
        assert store.search("fractions") == []
        assert [h.chunk.text for h in store.search("PERCENTAGES")] == ["Percentages only."]
        assert store.integrity_check() == "ok"
        with pytest.raises(NotFound, match=str(old_ids[0])):
            store.get_chunks(old_ids[:1])


def test_failure_inside_the_transaction_leaves_the_old_version(tmp_path):
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        store.replace_document(_doc("/a.md"), [NewChunk("original text", 2)])

        def broken():
            yield NewChunk("half of the new version", 5)
            raise RuntimeError("loader died")

        with pytest.raises(RuntimeError):
            store.replace_document(_doc("/a.md", "h2"), broken())
        assert [c.text for c in store.get_chunks(store.chunk_ids())] == ["original text"]
        assert store.documents()[0].sha256 == "h1"
        assert store.search("half") == [] and store.integrity_check() == "ok"


def test_a_batch_commits_whole_documents_and_a_failing_one_alone_is_rolled_back(tmp_path):
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        store.replace_document(_doc("/a.md"), [NewChunk("old apples", 2)])
        with store.batch():
            store.replace_document(_doc("/b.md"), [NewChunk("first bananas", 2)])
            store.replace_document(_doc("/a.md", "h2"), [NewChunk("new apricots", 2), NewChunk("more apricots", 2)])
            store.replace_document(_doc("/b.md", "h3"), [NewChunk("second blueberries", 2)])  # written in this batch
            with pytest.raises(sqlite3.IntegrityError):  # an empty chunk breaks the CHECK after rows were written
                store.replace_document(_doc("/c.md"), [NewChunk("cherries", 1), NewChunk("", 0)])
            with sqlite3.connect(tmp_path / "k.db") as other:  # nothing is visible before the commit
                assert other.execute("SELECT count(*) FROM documents").fetchone()[0] == 1
        assert {d.path: (d.sha256, d.chunks) for d in store.documents()} == {"/a.md": ("h2", 2), "/b.md": ("h3", 1)}
        assert store.integrity_check() == "ok"
        assert store.search("apples") == [] and store.search("bananas") == [] and store.search("cherries") == []
        assert [h.chunk.text for h in store.search("blueberries")] == ["second blueberries"]
        assert len(store.search("apricots")) == 2


def test_an_error_escaping_a_batch_writes_nothing(tmp_path):
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        store.replace_document(_doc("/a.md"), [NewChunk("kept", 1)])
        with pytest.raises(RuntimeError), store.batch():
            store.replace_document(_doc("/b.md"), [NewChunk("lost", 1)])
            store.remove_document("/a.md")
            raise RuntimeError("crash")
        assert [d.path for d in store.documents()] == ["/a.md"]
        assert store.search("lost") == [] and store.search("kept") and store.integrity_check() == "ok"


def test_search_is_one_bm25_ranking_and_shows_its_score(tmp_path):
    texts = ["apple banana cherry", "apple banana", "apple", "cherry cherry cherry", "durian"] + ["filler"] * 5
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        store.replace_document(_doc("/f.md"), [NewChunk(t, 3) for t in texts])
        hits = store.search("Cherry, banana & apple?", k=5)
        assert hits[0].chunk.text == "apple banana cherry"
        assert {h.chunk.text for h in hits} == {"apple banana cherry", "apple banana", "apple", "cherry cherry cherry"}
        assert hits[0].snippet == "**apple** **banana** **cherry**"
        # The score shown is the sort key, and it is SQLite's own BM25 of the chunk (all words contributing).
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        bm25 = dict(
            store._db.execute(
                "SELECT rowid, -bm25(chunks_fts, 1.0, 3.0, 1.0) FROM chunks_fts WHERE chunks_fts MATCH "
                '\'"cherry" OR "banana" OR "apple"\''
            )
        )
        assert all(h.score == pytest.approx(bm25[h.chunk.id]) for h in hits)
        # A word no chunk holds never empties the results.
        assert {h.chunk.text for h in store.search("banana xyzzy")} == {"apple banana cherry", "apple banana"}
        assert store.search("xyzzy") == [] and store.search("durian")[0].chunk.text == "durian"


def test_search_matches_word_forms_and_other_languages(tmp_path):
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        store.replace_document(
            _doc("/f.md"),
            [
                NewChunk("People were talking about the packages.", 8),
                NewChunk("Die Häuser stehen am Fluss.", 7),
                NewChunk("Машины едут быстро по дороге.", 9),
                NewChunk("数学 は 楽しい", 4),
            ]
            + [NewChunk(f"filler text {i}", 3) for i in range(6)],
        )
        assert store.search("talk")[0].chunk.text.startswith("People were talking")
        assert store.search("package")[0].chunk.text.startswith("People")
        assert store.search("hauser")[0].chunk.text.startswith("Die Häuser")
        assert store.search("Häuser Fluss")[0].chunk.text.startswith("Die Häuser")
        assert store.search("машины")[0].chunk.text.startswith("Машины")
        assert store.search("数学")[0].chunk.text.startswith("数学")


def test_heading_and_title_weigh_more_than_text(tmp_path):
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        store.replace_document(_doc("/a.md"), [NewChunk("It mentions the archive once in passing.", 8)])
        store.replace_document(
            _doc("/b.md"), [NewChunk("Sections are described here.", 5, heading_path=("The archive", "Sections"))]
        )
        doc = NewDocument("/c.md", "h", "markdown", 10, 1.0, "estimate-v1", 512, 64, title="Mirrors")
        filler = [NewChunk(f"filler {i}", 2) for i in range(5)]
        store.replace_document(doc, [NewChunk("How to set one up.", 5), *filler])
        assert store.search("archive")[0].chunk.document == "/b.md"
        assert store.search("mirrors")[0].chunk.document == "/c.md"


def test_search_is_bounded_for_long_queries_and_k_is_checked(tmp_path):
    import random
    import time

    from ftstudio.knowledge.store import MAX_K, MAX_QUERY_TERMS

    rng = random.Random(7)
    vocabulary = [f"w{i}x" for i in range(3000)]
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        with store.batch():
            for d in range(20):
                chunks = [NewChunk(" ".join(rng.choices(vocabulary, k=60)), 60) for _ in range(100)]
                store.replace_document(_doc(f"/{d}.md"), chunks)
        query = " ".join(rng.sample(vocabulary, 2000))
        words, _, _ = store._query_words(query)
        assert 0 < len(words) <= MAX_QUERY_TERMS
        started = time.perf_counter()
        hits = store.search(query, k=10)
        long_seconds = time.perf_counter() - started
        assert len(hits) == 10 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        # Generous: a 2,000-word query took 20 s on 18k chunks before it was bounded.
        assert long_seconds < 5
        for k in (0, -1, MAX_K + 1, 99999999999999999999, True, 2.5):
            with pytest.raises(BadInput, match="k must be"):
                store.search("w1x", k)
        assert len(store.search("w1x", MAX_K)) <= MAX_K


def test_remove_document_by_path_or_id(tmp_path):
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        a = store.replace_document(_doc("/a.md"), [NewChunk("alpha", 1)])
        store.replace_document(_doc("/b.md"), [NewChunk("beta", 1), NewChunk("gamma", 1)])
        assert [(d.path, d.chunks) for d in store.documents()] == [("/a.md", 1), ("/b.md", 2)]
        assert store.remove_document(a.id).path == "/a.md"
        assert store.remove_document("/b.md").chunks == 2
        assert store.count_chunks() == 0 and store.search("beta") == []
        with pytest.raises(NotFound, match="ftstudio docs"):
            store.remove_document("/b.md")
        assert store.integrity_check() == "ok"


@pytest.mark.parametrize(
    "query",
    ['"', 'say "hi', "a AND", "AND", "OR OR", "NOT x", "(", ")", "x*", "*", "-x", "a:b", "text:", "NEAR(a b)",
     "NEAR(", "^start", "{a b}", "+", "'; DROP TABLE chunks; --", "", "   ", "\x00", "ünïcödé 数学"],
)  # fmt: skip
def test_any_text_is_a_valid_query(tmp_path, query):
    with KnowledgeStore.open(tmp_path / "k.db") as store:
        store.replace_document(_doc("/a.md"), [NewChunk("say hi to the text and a NEAR start 数学", 8)])
        hits = store.search(query)
        assert isinstance(hits, list)
        assert store.count_chunks() == 1


def test_a_version_1_store_migrates_with_its_data(tmp_path):
    from ftstudio.knowledge.store import MIGRATIONS

    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](raw)  # the schema as the first release wrote it: triggers kept the index
    raw.execute("PRAGMA user_version = 1")
    raw.execute(
        "INSERT INTO documents (path, sha256, type, size, mtime, ingested_at, token_counter, chunk_tokens, overlap)"
        " VALUES ('/old.md', 'h', 'markdown', 1, 1, 'then', 'estimate', 512, 64)"
    )
    raw.execute("INSERT INTO chunks (document_id, ordinal, text, tokens) VALUES (1, 0, 'ancient fractions', 2)")
    raw.close()
    with KnowledgeStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        config = dict(store._db.execute("SELECT k, v FROM chunks_fts_config"))
        assert config["hashsize"] == 32 * 1024 * 1024 and config["rank"] == "bm25(1.0, 3.0, 1.0)"
        assert [h.chunk.text for h in store.search("fractions")] == ["ancient fractions"]
        store.replace_document(_doc("/old.md", "h2"), [NewChunk("modern decimals", 2)])
        assert store.search("ancient") == [] and store.search("decimals")[0].chunk.document == "/old.md"
        assert store.integrity_check() == "ok"


def test_search_prefers_the_query_language_without_hiding_others(tmp_path):
    with KnowledgeStore.open(tmp_path / "k.db") as store:

        def add(path, language, text):
            doc = NewDocument(path, path, "text", 1, 0.0, "estimate", 512, 64, title=path, language=language)
            store.replace_document(doc, [NewChunk(text, 10)])

        # The Japanese chunk is shorter in tokens (a run of kana is one token), so plain BM25 ranks it first.
        add("ja.txt", "ja", "lb config は設定を作ります")
        add("en.txt", "en", "lb config creates the configuration tree that lb build reads, with the options given")
        plain = [h.chunk.document for h in store.search("lb config", k=2)]
        english = [h.chunk.document for h in store.search("what does lb config do", k=2)]
        assert plain == ["ja.txt", "en.txt"]
        assert english == ["en.txt", "ja.txt"]  # preferred, the other still found
        assert [d.language for d in store.documents()] == ["en", "ja"]
