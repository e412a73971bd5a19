"""`taskmanager serve`: the same HTTP API as in AWS on one machine, with SQLite, an outbox
dispatcher feeding an in-process bus, processors in a worker pool, a sweeper thread, live
updates over server-sent events and a small web page."""
