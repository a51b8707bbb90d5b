"""DC election among the current members: `step(state, event, now) -> (state, effects)`.

Rules:
- Every membership change starts a new round: the node forgets the DC, votes (broadcast) with its
  view of the members, its crmd instance and whether it was the DC (incumbent).
- A vote counts only when its member list equals the local one (same partition view).
- The first vote of a node (or of a new crmd instance of it) in a round, and a vote of a node that
  started a new round of its own (higher seq), get the local vote back (so a crmd that starts late
  learns everyone's vote); a new voter after the round was decided starts a new round (a crmd joined
  or restarted).
- The round is decided when every member voted or when the election timeout passed (members whose crmd
  does not answer are left out); a member whose crmd announced a clean shutdown (`Departed`) is not
  waited for until it votes again. The winner: among the voters that were DC (two partitions merging),
  the lowest name; if none was DC, the lowest name. Every node decides from the same votes, so a
  partition has one DC.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, FrozenSet, List, Tuple, Union

__all__ = ["Election", "Membership", "VoteReceived", "Tick", "Restart", "Departed", "Vote", "BroadcastVote", "SendVote",
           "Elected", "new_election", "step", "voters"]


@dataclass(frozen=True)
class Vote:
    members: Tuple[str, ...]
    instance: str
    incumbent: bool
    seq: int = 0       # the sender's round: a higher one means it started a new round and needs votes

    def to_dict(self) -> dict:
        return {"members": list(self.members), "instance": self.instance, "incumbent": self.incumbent,
                "seq": self.seq}

    @classmethod
    def from_dict(cls, d: dict) -> Vote:
        return cls(tuple(sorted(d["members"])), str(d["instance"]), bool(d["incumbent"]), int(d.get("seq", 0)))


@dataclass(frozen=True)
class Election:
    local: str
    instance: str
    timeout: float
    members: Tuple[str, ...] = ()
    round: int = 0
    votes: Dict[str, Vote] = field(default_factory=dict)
    my_vote: Vote | None = None
    deadline: float | None = None
    decided: bool = False
    dc: str = ""
    departed: FrozenSet[str] = frozenset()   # members whose crmd left cleanly (not waited for)


# events
@dataclass(frozen=True)
class Membership:
    members: Tuple[str, ...]


@dataclass(frozen=True)
class VoteReceived:
    src: str
    vote: Vote


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class Restart:
    """Start a new round in the same membership (e.g. another node claims to be DC)."""

    reason: str = ""


@dataclass(frozen=True)
class Departed:
    """A member's crmd shut down cleanly: elect again without waiting for its vote."""

    node: str


Event = Union[Membership, VoteReceived, Tick, Restart, Departed]


# effects
@dataclass(frozen=True)
class BroadcastVote:
    vote: Vote


@dataclass(frozen=True)
class SendVote:
    node: str
    vote: Vote


@dataclass(frozen=True)
class Elected:
    dc: str
    voters: Tuple[str, ...]
    round: int


Effect = Union[BroadcastVote, SendVote, Elected]


def new_election(local: str, instance: str, timeout: float = 3.0) -> Election:
    return Election(local, instance, timeout)


def voters(state: Election) -> Tuple[str, ...]:
    return tuple(sorted(state.votes))


def _new_round(state: Election, now: float) -> Tuple[Election, List[Effect]]:
    incumbent = state.decided and state.dc == state.local
    if not state.decided and state.my_vote is not None:
        incumbent = state.my_vote.incumbent  # a round interrupted before its decision keeps the claim
    vote = Vote(state.members, state.instance, incumbent, state.round + 1)
    st = replace(state, round=state.round + 1, votes={state.local: vote}, my_vote=vote,
                 deadline=now + state.timeout, decided=False, dc="")
    effects: List[Effect] = [BroadcastVote(vote)]
    st, more = _maybe_decide(st, now)
    return st, effects + more


def _current_vote(state: Election) -> Vote:
    """The local vote as sent now: after a decision, the claim says whether this node is the DC."""
    vote = state.my_vote
    if state.decided and vote is not None:
        vote = replace(vote, incumbent=state.dc == state.local)
    return vote


def _maybe_decide(state: Election, now: float) -> Tuple[Election, List[Effect]]:
    if state.decided:
        return state, []
    everyone = all(m in state.votes for m in state.members if m not in state.departed)
    if not everyone and (state.deadline is None or now < state.deadline):
        return state, []
    incumbents = sorted(n for n, v in state.votes.items() if v.incumbent)
    dc = incumbents[0] if incumbents else min(state.votes)
    st = replace(state, decided=True, dc=dc, deadline=None)
    return st, [Elected(dc, voters(st), st.round)]


def step(state: Election, event: Event, now: float) -> Tuple[Election, List[Effect]]:
    if isinstance(event, Membership):
        members = tuple(sorted(set(event.members) | {state.local}))
        departed = frozenset(n for n in state.departed if n in members)
        return _new_round(replace(state, members=members, departed=departed), now)
    if isinstance(event, Restart):
        return _new_round(state, now)
    if isinstance(event, Departed):
        if event.node == state.local or event.node not in state.members:
            return state, []
        st = replace(state, departed=state.departed | {event.node})
        st = replace(st, votes={k: v for k, v in st.votes.items() if k != event.node})
        return _new_round(st, now)
    if isinstance(event, Tick):
        return _maybe_decide(state, now)
    if isinstance(event, VoteReceived):
        src, vote = event.src, event.vote
        if src == state.local or src not in state.members or vote.members != state.members:
            return state, []
        if src in state.departed:
            state = replace(state, departed=state.departed - {src})   # its crmd is back
        known = state.votes.get(src)
        if known is not None and known.instance == vote.instance:
            if vote.seq < known.seq or vote == known:
                return state, []
            votes = dict(state.votes)
            votes[src] = vote
            st = replace(state, votes=votes)
            if vote.seq == known.seq:
                # the same round's vote, with the sender's up-to-date claim
                return _maybe_decide(st, now)
            # the same crmd started a new round: it needs our vote again; ours stands
            effects: List[Effect] = [SendVote(src, _current_vote(state))] if state.my_vote is not None else []
            st, more = _maybe_decide(st, now)
            return st, effects + more
        if state.decided:
            # a crmd started (or restarted) after the decision: elect again with it
            st, effects = _new_round(state, now)
            votes = dict(st.votes)
            votes[src] = vote
            st = replace(st, votes=votes)
            st, more = _maybe_decide(st, now)
            return st, effects + more
        votes = dict(state.votes)
        votes[src] = vote
        st = replace(state, votes=votes)
        effects = [SendVote(src, _current_vote(state))] if state.my_vote is not None else []
        st, more = _maybe_decide(st, now)
        return st, effects + more
    raise TypeError(f"unknown election event {event!r}")


def next_deadline(state: Election) -> float | None:
    return None if state.decided else state.deadline
