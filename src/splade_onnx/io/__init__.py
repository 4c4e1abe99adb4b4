"""Reading and writing what flows in and out: corpora, queries, qrels and runs; search-engine payloads."""
