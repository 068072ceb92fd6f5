"""Storage: every SQL statement, the connections and their PRAGMAs, the group-commit writer, the
reader threads, migrations, backups, and the mapping of driver errors to storage errors
(errors.py). It imports only db/, config and the standard library, never core, api or web."""
