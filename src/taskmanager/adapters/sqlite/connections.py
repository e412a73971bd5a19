"""Connections to the file: one per thread, opened on first use, all closed by ``close()``.

Every connection runs in WAL mode with a busy timeout, so several threads (one connection
each) and several processes can share the file; ``synchronous=NORMAL`` keeps a committed
change when the process is killed, ``FULL`` also when the power fails.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from typing import Final

from taskmanager.domain.errors import StorageError

#: ``UPDATE ... RETURNING`` arrived in SQLite 3.35.0.
MIN_SQLITE_VERSION: Final = (3, 35, 0)
BUSY_TIMEOUT_MS: Final = 30_000
#: Checkpoint the WAL into the database every this many pages (about 40 MB) instead of
#: SQLite's 1000, because each checkpoint syncs the file.
WAL_AUTOCHECKPOINT_PAGES: Final = 10_000
_SYNCHRONOUS_MODES: Final = frozenset({"NORMAL", "FULL", "EXTRA"})


class _Connection:
    """One thread's connection (a weak reference target; ``sqlite3.Connection`` is not)."""

    __slots__ = ("__weakref__", "db")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db


class ThreadConnections:
    """The connections of one repository to one file, one per thread."""

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str, autocheckpoint: bool
    ) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise StorageError(
                f"SQLite {sqlite3.sqlite_version} is too old; "
                f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer is needed (UPDATE ... "
                "RETURNING)"
            )
        if synchronous.upper() not in _SYNCHRONOUS_MODES:
            raise ValueError("synchronous must be NORMAL, FULL or EXTRA")
        self.path = os.fspath(path)
        self._synchronous = synchronous.upper()
        # False: the owner calls checkpoint() from a thread of its own, so no write waits
        # for a checkpoint (one copies up to ~40 MB into the file and syncs it).
        self._autocheckpoint = WAL_AUTOCHECKPOINT_PAGES if autocheckpoint else 0
        self._local = threading.local()
        self._lock = threading.Lock()
        # Weak: a thread that ends drops its connection (SQLite closes it when collected).
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        try:
            # Each connection is used by its own thread only; check_same_thread=False just
            # lets close() shut them all from whichever thread closes the repository.
            db = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            db.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint}")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from exc
        return db

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        holder: _Connection | None = getattr(self._local, "holder", None)
        if holder is None:
            if self._closed:
                raise StorageError("the SQLite repository is closed")
            holder = _Connection(self._connect())
            self._local.holder = holder
            with self._lock:
                self._connections.add(holder)
        return holder.db

    def close(self) -> None:
        """Close every connection opened so far (from any thread); open no more."""
        with self._lock:
            self._closed = True
            holders, self._connections = list(self._connections), weakref.WeakSet()
        for holder in holders:
            holder.db.close()
        self._local = threading.local()
