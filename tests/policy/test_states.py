"""The state machine table, checked exhaustively."""

from __future__ import annotations

import itertools

import pytest

from app.policy.states import TRANSITIONS, Action, State, TransitionRefused, is_active, next_state

EXPECTED_MOVES = {
    (State.NONSCHEDULED, Action.START): State.SCHEDULED,
    (State.COMPLETED, Action.START): State.SCHEDULED,
    (State.SCHEDULED, Action.STOP): State.STOPPED,
    (State.RUNNING, Action.STOP): State.STOPPED,
    (State.STOPPED, Action.RESUME): State.SCHEDULED,
    (State.FAILED, Action.RESUME): State.SCHEDULED,
    (State.SCHEDULED, Action.ADMIT): State.RUNNING,
    (State.RUNNING, Action.COMPLETE): State.COMPLETED,
    (State.RUNNING, Action.FAIL): State.FAILED,
    (State.SCHEDULED, Action.FAIL): State.FAILED,
}


@pytest.mark.parametrize(("state", "action"), list(itertools.product(State, Action)))
def test_every_pair_is_allowed_or_refused_as_specified(state: State, action: Action) -> None:
    """Each (state, action) either moves as the SPEC says, stays put, or is refused."""
    if (state, action) in EXPECTED_MOVES:
        assert next_state(state, action) is EXPECTED_MOVES[(state, action)]
    elif (state, action) in TRANSITIONS:
        target = next_state(state, action)
        assert target is state or (action is Action.RESET and target is State.NONSCHEDULED)
    else:
        with pytest.raises(TransitionRefused, match=f"cannot {action.value}"):
            next_state(state, action)


def test_active_migrations_cannot_be_deleted_reset_or_verified() -> None:
    """DELETE, reset and verify are refused while RUNNING or SCHEDULED (SPEC: 409); verify needs a run."""
    settled = {State.STOPPED, State.FAILED, State.COMPLETED}
    allowed = {
        Action.DELETE: settled | {State.NONSCHEDULED},
        Action.RESET: settled | {State.NONSCHEDULED},
        Action.VERIFY: settled,
    }
    for action, states in allowed.items():
        assert {state for state in State if (state, action) in TRANSITIONS} == states
        assert not any(is_active(state) for state in states)


def test_edit_is_allowed_in_every_state() -> None:
    """Priority and the percentage override may change at any time (applied live)."""
    assert all(next_state(state, Action.EDIT) is state for state in State)
