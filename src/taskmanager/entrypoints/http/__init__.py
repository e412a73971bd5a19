"""What the HTTP API's routes (:mod:`taskmanager.entrypoints.api`) stand on.

- :mod:`.owners`: who the caller is, from the API Gateway authorizer;
- :mod:`.body`: the checks on the raw request body and the one JSON decoder for it;
- :mod:`.binding`: the parameter markers (``Body``, ``Header``, ``Query``) and how a route's
  parameters are read from a request and validated;
- :mod:`.route_table`: :class:`~.route_table.TaskApi`, the table that serves the routes to
  API Gateway events (Lambda) and to the local server alike.

Every error's HTTP status is in :mod:`taskmanager.entrypoints.http_errors`.
"""
