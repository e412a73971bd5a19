"""The botocore session every AWS client of a process is built from.

botocore's model loader, before it loads a service's model, lists every service that has
one (``Loader.list_available_services``): one directory listing and a few ``stat`` calls per
service folder, some 400 of them, once for the service models and once for the endpoint
rule sets, a cold-start cost spent to learn that ``dynamodb`` exists (docs/performance.md
has the figure). :class:`ScanFreeLoader` answers the same question for the one
service asked about, from that service's own folder; the full list is still worked out,
exactly as botocore does, if anything iterates it (an unknown service's error message).

botocore's file loader also parses each data file with ``object_pairs_hook=OrderedDict``:
every JSON object becomes a list of pairs, then an ``OrderedDict``, which makes the files
read on a cold start (the 1.2 MB ``endpoints.json`` among them) slower to parse.
:class:`PlainJSONFileLoader` reads the same files into plain dicts,
which keep the same order; botocore only reads and iterates the data.

Everything else is botocore's own loader: the same search paths (``AWS_DATA_PATH``
included), the same files, the same caches.

Imported on first use only (it imports botocore), by the handlers' bootstrap and by the
processor SDK's ``AwsTransport``; it sits among the adapters, not the entrypoints, so that
the SDK can share it without importing an entrypoint. The DynamoDB and EventBridge adapters
are handed their clients and do not import it.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any, Final, overload

import botocore.session
from botocore.exceptions import DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader

#: The forms a data file takes, in the order botocore's file loader tries them.
_OPENERS: Final = ((".json", open), (".json.gz", gzip.open))


class PlainJSONFileLoader(JSONFileLoader):
    """botocore's ``JSONFileLoader`` (``file_path`` without its extension: ``.json``, then
    ``.json.gz``), parsing into plain dicts rather than ``OrderedDict``s."""

    def load_file(self, file_path: str) -> Any:
        for extension, opener in _OPENERS:
            full_path = file_path + extension
            if os.path.isfile(full_path):
                with opener(full_path, "rb") as stream:
                    return json.loads(stream.read().decode("utf-8"))
        return None


class ScanFreeLoader(Loader):
    """botocore's ``Loader`` whose ``list_available_services`` is worked out lazily."""

    _folders: frozenset[str] | None = None

    def list_available_services(self, type_name: str) -> ServiceNames:  # type: ignore[override]
        return ServiceNames(self, type_name)

    def service_folders(self) -> frozenset[str]:
        """Names of the folders in every search path (one listing per path, cached)."""
        if self._folders is None:
            names: set[str] = set()
            for path in self.search_paths:
                if os.path.isdir(path):
                    with os.scandir(path) as entries:
                        names.update(entry.name for entry in entries if entry.is_dir())
            self._folders = frozenset(names)
        return self._folders

    def has_model(self, service_name: str, type_name: str) -> bool:
        """Whether ``service_name`` has a ``type_name`` model in some API version folder:
        the test botocore applies to each service when it lists them all."""
        if service_name not in self.service_folders():
            return False
        try:
            self.list_api_versions(service_name, type_name)  # cached; load_service_model reuses it
        except DataNotFoundError:
            return False
        return True


class ServiceNames(Sequence[str]):
    """The services with a ``type_name`` model, as ``Loader.list_available_services`` lists
    them (sorted), but membership (all that loading a model asks) looks at one service."""

    def __init__(self, loader: ScanFreeLoader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name
        self._names: list[str] | None = None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._loader.has_model(name, self._type_name)

    def _all(self) -> list[str]:
        if self._names is None:
            folders = self._loader.service_folders()
            self._names = sorted(n for n in folders if self._loader.has_model(n, self._type_name))
        return self._names

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())


def new_session() -> Any:
    """A botocore session (the one boto3 would wrap) loading models with
    :class:`ScanFreeLoader` and :class:`PlainJSONFileLoader` from the usual search paths."""
    session = botocore.session.get_session()
    data_path = session.get_config_variable("data_path")
    extra_paths = (
        [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
        if data_path
        else None
    )
    loader = ScanFreeLoader(extra_search_paths=extra_paths, file_loader=PlainJSONFileLoader())
    session.register_component("data_loader", loader)
    return session
