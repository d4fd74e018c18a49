"""The operations' declarations are what the machine does: their refusal codes and events are exactly
those their Lua files (and the core's argument checks) use, and every control is refused, with nothing
changed, in each state its declaration leaves out."""

from __future__ import annotations

import inspect
import re
from importlib import resources

import pytest

from gateway import conversations as conversations_module
from gateway.message import Refused, State
from gateway.operations import OPERATIONS, Who, available, controls
from tests.test_machine import inbound

MACHINE = resources.files("gateway").joinpath("machine")
COMMON = MACHINE.joinpath("common.lua").read_text()
_QUOTED = re.compile(r"'([a-z_]+)'")


def _functions(source: str) -> dict[str, str]:
    """common.lua's local functions by name, with their bodies."""
    found = {}
    for match in re.finditer(r"^local function (\w+)\(.*?\n(.*?)^end$", source, re.S | re.M):
        found[match.group(1)] = match.group(2)
    return found


HELPERS = _functions(COMMON)


def _calls(pattern: str, source: str, argument: int = 0) -> set[str]:
    """The identifiers quoted in the ``argument``-th argument of each ``pattern(...)`` call of ``source``."""
    names: set[str] = set()
    for call in re.finditer(pattern + r"\(([^\n]*)\)", source):
        arguments = call.group(1).split(",")
        if len(arguments) > argument:
            names |= set(_QUOTED.findall(arguments[argument]))
    return names


def _with_helpers(source: str) -> str:
    """The operation's source and the bodies of the common helpers it calls (once each)."""
    seen, pending = [], [source]
    while pending:
        text = pending.pop()
        for name, body in HELPERS.items():
            if name not in seen and re.search(rf"\b{name}\(", text):
                seen.append(name)
                pending.append(body)
    return source + "\n".join(HELPERS[name] for name in seen)


def lua_refusals(name: str) -> set[str]:
    operation = OPERATIONS[name]
    source = _with_helpers(operation.lua())
    codes = _calls(r"\brefused", source) | set(operation.wrong_state.values())
    if operation.states:  # the common checks (dispatch.lua)
        codes.add("unknown")
        if State.CLOSED not in operation.states:
            codes.add("closed")
        if operation.who is Who.ASSIGNEE:
            codes |= {"not_accepted", "not_assignee"}
    return codes


def python_refusals(name: str) -> set[str]:
    """The codes the core's preparation of a control raises (argument checks the machine cannot see)."""
    prepare = getattr(conversations_module.Conversations, f"_prepare_{name}", None)
    if prepare is None:
        return set()
    source = inspect.getsource(prepare)
    if "self._target(" in source:
        source += inspect.getsource(conversations_module.Conversations._target)
    return set(re.findall(r'Refused\("([a-z_]+)"', source))


def lua_events(name: str) -> set[str]:
    source = _with_helpers(OPERATIONS[name].lua())
    events = _calls(r"\bto_agents", source, argument=1)
    if re.search(r"to_agents\(id, event\b", source):  # ingest's event is chosen above
        events |= set(re.findall(r"^\s+event = '([a-z_]+)'$", source, re.M))
    return events


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_operation_declares_exactly_the_refusals_it_can_answer(name):
    declared = set(OPERATIONS[name].refusals)
    assert lua_refusals(name) | python_refusals(name) == declared


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_operation_declares_exactly_the_events_it_emits(name):
    assert lua_events(name) == {event.value for event in OPERATIONS[name].events}


# Arguments each control accepts, enough to get past its argument checks.
ARGUMENTS = {"sound": {"on": False}, "reply": {"text": "Hello"}, "note": {"text": "A note"}, "redeliver": {"seq": 1},
             "reassign": {"to": "bob"}, "transfer": {"to": "bob"}}


async def chat_in(services, state: State, customer: str) -> str:
    conversations = services.conversations
    received = await conversations.receive(inbound("Where is my parcel?", customer=customer))
    cid = received.conversation_id
    if state is not State.NEW:
        await conversations.accept(cid, "ann")
    if state in (State.RESOLVED, State.CLOSED):
        await conversations.resolve(cid, "ann")
    if state is State.CLOSED:
        await conversations.leave(cid, "ann")
    return cid


@pytest.mark.parametrize("name", [op.name for op in controls()])
async def test_a_control_outside_its_declared_states_is_refused_and_changes_nothing(services, name):
    operation = OPERATIONS[name]
    for number, state in enumerate(State):
        cid = await chat_in(services, state, customer=f"{name}-{number}")
        before = (await services.store.get(cid), await services.store.history(cid))
        agent = "admin" if operation.who is Who.ADMIN else "ann"
        if state in operation.states:
            assert [op.name for op in await services.conversations.controls(cid, agent)].count(name) == 1
            continue
        assert name not in [op.name for op in await services.conversations.controls(cid, agent)]
        with pytest.raises(Refused) as refused:
            await services.conversations.perform(name, cid, agent, "test", **ARGUMENTS.get(name, {}))
        expected = "closed" if state is State.CLOSED else \
            "not_accepted" if operation.who is Who.ASSIGNEE and state is State.NEW else operation.wrong_state.get(state)
        if expected is not None:
            assert refused.value.code == expected, (name, state)
        assert (await services.store.get(cid), await services.store.history(cid)) == before


async def test_only_the_agents_who_may_are_offered_a_control(services):
    cid = await chat_in(services, State.ACTIVE, customer="who")
    conversation = await services.store.get(cid)
    names = lambda agent, role=None: {op.name for op in available(conversation, agent)}  # noqa: E731
    assert {"resolve", "leave", "sound", "reply", "note", "transfer"} <= names("ann")
    assert names("bob") == set()  # not theirs, and not an admin
    assert {op.name for op in await services.conversations.controls(cid, "admin")} == {"reassign"}
    # The shared view (a card everyone sees) shows every control of the state.
    assert {op.name for op in available(conversation)} == {op.name for op in controls()
                                                           if State.ACTIVE in op.states}
