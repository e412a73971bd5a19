"""SQLite: the embedded default store for one machine (``taskmanager serve``).

One database file holds the tasks and the **outbox**; every write is one transaction that
changes the task and inserts the events of that change, so a crash after ``COMMIT`` loses
nothing. Use :class:`SQLiteTaskRepository`; ``docs/storage.md`` describes what it
guarantees. One module per concern:

- :mod:`.repository`: ``SQLiteTaskRepository``, which ties the others together;
- :mod:`.connections`: one connection per thread, WAL mode, busy timeout;
- :mod:`.schema`: the tables, the schema version and the migrations;
- :mod:`.rows`: task <-> row, and the stored text of timestamps;
- :mod:`.statements`: the SQL of inserts, guarded updates, pages and the sweeper's reads;
- :mod:`.group_commit`: write transactions, alone or many in one commit;
- :mod:`.outbox`: the events of committed changes, until delivered;
- :mod:`.cursors`: signed list cursors.
"""

from taskmanager.adapters.sqlite.connections import (
    BUSY_TIMEOUT_MS,
    MIN_SQLITE_VERSION,
    WAL_AUTOCHECKPOINT_PAGES,
)
from taskmanager.adapters.sqlite.repository import SQLiteTaskRepository
from taskmanager.adapters.sqlite.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "MIN_SQLITE_VERSION",
    "SCHEMA_VERSION",
    "WAL_AUTOCHECKPOINT_PAGES",
    "SQLiteTaskRepository",
]
