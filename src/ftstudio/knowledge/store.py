"""The knowledge store: `knowledge.db`, one SQLite file per project holding documents, chunks and an FTS5 index.

Schema changes are ordered migration functions; `PRAGMA user_version` records how many have run. The full-text
index is an external-content FTS5 table over `chunks`; every write to `chunks` writes the index too, inside the
same transaction (explicitly: triggers made ingest twice as slow). A document and all its chunks are written
together or not at all (one transaction, or one savepoint of a `batch()`): a crash or a bad file never leaves half
a document behind.

Other stages rely on `Chunk`, `SearchHit` and `KnowledgeStore` (open, chunk_ids, get_chunks, count_chunks, search,
documents, remove_document): change them only together with their users.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ftstudio.errors import BadInput, NotFound
from ftstudio.knowledge.language import detect, function_words

# Heading titles are joined with a newline in the `heading` column: a title never holds one (loaders collapse
# whitespace), and the FTS tokenizer treats it as a separator, so the column is both structural and searchable.
HEADING_SEP = "\n"


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, small enough for a prompt, with where it came from."""

    id: int
    document_id: int
    document: str  # the document's path as stored
    ordinal: int  # 0-based position within its document
    text: str
    tokens: int
    location: str  # human-readable: "Ch 1 > Fractions", "pages 3-4", or both; "(OCR)" when read by OCR
    heading_path: tuple[str, ...] = ()
    page_start: int | None = None
    page_end: int | None = None
    ocr: bool = False


@dataclass(frozen=True)
class SearchHit:
    """A chunk matching a query; a higher score is a better match (negated BM25), and hits come sorted by it."""

    chunk: Chunk
    score: float
    snippet: str  # the matching passage, matched terms wrapped in ** **


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document and what was made of it."""

    id: int
    path: str
    sha256: str
    type: str
    size: int
    mtime: float
    ingested_at: str
    token_counter: str
    chunk_tokens: int
    overlap: int
    title: str | None
    encoding: str | None  # the text encoding it was decoded from (text formats only)
    chunks: int
    tokens: int
    meta: dict | None = None  # front matter and the like
    language: str | None = None  # ISO 639-1, declared by the document or detected; None when unknown

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class NewChunk:
    """A chunk about to be written (what the chunker produces)."""

    text: str
    tokens: int
    heading_path: tuple[str, ...] = ()
    page_start: int | None = None
    page_end: int | None = None
    ocr: bool = False  # read from an image of the page by OCR


@dataclass(frozen=True)
class NewDocument:
    """A document's metadata about to be written."""

    path: str
    sha256: str
    type: str
    size: int
    mtime: float
    token_counter: str
    chunk_tokens: int
    overlap: int
    title: str | None = None
    encoding: str | None = None
    meta: dict | None = None  # front matter and the like, stored as JSON
    language: str | None = None


def format_location(
    heading_path: Sequence[str], page_start: int | None, page_end: int | None, ocr: bool = False
) -> str:
    """`Ch 1 > Fractions`, `page 3`, `pages 3-4`, or both joined by a comma; `(OCR)` after text read by OCR."""
    parts = []
    if heading_path:
        parts.append(" > ".join(heading_path))
    if page_start is not None:
        end = page_end if page_end is not None else page_start
        parts.append(f"page {page_start}" if end == page_start else f"pages {page_start}-{end}")
    where = ", ".join(parts)
    return f"{where} (OCR)".lstrip() if ocr else where


