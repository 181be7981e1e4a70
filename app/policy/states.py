"""The migration state machine as one table (SPEC section 3).

Every transition a user or the service can cause is listed here; anything absent is refused,
and the API answers 409 for a refused user action.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    NONSCHEDULED = "NONSCHEDULED"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


class Action(StrEnum):
    # Asked for by a user.
    START = "start"
    STOP = "stop"
    RESUME = "resume"
    RESET = "reset"
    VERIFY = "verify"
    DELETE = "delete"
    EDIT = "edit"  # PATCH of priority, properties or options
    # Caused by the service itself.
    ADMIT = "admit"  # the scheduler found room
    COMPLETE = "complete"
    FAIL = "fail"


USER_ACTIONS = frozenset(
    {Action.START, Action.STOP, Action.RESUME, Action.RESET, Action.VERIFY, Action.DELETE, Action.EDIT}
)

S, A = State, Action

#: (state, action) -> the state after it. ``EDIT``, ``VERIFY`` and ``DELETE`` leave the state alone.
TRANSITIONS: dict[tuple[State, Action], State] = {
    (S.NONSCHEDULED, A.START): S.SCHEDULED,
    (S.COMPLETED, A.START): S.SCHEDULED,  # an incremental pass
    (S.SCHEDULED, A.STOP): S.STOPPED,
    (S.RUNNING, A.STOP): S.STOPPED,
    (S.STOPPED, A.RESUME): S.SCHEDULED,
    (S.FAILED, A.RESUME): S.SCHEDULED,
    (S.NONSCHEDULED, A.RESET): S.NONSCHEDULED,
    (S.STOPPED, A.RESET): S.NONSCHEDULED,
    (S.FAILED, A.RESET): S.NONSCHEDULED,
    (S.COMPLETED, A.RESET): S.NONSCHEDULED,
    (S.COMPLETED, A.VERIFY): S.COMPLETED,
    (S.STOPPED, A.VERIFY): S.STOPPED,
    (S.FAILED, A.VERIFY): S.FAILED,
    (S.NONSCHEDULED, A.DELETE): S.NONSCHEDULED,
    (S.STOPPED, A.DELETE): S.STOPPED,
    (S.FAILED, A.DELETE): S.FAILED,
    (S.COMPLETED, A.DELETE): S.COMPLETED,
    (S.SCHEDULED, A.ADMIT): S.RUNNING,
    (S.RUNNING, A.COMPLETE): S.COMPLETED,
    (S.RUNNING, A.FAIL): S.FAILED,
    (S.SCHEDULED, A.FAIL): S.FAILED,
    **{(state, A.EDIT): state for state in State},
}


class TransitionRefused(Exception):
    """The action is not allowed in the migration's current state."""

    def __init__(self, state: State, action: Action) -> None:
        self.state, self.action = state, action
        allowed = sorted(s.value for s in allowed_from(action))
        super().__init__(f"cannot {action.value} a migration in state {state.value}; allowed in: {in_words(allowed)}")


def in_words(names: list[str]) -> str:
    """``["A", "B", "C"]`` -> ``"A, B or C"``: how a person lists the choices."""
    if len(names) <= 1:
        return "".join(names) or "no state"
    return f"{', '.join(names[:-1])} or {names[-1]}"


def next_state(state: State, action: Action) -> State:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise TransitionRefused(state, action) from None


def allowed_from(action: Action) -> set[State]:
    return {state for (state, act) in TRANSITIONS if act is action}


def is_active(state: State) -> bool:
    """Holding or waiting for pool threads: cannot be deleted or reset."""
    return state in (State.SCHEDULED, State.RUNNING)
