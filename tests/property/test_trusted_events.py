"""The adapters' trusted outbound events (``adapters/outbound.py``) are the domain's.

For every task the state machine can reach (submitted with any timeouts, then any run of
updates, cancels and expiries at any times), ``trusted_event`` builds the same event as
``event_for``: equal, of the same class, with the same fields set, the same JSON, and valid
when that JSON is parsed back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from taskmanager.adapters.outbound import trusted_event
from taskmanager.domain.events import event_for
from taskmanager.domain.model import MAX_TIMEOUT_SECONDS, SubmitTask, apply_change
from taskmanager.domain.services import new_task, plan_cancel, plan_expiry, plan_update
from tests.property.test_contracts import instants, small_json, task_types, task_updates

if TYPE_CHECKING:
    from datetime import datetime

    from taskmanager.domain.events import TaskUpdated
    from taskmanager.domain.model import Task

timeouts = st.none() | st.integers(1, MAX_TIMEOUT_SECONDS)
steps = st.lists(
    st.tuples(
        st.sampled_from(["update", "cancel", "expire"]),
        st.floats(min_value=0, max_value=2e6),
        task_updates("t", small_json),
    ),
    max_size=5,
)


def assert_same_event(task: Task) -> None:
    expected, trusted = event_for(task), trusted_event(task)
    assert type(trusted) is type(expected)
    assert trusted == expected
    assert trusted.model_fields_set == expected.model_fields_set
    assert trusted.model_dump_json() == expected.model_dump_json()
    assert trusted.model_dump() == expected.model_dump()
    assert type(expected).model_validate_json(trusted.model_dump_json()) == expected


@given(
    task_type=task_types,
    task_input=small_json,
    timeout=timeouts,
    heartbeat=timeouts,
    start_timeout=timeouts,
    start=instants,
    steps=steps,
)
def test_trusted_events_equal_the_validated_ones(  # noqa: PLR0917
    task_type: str,
    task_input: object,
    timeout: int | None,
    heartbeat: int | None,
    start_timeout: int | None,
    start: datetime,
    steps: list[tuple[str, float, TaskUpdated]],
) -> None:
    limit = timeout or 3_600
    command = SubmitTask(
        type=task_type,
        input=task_input,
        timeout_seconds=timeout,
        heartbeat_seconds=None if heartbeat is None else min(heartbeat, limit),
        start_timeout_seconds=None if start_timeout is None else min(start_timeout, limit),
    )
    now = start
    task = new_task(command, task_id="t", owner="o", now=now)
    assert_same_event(task)
    for kind, seconds, update in steps:
        now += timedelta(seconds=seconds)
        if task.is_terminal:
            break
        if kind == "update":
            plan = plan_update(update, now)
        elif kind == "cancel":
            plan = plan_cancel(task.id, "o", now)
        else:
            found = plan_expiry(task, now)
            if found is None:
                continue
            plan = found
        task = apply_change(task, plan[1])
        assert_same_event(task)
