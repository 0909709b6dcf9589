"""Full-text search over memories: one interface, two engines.

PostgreSQL keeps a generated ``tsvector`` column with a GIN index; SQLite (the embedded
default) keeps an FTS5 table that triggers hold in step with the memories table. Both are
created by this app's migrations (``index_sql``). A query is parsed once (``parse``) into
words, quoted phrases and ``-excluded`` words, then rendered for the engine at hand, so the
user's text never reaches either query language unescaped.

Snippets are marked with control characters inside the database and turned into ``<mark>``
only after the text around them is HTML-escaped: a memory's text cannot inject markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from jobs.api.base import InvalidInput

TABLE = "processing_memory"
FTS_TABLE = "processing_memory_fts"
# No stemming: memories come in every language, and 'simple' matches what was written.
PG_CONFIG = "simple"
START, STOP = "\x02", "\x03"
MAX_QUERY_TERMS = 32
# On PostgreSQL, a query matching more memories than this ranks the first this many found
# (a broad query's hits are all alike; ranking them all would cost seconds on millions).
RANK_CANDIDATES = 500
GIN_FUZZY_LIMIT = 2000

_TOKEN = re.compile(r'(-?)"([^"]*)"|(-?)([^\s"]+)')
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class Query:
    words: list[str] = field(default_factory=list)
    phrases: list[list[str]] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)


@dataclass
class Hit:
    # The memory with the fields a hit shows (others load on access).
    memory: Any
    score: float
    snippet: str


# What a hit carries of its memory, read in the search query itself.
# In the model's field order: ``Model.from_db`` places partial rows by field order, not name.
HIT_COLUMNS = (
    "m.id, m.collection_id, m.job_id, m.source, m.page, m.position, m.text, m.metadata, m.tags"
)


def parse(text: str) -> Query:
    """Words, "quoted phrases" and -excluded words; punctuation is not syntax."""
    query = Query()
    for neg_phrase, phrase, neg_word, word in _TOKEN.findall(text or ""):
        if phrase or (neg_phrase and not word):
            tokens = [t.lower() for t in _WORD.findall(phrase)]
            if neg_phrase:
                query.excluded.extend(tokens)
            elif len(tokens) == 1:
                query.words.extend(tokens)
            elif tokens:
                query.phrases.append(tokens)
            continue
        tokens = [t.lower() for t in _WORD.findall(word)]
        (query.excluded if neg_word else query.words).extend(tokens)
    terms = len(query.words) + len(query.excluded) + sum(len(p) for p in query.phrases)
    if not query.words and not query.phrases:
        raise InvalidInput(
            "The search query needs at least one word to look for",
            details={"q": ["no words to search for"]},
        )
    if terms > MAX_QUERY_TERMS:
        raise InvalidInput(
            f"The search query has {terms} terms; at most {MAX_QUERY_TERMS} are allowed",
            details={"q": ["too many terms"]},
        )
    return query


def search(
    query: Query,
    *,
    collection_ids: Sequence[Any],
    job_id: Any = None,
    tag: str | None = None,
    limit: int = 10,
    offset: int = 0,
) -> list[Hit]:
    """The best-ranked memories in these collections, with highlighted snippets."""
    if not collection_ids:
        return []
    if connection.vendor != "postgresql":
        from processing.models import Memory

        sql, params = _sqlite_sql(query, collection_ids, job_id, tag, limit, offset)
        memories = list(Memory.objects.raw(sql, params))
        return [Hit(m, float(m.score), mark(m.snippet)) for m in memories]
    sql, params = _postgres_sql(query, collection_ids, job_id, tag, limit, offset)
    # GIN's own answer to words found in most rows: past this many matches it returns a
    # random sample instead of every match (the difference between 25 and 180 ms for two
    # common words over 1M memories). SET LOCAL and the query go as one batch, which
    # PostgreSQL runs as one transaction: one round trip where BEGIN, SET, SELECT and
    # COMMIT took four.
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL gin_fuzzy_search_limit = {GIN_FUZZY_LIMIT}; {sql}", params)
        cursor.nextset()
        columns = [column.name for column in cursor.description]
        rows = cursor.fetchall()
    return [_hit(columns, row) for row in rows]


def _hit(columns: list[str], row: Sequence[Any]) -> Hit:
    from jobs.api.base import model_from_row
    from processing.models import Memory

    values = dict(zip(columns, row, strict=True))
    score, snippet = values.pop("score"), values.pop("snippet")
    memory = model_from_row(Memory, list(values), list(values.values()), connection.alias)
    return Hit(memory=memory, score=float(score), snippet=mark(snippet))


def mark(snippet: str) -> str:
    """Escape a database snippet as HTML and turn its match markers into ``<mark>``."""
    escaped = html.escape(snippet or "", quote=False)
    return escaped.replace(START, "<mark>").replace(STOP, "</mark>")


def _db_ids(collection_ids: Sequence[Any]) -> list[Any]:
    from processing.models import Memory

    field_ = Memory._meta.get_field("collection")
    return [field_.get_db_prep_value(value, connection) for value in collection_ids]


def _filters(
    alias: str, collection_ids: Sequence[Any], job_id: Any, tag: str | None
) -> tuple[list[str], list[Any]]:
    ids = _db_ids(collection_ids)
    where = [f"{alias}.collection_id IN ({', '.join(['%s'] * len(ids))})"]
    params: list[Any] = list(ids)
    if job_id is not None:
        from processing.models import Memory

        where.append(f"{alias}.job_id = %s")
        params.append(Memory._meta.get_field("job_id").get_db_prep_value(job_id, connection))
    if tag:
        where.append(tag_condition(alias))
        params.append(tag_param(tag))
    return where, params


def tag_condition(alias: str) -> str:
    """SQL that is true when the memory carries the tag given as the next parameter."""
    if connection.vendor == "postgresql":
        return f"{alias}.tags @> %s::jsonb"
    return f"EXISTS (SELECT 1 FROM json_each({alias}.tags) WHERE json_each.value = %s)"


def tag_param(tag: str) -> str:
    if connection.vendor == "postgresql":
        import json

        return json.dumps([tag])
    return tag


def _postgres_tsquery(query: Query) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for word in query.words:
        parts.append(f"plainto_tsquery('{PG_CONFIG}', %s)")
        params.append(word)
    for phrase in query.phrases:
        parts.append(f"phraseto_tsquery('{PG_CONFIG}', %s)")
        params.append(" ".join(phrase))
    for word in query.excluded:
        parts.append(f"!!plainto_tsquery('{PG_CONFIG}', %s)")
        params.append(word)
    return "(" + " && ".join(parts) + ")", params


_HEADLINE_OPTIONS = (
    f"StartSel={START}, StopSel={STOP}, MaxWords=40, MinWords=15, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)


def _postgres_sql(
    query: Query,
    collection_ids: Sequence[Any],
    job_id: Any,
    tag: str | None,
    limit: int,
    offset: int,
) -> tuple[str, list[Any]]:
    tsquery, tsparams = _postgres_tsquery(query)
    where, params = _filters("m", collection_ids, job_id, tag)
    # Rank at most RANK_CANDIDATES matches (all of them for any specific query: ranking
    # reads each match's tsvector, and a query of two common words matches most of a big
    # collection), then headline only the page of hits: ts_headline re-parses the text.
    sql = f"""
        WITH q AS (SELECT {tsquery} AS query),
        candidates AS MATERIALIZED (
            SELECT m.id, m.search FROM {TABLE} m, q
            WHERE m.search @@ q.query AND {" AND ".join(where)}
            LIMIT {RANK_CANDIDATES}
        ),
        ranked AS (
            SELECT c.id, ts_rank_cd(c.search, q.query, 1) AS score
            FROM candidates c, q
            ORDER BY score DESC, c.id
            LIMIT %s OFFSET %s
        )
        SELECT {HIT_COLUMNS}, r.score AS score,
               ts_headline('{PG_CONFIG}', m.text, q.query, %s) AS snippet
        FROM ranked r JOIN {TABLE} m ON m.id = r.id, q
        ORDER BY r.score DESC, r.id
    """
    return sql, [*tsparams, *params, limit, offset, _HEADLINE_OPTIONS]


def _fts5_string(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def fts5_match(query: Query) -> str:
    positive = [_fts5_string(w) for w in query.words]
    positive += [_fts5_string(" ".join(p)) for p in query.phrases]
    expression = " AND ".join(positive)
    for word in query.excluded:
        expression = f"({expression}) NOT {_fts5_string(word)}"
    return expression


def _sqlite_sql(
    query: Query,
    collection_ids: Sequence[Any],
    job_id: Any,
    tag: str | None,
    limit: int,
    offset: int,
) -> tuple[str, list[Any]]:
    where, params = _filters("m", collection_ids, job_id, tag)
    sql = f"""
        SELECT {HIT_COLUMNS}, -bm25({FTS_TABLE}) AS score,
               snippet({FTS_TABLE}, 0, char(2), char(3), ' … ', 32) AS snippet
        FROM {FTS_TABLE} JOIN {TABLE} m ON m.id = {FTS_TABLE}.rowid
        WHERE {FTS_TABLE} MATCH %s AND {" AND ".join(where)}
        ORDER BY bm25({FTS_TABLE}), m.id
        LIMIT %s OFFSET %s
    """
    return sql, [fts5_match(query), *params, limit, offset]


# --- the index, created and dropped by migrations -------------------------------------------

POSTGRES_INDEX = [
    f"ALTER TABLE {TABLE} ADD COLUMN search tsvector "
    f"GENERATED ALWAYS AS (to_tsvector('{PG_CONFIG}', text)) STORED",
    # Compressed in the row, not out of line: ranking reads every candidate's vector, and
    # a TOAST lookup per candidate made it 40% slower (docs/documents.md).
    f"ALTER TABLE {TABLE} ALTER COLUMN search SET STORAGE MAIN",
    f"ALTER TABLE {TABLE} ALTER COLUMN text SET STORAGE MAIN",
    f"CREATE INDEX memory_search ON {TABLE} USING GIN (search)",
    f"CREATE INDEX memory_tags ON {TABLE} USING GIN (tags jsonb_path_ops)",
]
POSTGRES_DROP = [
    "DROP INDEX IF EXISTS memory_tags",
    "DROP INDEX IF EXISTS memory_search",
    f"ALTER TABLE {TABLE} DROP COLUMN IF EXISTS search",
]
SQLITE_INDEX = [
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5("
    f"text, content='{TABLE}', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER {TABLE}_fts_insert AFTER INSERT ON {TABLE} BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END",
    f"CREATE TRIGGER {TABLE}_fts_delete AFTER DELETE ON {TABLE} BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text); "
    "END",
    f"CREATE TRIGGER {TABLE}_fts_update AFTER UPDATE OF text ON {TABLE} BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text); "
    f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {TABLE}_fts_update",
    f"DROP TRIGGER IF EXISTS {TABLE}_fts_delete",
    f"DROP TRIGGER IF EXISTS {TABLE}_fts_insert",
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
]


def index_sql(vendor: str, *, drop: bool = False) -> list[str]:
    if vendor == "postgresql":
        return POSTGRES_DROP if drop else POSTGRES_INDEX
    if vendor == "sqlite":
        return SQLITE_DROP if drop else SQLITE_INDEX
    raise RuntimeError(f"Memory search supports PostgreSQL and SQLite, not {vendor}")
