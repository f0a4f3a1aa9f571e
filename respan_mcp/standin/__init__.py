"""A stand-in for the Respan API: one model of its behaviour, for the tests and for `respan-mcp --sandbox`.

`app.RespanStandin` answers as Respan does (scores, evaluators, logs) from a `store.Store`:
`store.MemoryStore` for the tests' stand-in (tests/fake_api.py), `sqlite_store.SqliteStore` for
the sandbox, which keeps what was written across runs and processes (`sandbox.py`). Not on the
server's import path: `--sandbox` imports it when asked for.
"""
