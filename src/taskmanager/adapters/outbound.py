"""Outbound events built from a stored task without validating it again (a speed trick of the
in-memory and SQLite adapters; docs/performance.md, "Outbound events built without
validation").

:func:`taskmanager.domain.events.event_for` validates the event it builds, as the domain
validates everything it builds from outside. A task an adapter holds was built by the domain
from values pydantic validated, so its event can only pass: validating it again is about half
of a state change's cost in memory. :func:`trusted_event` builds the same model from the
same fields the way pydantic's ``model_construct`` does, without its loop over every field.
``tests/property/test_trusted_events.py`` proves, for every task the state machine can
reach, that the two give equal events and the same JSON.

To remove: pass nothing for ``build`` to ``events_for_change`` (``event_for`` is the default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from taskmanager.domain.events import EVENT_FOR_STATUS, event_fields

if TYPE_CHECKING:
    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.model import Task

#: The fields ``event_for`` passes (pydantic's ``model_fields_set``): all of them.
_FIELDS_SET: Final = {cls: set(cls.model_fields) for cls in EVENT_FOR_STATUS.values()}
_set: Final = object.__setattr__


def trusted_event(task: Task) -> OutboundEvent:
    """``event_for(task)``, for a task the domain built: the same event, not validated."""
    event_class = EVENT_FOR_STATUS[task.status]
    # What BaseModel.model_construct sets, from pydantic's documented model attributes.
    event = event_class.__new__(event_class)
    _set(event, "__dict__", event_fields(task))
    _set(event, "__pydantic_fields_set__", _FIELDS_SET[event_class].copy())
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event