# BM25 weights of the index's columns (text, heading path, document title): a word in a heading or the title says
# more about what a chunk is about than one in its text. Tuned on the known-answer questions (tests/knowledge).
_WEIGHTS = "1.0, 3.0, 1.0"
# At most this many distinct query words are used, the rarest ones: a query's cost is bounded whatever its length.
MAX_QUERY_TERMS = 32
# Of a longer query, only this many distinct words (the longest: long words are the rare ones) are looked up in the
# index to find the rarest; each lookup walks the word's posting list.
_MAX_LOOKUPS = 64
# Scoring is the cost of a search (about 3-8 µs a matching chunk): the words used hold at most this many chunks
# between them (the rarest always counts), and when even the rarest alone is in more chunks, the first this many
# of them are ranked. Measured: p95 under 20 ms on a loaded 2-core machine.
MAX_SCORED = 2500
# The most results one search may ask for.
MAX_K = 1000
# A chunk of a document in another language than the query's scores this share of its BM25: an English query
# prefers English documents (translations of a manual otherwise win by their shorter token counts: unicode61 makes
# one token of a whole run of Japanese), and the other languages still come when nothing in the query's matches.
OTHER_LANGUAGE = 0.25

# --- schema -------------------------------------------------------------------------------------------------------


def _v1(db: sqlite3.Connection) -> None:
    # AUTOINCREMENT: ids are never reused, so a chunk id recorded elsewhere (training data's meta) never comes to
    # name a different chunk after its document is re-ingested.
    db.execute(
        """CREATE TABLE documents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            path TEXT NOT NULL UNIQUE,
            sha256 TEXT NOT NULL,
            type TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            ingested_at TEXT NOT NULL,
            token_counter TEXT NOT NULL,
            chunk_tokens INTEGER NOT NULL,
            overlap INTEGER NOT NULL,
            title TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            text TEXT NOT NULL CHECK (length(text) > 0),
            tokens INTEGER NOT NULL,
            heading TEXT NOT NULL DEFAULT '',
            page_start INTEGER,
            page_end INTEGER,
            UNIQUE (document_id, ordinal)
        )"""
    )
    # Porter stemming so "fractions" finds "fraction"; diacritics folded so "cafe" finds "café".
    db.execute(
        """CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, heading, content='chunks', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2'
        )"""
    )
    db.execute(
        """CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
        END"""
    )
    db.execute(
        """CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) VALUES ('delete', old.id, old.text, old.heading);
        END"""
    )
    db.execute(
        """CREATE TRIGGER chunks_au AFTER UPDATE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) VALUES ('delete', old.id, old.text, old.heading);
            INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
        END"""
    )


def _v2(db: sqlite3.Connection) -> None:
    # Triggers doubled the cost of every insert (measured: 2x on a 10 MB corpus); the index is now written
    # explicitly by `replace_document` and `_delete`, inside the same transaction as the chunks.
    for trigger in ("chunks_ai", "chunks_ad", "chunks_au"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    # No Porter stemming: search must know how often each query word occurs (see `_query_words`), and only
    # an unstemmed index lets it look a word up in the vocabulary as typed. Diacritics are still folded.
    db.execute("DROP TABLE chunks_fts")
    db.execute(
        """CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, heading, content='chunks', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
        )"""
    )
    db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
    # Searches rank by this: a word in the text counts fully, one in the heading path half as much.
    db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25(1.0, 0.5)')")
    db.execute("CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row')")


def _v3(db: sqlite3.Connection) -> None:
    # FTS5 keeps new index entries in an in-memory hash and writes a segment whenever it outgrows `hashsize`
    # (default 1 MiB), so a batch of several MB made many small segments to merge. 32 MiB (an upper bound: the
    # hash only grows to what a batch adds) took a 50 MB ingest from 4.4 to 3.2 CPU seconds, peak RSS +3 MB.
    db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('hashsize', 33554432)")


def _v4(db: sqlite3.Connection) -> None:
    # Per document: the encoding its text was decoded from, and metadata such as front matter (JSON).
    db.execute("ALTER TABLE documents ADD COLUMN encoding TEXT")
    db.execute("ALTER TABLE documents ADD COLUMN meta TEXT")
    db.execute("ALTER TABLE chunks ADD COLUMN ocr INTEGER NOT NULL DEFAULT 0")
    # One BM25 ranking over three columns: the text, the heading path and the document's title (through a view, so
    # the title is stored once per document). Porter stemming again, so "talk" finds "talking": word counts for
    # choosing the query's rarest words are taken by MATCH, which stems the query word as it stems the text. The
    # stemmer only changes English suffixes of ASCII words; other languages' words are indexed as they are.
    db.execute("DROP TABLE IF EXISTS chunks_vocab")
    db.execute("DROP TABLE chunks_fts")
    db.execute(
        """CREATE VIEW chunks_search (id, text, heading, title) AS
            SELECT c.id, c.text, c.heading, coalesce(d.title, '')
            FROM chunks c JOIN documents d ON d.id = c.document_id"""
    )
    db.execute(
        """CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, heading, title, content='chunks_search', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2'
        )"""
    )
    db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('hashsize', 33554432)")  # as in _v3
    db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
    db.execute(f"INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25({_WEIGHTS})')")
    db.execute("CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row')")


def _v5(db: sqlite3.Connection) -> None:
    # Each document's language, so search can prefer the query's own. Documents stored before are given the one
    # their first chunks are written in (what ingest detects for a document that declares none).
    db.execute("ALTER TABLE documents ADD COLUMN language TEXT")
    for (doc_id,) in db.execute("SELECT id FROM documents").fetchall():
        rows = db.execute("SELECT text FROM chunks WHERE document_id = ? ORDER BY ordinal LIMIT 20", (doc_id,))
        language = detect("\n".join(r[0] for r in rows))
        db.execute("UPDATE documents SET language = ? WHERE id = ?", (language, doc_id))


# Ordered: migration i brings the schema from version i to i + 1. Append, never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3, _v4, _v5)
SCHEMA_VERSION = len(MIGRATIONS)

_CHUNK_COLUMNS = "c.id, c.document_id, d.path, c.ordinal, c.text, c.tokens, c.heading, c.page_start, c.page_end, c.ocr"
_DOC_COLUMNS = (
    "d.id, d.path, d.sha256, d.type, d.size, d.mtime, d.ingested_at, d.token_counter, d.chunk_tokens, d.overlap, "
    "d.title, d.encoding, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id), "
    "(SELECT coalesce(sum(tokens), 0) FROM chunks c WHERE c.document_id = d.id), d.meta, d.language"
)
_WORD_RE = re.compile(r"[^\W_]+")  # letters and digits: what unicode61 makes tokens of


def _document_from_row(row: tuple) -> DocumentInfo:
    *fields, meta, language = row
    return DocumentInfo(*fields, meta=json.loads(meta) if meta else None, language=language)


def _chunk_from_row(row: tuple) -> Chunk:
    cid, doc_id, path, ordinal, text, tokens, heading, page_start, page_end, ocr = row
    heading_path = tuple(heading.split(HEADING_SEP)) if heading else ()
    return Chunk(
        id=cid,
        document_id=doc_id,
        document=path,
        ordinal=ordinal,
        text=text,
        tokens=tokens,
        location=format_location(heading_path, page_start, page_end, bool(ocr)),
        heading_path=heading_path,
        page_start=page_start,
        page_end=page_end,
        ocr=bool(ocr),
    )


def _fold(word: str) -> str:
    """A word as the index holds it: lower case, diacritics removed (as unicode61 remove_diacritics does).

    Only letters and digits survive, so the quoted word is always a literal: FTS5 syntax (`AND`, `NEAR`, `*`,
    `(`, `-`, `:`, quotes) in a query is just text.
    """
    if not word.isascii():
        word = "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))
    return word.lower()


class KnowledgeStore:
    """A project's `knowledge.db`. Open with `KnowledgeStore.open(path)`; use as a context manager or `close()`."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self._db = db
        self.path = path
        self._count_key: tuple[int, int] | None = None
        self._count = 0
        self._holding: dict[str, int] = {}
        # Inside `batch()`: the largest chunk id before the batch began. Chunks above it are not indexed yet.
        self._indexed_up_to: int | None = None

    @classmethod
    def open(cls, path: Path | str) -> KnowledgeStore:
        """Open (creating and migrating as needed) the store at `path`.

        Raises BadInput if the file is not a SQLite database or was written by a newer ftstudio.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT/SAVEPOINT ourselves (see `batch` and `_transaction`).
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            # NORMAL is durable across application crashes in WAL mode; only a power loss may drop the last commits.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA cache_size=-32768")  # 32 MiB (default 2 MiB): a batch's index pages stay in memory
            cls._migrate(db, path)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise BadInput(
                f"{path}: not a usable knowledge store ({exc})",
                hint="move the file away; ftstudio creates a new one on the next ingest",
            ) from exc
        except BaseException:
            db.close()
            raise
        return cls(db, path)

    @staticmethod
    def _migrate(db: sqlite3.Connection, path: Path) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BadInput(
                f"{path}: schema version {version} is newer than this ftstudio knows ({SCHEMA_VERSION})",
                hint="upgrade ftstudio to open this project",
            )
        for target, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            db.execute("BEGIN IMMEDIATE")
            try:
                migration(db)
                db.execute(f"PRAGMA user_version = {target}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> KnowledgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes made inside into one transaction, committed when the block ends.

        Each document written inside is still all or nothing (a SAVEPOINT of the batch): a failing one is rolled
        back alone and the others stay; a crash before the commit loses the batch's documents, whole. The new
        chunks enter the full-text index together, just before the commit, so the index is in step at every
        commit. One commit per batch rather than per document is what makes ingest fast: FTS5 writes an index
        segment (and merges segments) at each commit and at each savepoint that touched it.
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._indexed_up_to = self._last_chunk_id()
            yield
            if not self._db.in_transaction:  # SQLite rolled it back itself (disk full, I/O error)
                raise sqlite3.OperationalError("the batch's transaction was rolled back by SQLite; nothing was written")
            self._db.execute(
                "INSERT INTO chunks_fts (rowid, text, heading, title) "
                "SELECT id, text, heading, title FROM chunks_search WHERE id > ?",
                (self._indexed_up_to,),
            )
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        finally:
            self._indexed_up_to = None
        self._db.execute("COMMIT")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._indexed_up_to is not None:  # inside `batch()`: this write is a savepoint of the batch
            self._db.execute("SAVEPOINT document")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # else SQLite already rolled back the batch; `batch()` reports it
                    self._db.execute("ROLLBACK TO document")
                    self._db.execute("RELEASE document")
                raise
            self._db.execute("RELEASE document")
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _last_chunk_id(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
        return row[0] if row else 0

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    # --- reading --------------------------------------------------------------------------------------------------

    def chunk_ids(self) -> list[int]:
        """Every chunk id, in (document, ordinal) order."""
        rows = self._db.execute("SELECT id FROM chunks ORDER BY document_id, ordinal")
        return [r[0] for r in rows]

    def get_chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the order asked; NotFound naming any id that does not exist."""
        found: dict[int, Chunk] = {}
        unique = list(dict.fromkeys(int(i) for i in ids))
        for start in range(0, len(unique), 500):  # stay under SQLite's bound-parameter limit
            batch = unique[start : start + 500]
            marks = ",".join("?" * len(batch))
            sql = (
                f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document_id "
                f"WHERE c.id IN ({marks})"
            )
            for row in self._db.execute(sql, batch):
                found[row[0]] = _chunk_from_row(row)
        missing = [i for i in unique if i not in found]
        if missing:
            raise NotFound(
                f"{self.path}: no chunk with id {', '.join(map(str, missing[:10]))}",
                hint="the document may have been removed or re-ingested; list chunk ids again",
            )
        return [found[int(i)] for i in ids]

    def document_chunks(self, path_or_id: str | Path | int) -> list[Chunk]:
        """All chunks of one document, in order."""
        doc = self._find_document(path_or_id)
        sql = (
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.document_id = ? ORDER BY c.ordinal"
        )
        return [_chunk_from_row(r) for r in self._db.execute(sql, (doc.id,))]

    def count_chunks(self) -> int:
        return self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def _cached_count(self) -> int:
        # Counting walks an index; searches ask on every query, so remember it (and how many chunks hold each
        # query word, `_chunks_holding`) until this connection or another one writes (total_changes and
        # data_version tell).
        key = (self._db.total_changes, self._db.execute("PRAGMA data_version").fetchone()[0])
        if key != self._count_key:
            self._count, self._count_key = self.count_chunks(), key
            self._holding.clear()
        return self._count

    def _chunks_holding(self, word: str) -> int:
        """How many chunks hold `word` (folded: letters and digits only), remembered until the store changes."""
        if word not in self._holding:
            if len(self._holding) > 10_000:
                self._holding.clear()
            # Counting matches walks the word's posting list only; fts5vocab's count would also read positions.
            self._holding[word] = self._db.execute(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{word}"',)
            ).fetchone()[0]
        return self._holding[word]

    def documents(self) -> list[DocumentInfo]:
        """Every stored document with its chunk and token counts, by path."""
        rows = self._db.execute(f"SELECT {_DOC_COLUMNS} FROM documents d ORDER BY d.path")
        return [_document_from_row(r) for r in rows]

    def document(self, path: str | Path) -> DocumentInfo | None:
        """The stored document at exactly this path (as stored), or None."""
        row = self._db.execute(f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.path = ?", (str(path),)).fetchone()
        return _document_from_row(row) if row else None

    def _find_document(self, path_or_id: str | Path | int) -> DocumentInfo:
        if isinstance(path_or_id, int) or (isinstance(path_or_id, str) and path_or_id.isdigit()):
            row = self._db.execute(f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.id = ?", (int(path_or_id),))
            found = row.fetchone()
            if found:
                return _document_from_row(found)
        if not isinstance(path_or_id, int):
            for candidate in (str(path_or_id), str(Path(path_or_id).expanduser().resolve())):
                doc = self.document(candidate)
                if doc:
                    return doc
        raise NotFound(
            f"{self.path}: no document {str(path_or_id)!r}",
            hint="`ftstudio docs NAME` lists the stored documents with their paths and ids",
        )

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """The `k` chunks best matching `query`, best first, by one BM25 ranking; each hit's score is that ranking's.

        Any text is a valid query. Its words are matched with English stemming ("talk" finds "talking") and folded
        diacritics; every word used counts, a word in a chunk's heading path three times as much as one in its text,
        one in the document's title as much. Words no chunk holds are left out (they never empty the results). The
        cost is bounded however long the query or large the store: the rarest words are used, at most
        MAX_QUERY_TERMS of them and as many as hold at most MAX_SCORED chunks between them (common words carry
        little BM25 weight: words held by more than half the chunks are always left out when rarer ones remain).
        When even the rarest word is in more than MAX_SCORED chunks, the first MAX_SCORED of those are ranked.
        A query of nothing but such common words (no ranking signal) gives the first `k` chunks holding all of them
        (else any), sorted by their score. Raises BadInput for `k` outside 1..MAX_K.
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise BadInput(f"k must be a whole number from 1 to {MAX_K}, got {k!r}", hint="ask for fewer results")
        language = detect(query)
        words, common, bounded = self._query_words(query, function_words(language))
        if not words:
            return []
        if common:
            # Words in most chunks carry no BM25 weight (FTS5 clamps it to 1e-6): there is no ranking to find, so
            # the first k chunks holding all of them (else any) are scored and sorted, not every chunk.
            scored = self._top(" AND ".join(words), k, k, language) or self._top(" OR ".join(words), k, k, language)
        else:
            scored = self._top(" OR ".join(words), k, MAX_SCORED if bounded else None, language)
        # Snippets for the k chunks returned only, highlighting any query word.
        highlight = " OR ".join(words)
        snippets = {
            rowid: self._db.execute(
                "SELECT snippet(chunks_fts, 0, '**', '**', '…', 24) FROM chunks_fts "
                "WHERE chunks_fts MATCH ? AND rowid = ?",
                (highlight, rowid),
            ).fetchone()[0]
            for rowid, _ in scored
        }
        chunks = {c.id: c for c in self.get_chunks([rowid for rowid, _ in scored])}
        return [SearchHit(chunk=chunks[i], score=float(score), snippet=snippets[i]) for i, score in scored]

    def _top(self, match: str, k: int, scored: int | None, language: str | None = None) -> list[tuple[int, float]]:
        """The k best (rowid, score) of `match`, ranking every match, or only the first `scored` ones; chunks of
        documents in another language than `language` (when known) score OTHER_LANGUAGE times their BM25."""
        # bm25() in ORDER BY rather than the table's configured `rank`: the same ranking, measured 30 % faster.
        # The snippet is not asked for here: SQLite would make one for every match before sorting.
        rows = f"SELECT rowid, -bm25(chunks_fts, {_WEIGHTS}) AS score FROM chunks_fts WHERE chunks_fts MATCH ?"
        if scored is not None:  # the inner LIMIT applies before any scoring
            rows = f"{rows} LIMIT {int(scored)}"
        if language is None:
            sql, args = f"SELECT * FROM ({rows})", (match, k)
        else:
            sql = (
                f"SELECT r.rowid, r.score * CASE WHEN d.language IS NULL OR d.language = ? THEN 1.0 "
                f"ELSE {OTHER_LANGUAGE} END AS score FROM ({rows}) r "
                "JOIN chunks c ON c.id = r.rowid JOIN documents d ON d.id = c.document_id"
            )
            args = (language, match, k)
        return self._db.execute(f"{sql} ORDER BY score DESC, rowid LIMIT ?", args).fetchall()

    def _query_words(self, query: str, function: frozenset[str] = frozenset()) -> tuple[list[str], bool, bool]:
        """The query's words to search for, quoted for FTS5, rarest first; whether they are all common ones (held
        by more than half the chunks); and whether they may match more than MAX_SCORED chunks (see `search`).

        Of a longer query, the _MAX_LOOKUPS longest distinct words are the candidates: looking every word up would
        make the cost grow with the query's length.
        """
        words = [w for w in dict.fromkeys(_fold(w) for w in _WORD_RE.findall(query)) if w]
        # The query language's function words ("how", "to", "what") say what is asked, not about what: scored, they
        # favoured any heading phrased as a question (an FAQ's "How do I install a source package?", its weight
        # tripled as a heading) and used up the scoring budget before the words that matter ("configure").
        if any(w not in function for w in words):
            words = [w for w in words if w not in function]
        if len(words) > _MAX_LOOKUPS:
            words = sorted(words, key=len, reverse=True)[:_MAX_LOOKUPS]
        half = self._cached_count() / 2  # first: it also forgets the word counts if the store has changed
        counts = {w: n for w in words if (n := self._chunks_holding(w))}
        ranked = sorted(counts, key=lambda w: (counts[w], w))
        rare = [w for w in ranked if counts[w] <= half]
        common = not rare
        used, holding = [], 0
        for w in ranked if common else rare:
            if used and (len(used) == MAX_QUERY_TERMS or holding + counts[w] > MAX_SCORED):
                break
            used.append(w)
            holding += counts[w]
        return [f'"{w}"' for w in used], common, holding > MAX_SCORED

    # --- writing --------------------------------------------------------------------------------------------------

    def replace_document(self, doc: NewDocument, chunks: Iterable[NewChunk]) -> DocumentInfo:
        """Write `doc` and its chunks in one transaction (a savepoint inside `batch()`), replacing any document
        stored at the same path.

        If `chunks` raises part-way, nothing changes: the old version (if any) stays as it was.
        """
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        rows = [
            (c.text, c.tokens, HEADING_SEP.join(c.heading_path), c.page_start, c.page_end, int(c.ocr)) for c in chunks
        ]
        meta = json.dumps(doc.meta, ensure_ascii=False, default=str) if doc.meta else None
        with self._transaction() as db:
            old = db.execute("SELECT id FROM documents WHERE path = ?", (doc.path,)).fetchone()
            if old:
                self._delete(db, old[0])
            cur = db.execute(
                "INSERT INTO documents (path, sha256, type, size, mtime, ingested_at, token_counter, chunk_tokens,"
                " overlap, title, encoding, meta, language) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (doc.path, doc.sha256, doc.type, doc.size, doc.mtime, now, doc.token_counter, doc.chunk_tokens,
                 doc.overlap, doc.title, doc.encoding, meta, doc.language),
            )  # fmt: skip
            doc_id = cur.lastrowid
            db.executemany(
                "INSERT INTO chunks (document_id, ordinal, text, tokens, heading, page_start, page_end, ocr)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((doc_id, i, *r) for i, r in enumerate(rows)),
            )
            if self._indexed_up_to is None:  # else `batch()` indexes all its new chunks at its end
                db.execute(
                    "INSERT INTO chunks_fts (rowid, text, heading, title) "
                    "SELECT id, text, heading, title FROM chunks_search WHERE id IN "
                    "(SELECT id FROM chunks WHERE document_id = ?)",
                    (doc_id,),
                )
        return DocumentInfo(
            doc_id, doc.path, doc.sha256, doc.type, doc.size, doc.mtime, now, doc.token_counter, doc.chunk_tokens,
            doc.overlap, doc.title, doc.encoding, len(rows), sum(r[1] for r in rows), doc.meta or None, doc.language,
        )  # fmt: skip

    def _delete(self, db: sqlite3.Connection, doc_id: int) -> None:
        # An external-content index forgets a row only when told its old values, and only rows it holds: inside a
        # batch, chunks written by the batch itself are not indexed yet.
        db.execute(
            "INSERT INTO chunks_fts (chunks_fts, rowid, text, heading, title) "
            "SELECT 'delete', id, text, heading, title FROM chunks_search WHERE id IN "
            "(SELECT id FROM chunks WHERE document_id = ? AND id <= ?)",
            (doc_id, self._indexed_up_to if self._indexed_up_to is not None else 2**63 - 1),
        )
        db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))  # its chunks follow (ON DELETE CASCADE)

    def remove_document(self, path_or_id: str | Path | int) -> DocumentInfo:
        """Remove one document (by id, stored path, or a path that resolves to it) with its chunks; return it.

        Raises NotFound if there is no such document.
        """
        doc = self._find_document(path_or_id)
        with self._transaction() as db:
            self._delete(db, doc.id)
        return doc

    def integrity_check(self) -> str:
        """SQLite's own check of the file plus FTS5's check that the index matches the chunks ('ok' when sound)."""
        result = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            return result
        try:
            self._db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
        except sqlite3.DatabaseError as exc:
            return f"full-text index out of step: {exc}"
        return "ok"

    def optimize(self) -> None:
        """Merge the full-text index's segments (faster search after a large ingest)."""
        self._db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")


def search_store(path: Path, query: str, k: int = 5) -> list[SearchHit]:
    """`KnowledgeStore.search` on the store file at `path`; no hits when nothing has been ingested (no file yet)."""
    if not path.exists():
        return []
    with KnowledgeStore.open(path) as store:
        return store.search(query, k)
