"""Pure membership state machine: heartbeats, link events and time in; node/link states and effects out.

`step(state, event, now) -> (state, effects)` is the whole interface. No sockets, no clocks: the daemon
feeds it received heartbeats (`Heartbeat`), local interface changes (`LinkUp`/`LinkDown`), a `Start`
and periodic `Tick`s, and acts on the effects it returns (log, D-Bus signals, messaging cleanup).

Rules (Heartbeat's, with sub-second timers):

- A peer is ``up`` while ANY link heard it within warntime, ``warn`` when it has been silent longer
  than warntime, ``dead`` when silent for deadtime or more.
- Until initdead has passed since `Start`, a peer never heard is ``init`` (unknown); after that it is
  ``dead``. A peer heard at least once uses deadtime from then on.
- Each (peer, link) has its own status: ``up`` while heard on that link within deadtime, ``dead``
  otherwise (``init`` before it was ever heard and initdead has not passed). A local link going down
  marks every peer's status on it ``dead`` at once.
- Freshness: a peer's packets count only once the peer has shown it hears THIS incarnation of the local
  node: a heartbeat echoing the local generation (`Heartbeat.echo`) verifies the peer's generation.
  Packets recorded before the local node (re)started can never do that, so replaying them cannot make a
  peer up (`Rejected` "stale"), whatever generation they carry.
- Generations: a higher generation than known is a restart (`NodeRestarted`), believed only when fresh,
  at most MAX_GENERATION_JUMP above the known one, and once the known generation has been silent for
  2 x keepalive (while it still speaks, the new one is held: `Rejected` "generation"). An older
  generation is refused (`Rejected` "replay") unless it is fresh and the known one has been silent for
  deadtime (the peer lost its state and counts again from 1). So one forged packet cannot lock a peer
  out, and known generations may be seeded from disk (`new_membership(known=...)`).
- At most MAX_PEERS peers (autojoin cannot grow the state without bound).
- The membership view is the set of (node, generation) of the local node and every ``up``/``warn``
  peer; each change of the view increments the epoch (`MembershipChanged`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, FrozenSet, List, Mapping, Tuple, Union

__all__ = [
    "INIT", "UP", "WARN", "DEAD", "LINK_UP", "LINK_DEAD", "LINK_INIT",
    "Timing", "LinkView", "Peer", "Membership",
    "Start", "Tick", "Heartbeat", "LinkUp", "LinkDown", "Reconfigure",
    "NodeStateChanged", "LinkStatusChanged", "NodeRestarted", "MembershipChanged", "UnknownNode",
    "Rejected", "Verified", "MAX_GENERATION_JUMP", "MAX_PEERS", "new_membership", "step", "next_deadline", "next_due", "members", "summary",
]

# node states
INIT, UP, WARN, DEAD = "init", "up", "warn", "dead"
# per-link statuses
LINK_INIT, LINK_UP, LINK_DEAD = "init", "up", "dead"

ALIVE = (UP, WARN)
MAX_GENERATION_JUMP = 1 << 20   # a peer restarting more often than this while unheard is not believable
MAX_PEERS = 256                 # autojoin: peers beyond this are UnknownNode
FAST_PATH = True                # step(Heartbeat) of a steady peer in O(1) (False: always the full path; tests)


@dataclass(frozen=True)
class Timing:
    """Heartbeat timers in seconds (validated by the ha.cf parser: deadtime > 2 x keepalive ...)."""

    keepalive: float
    warntime: float
    deadtime: float
    initdead: float


@dataclass(frozen=True)
class LinkView:
    """What the local node knows about one peer on one link."""

    status: str = LINK_INIT
    last_heard: float | None = None


@dataclass(frozen=True)
class Peer:
    """What the local node knows about one peer node."""

    state: str = INIT
    generation: int | None = None
    verified: bool = False       # `generation` has shown it hears this incarnation of the local node
    seq: int | None = None
    last_heard: float | None = None
    links: Mapping[str, LinkView] = field(default_factory=dict)


@dataclass(frozen=True)
class Membership:
    """The whole membership state of the local node (immutable; `step` returns a new one)."""

    local: str
    generation: int
    timing: Timing
    links: Tuple[str, ...]
    peers: Mapping[str, Peer]
    autojoin: bool = False
    started: float | None = None
    local_links: Mapping[str, bool] = field(default_factory=dict)  # link -> carrier up
    epoch: int = 0
    view: FrozenSet[Tuple[str, int]] = frozenset()
    # a lower bound of next_deadline() (None: nothing pending), kept by step(): before it no Tick can change
    # anything, so a heartbeat of a steady peer updates that peer alone (O(1), not O(peers))
    due: float | None = field(default=None, compare=False)


# ---------------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Start:
    """The daemon started: initdead counts from now."""


@dataclass(frozen=True)
class Tick:
    """Time passed (timers are evaluated on every event; Tick carries nothing else)."""


@dataclass(frozen=True)
class Heartbeat:
    """An authenticated heartbeat (or any authenticated packet) from `node`, heard on local `link`."""

    node: str
    link: str
    generation: int
    seq: int = 0
    echo: int | None = None   # the local node's generation as the sender knows it (heartbeats only)


@dataclass(frozen=True)
class LinkUp:
    """The local interface of `link` got carrier / was set up."""

    link: str


@dataclass(frozen=True)
class LinkDown:
    """The local interface of `link` lost carrier / was set down."""

    link: str


@dataclass(frozen=True)
class Reconfigure:
    """A reloaded ha.cf: new timers, node list and links. Known peers keep their state."""

    timing: Timing
    nodes: Tuple[str, ...]
    links: Tuple[str, ...]


Event = Union[Start, Tick, Heartbeat, LinkUp, LinkDown, Reconfigure]


# --------------------------------------------------------------------------------------------- effects
@dataclass(frozen=True)
class NodeStateChanged:
    node: str
    old: str
    new: str
    silent_for: float | None = None  # seconds since last heard (None: never heard)


@dataclass(frozen=True)
class LinkStatusChanged:
    node: str
    link: str
    old: str
    new: str


@dataclass(frozen=True)
class NodeRestarted:
    node: str
    old_generation: int
    new_generation: int


@dataclass(frozen=True)
class MembershipChanged:
    epoch: int
    members: Tuple[str, ...]
    joined: Tuple[str, ...]
    left: Tuple[str, ...]


@dataclass(frozen=True)
class UnknownNode:
    """A heartbeat from a node that is not in the node list (ignored; counted by the daemon)."""

    node: str
    link: str


@dataclass(frozen=True)
class Rejected:
    """A packet of a configured peer that does not count (dropped; the daemon counts `reason`).

    reason: "replay" (an older generation than known), "stale" (not shown to be sent after the local
    node started), "generation" (a new generation not believed: too far ahead, or the known one still
    speaks).
    """

    node: str
    generation: int
    known_generation: int | None
    reason: str


@dataclass(frozen=True)
class Verified:
    """`generation` of `node` proved it hears this incarnation with the packet numbered `seq`."""

    node: str
    generation: int
    seq: int


Effect = Union[NodeStateChanged, LinkStatusChanged, NodeRestarted, MembershipChanged, UnknownNode,
               Rejected, Verified]


# ------------------------------------------------------------------------------------------- functions
def new_membership(local: str, generation: int, timing: Timing, nodes, links, autojoin: bool = False,
                   known: Mapping[str, int] | None = None) -> Membership:
    """The state before `Start`: every configured peer `init`, the local node the only member.

    known: peers' generations remembered from an earlier run (not verified: they only make older
    generations "replay" until the peer proves a generation in this run)."""
    links = tuple(links)
    known = known or {}
    peers = {n: Peer(generation=known.get(n), links={ln: LinkView() for ln in links})
             for n in nodes if n != local}
    return Membership(local=local, generation=generation, timing=timing, links=links, peers=peers,
                      autojoin=autojoin, local_links={ln: True for ln in links},
                      view=frozenset({(local, generation)}))


def members(state: Membership) -> Tuple[str, ...]:
    """Sorted names of the nodes in the current view (local node included)."""
    return tuple(sorted(n for n, _ in state.view))


def summary(state: Membership) -> str:
    """One line for people and sd_notify STATUS=: epoch, members, non-members with their state."""
    others = ", ".join(f"{n} {p.state}" for n, p in sorted(state.peers.items()) if p.state not in ALIVE)
    text = f"epoch {state.epoch}: {len(state.view)} member(s) {' '.join(members(state))}"
    return text + (f"; {others}" if others else "")


def next_due(state: Membership) -> float | None:
    """When the daemon should Tick next: at or before next_deadline() (cheap: kept by step()).
    A Tick there may change nothing (a peer was heard since); it recomputes the exact deadline."""
    return state.due


def next_deadline(state: Membership) -> float | None:
    """The earliest future time at which a Tick could change something (None: nothing pending)."""
    t = state.timing
    times: List[float] = []
    for peer in state.peers.values():
        if peer.last_heard is None:
            if peer.state == INIT and state.started is not None:
                times.append(state.started + t.initdead)
        else:
            if peer.state == UP:
                times.append(peer.last_heard + t.warntime)
            if peer.state in ALIVE:
                times.append(peer.last_heard + t.deadtime)
        for lv in peer.links.values():
            if lv.status == LINK_UP and lv.last_heard is not None:
                times.append(lv.last_heard + t.deadtime)
            elif lv.status == LINK_INIT and state.started is not None:
                times.append(state.started + t.initdead)
    return min(times) if times else None


def _node_state(state: Membership, peer: Peer, now: float) -> str:
    t = state.timing
    if peer.last_heard is None:
        if state.started is None or now < state.started + t.initdead:
            return INIT
        return DEAD
    silent = now - peer.last_heard
    if silent >= t.deadtime:
        return DEAD
    if silent >= t.warntime:
        return WARN
    return UP


def _link_status(state: Membership, link: str, lv: LinkView, now: float) -> str:
    t = state.timing
    if not state.local_links.get(link, True):
        return LINK_DEAD
    if lv.last_heard is None:
        if state.started is None or now < state.started + t.initdead:
            return LINK_INIT
        return LINK_DEAD
    return LINK_UP if now - lv.last_heard < t.deadtime else LINK_DEAD


def _evaluate(state: Membership, now: float, effects: List[Effect]) -> Membership:
    """Recompute every peer's state and link statuses from the timers; update view and epoch."""
    peers: Dict[str, Peer] = {}
    for name in sorted(state.peers):
        peer = state.peers[name]
        links = {}
        for link in state.links:
            lv = peer.links.get(link, LinkView())
            status = _link_status(state, link, lv, now)
            if status != lv.status:
                effects.append(LinkStatusChanged(name, link, lv.status, status))
                lv = replace(lv, status=status)
            links[link] = lv
        new = _node_state(state, peer, now)
        if new != peer.state:
            silent = None if peer.last_heard is None else round(now - peer.last_heard, 6)
            effects.append(NodeStateChanged(name, peer.state, new, silent))
        peers[name] = replace(peer, state=new, links=links)
    view = frozenset({(state.local, state.generation)} | {
        (n, p.generation) for n, p in peers.items() if p.state in ALIVE and p.generation is not None})
    epoch = state.epoch
    if view != state.view:
        epoch += 1
        old_names = {n for n, _ in state.view}
        new_names = {n for n, _ in view}
        effects.append(MembershipChanged(
            epoch, tuple(sorted(new_names)),
            joined=tuple(sorted(n for n, g in view - state.view)),
            left=tuple(sorted(n for n in old_names - new_names))))
    state = replace(state, peers=peers, view=view, epoch=epoch)
    return _copy(state, due=next_deadline(state))


def _copy(obj, **changes):
    """A copy of a frozen dataclass instance with `changes` (what dataclasses.replace does, without
    running __init__ again: ~10x cheaper; only for values of the fields' types)."""
    new = object.__new__(type(obj))
    d = new.__dict__
    d.update(obj.__dict__)
    d.update(changes)
    return new


def _steady_heartbeat(state: Membership, ev: Heartbeat, now: float) -> Membership | None:
    """The fast path of step(Heartbeat): a packet of the believed generation of a peer that is up and up
    on that link, before any timer is due. Only that peer's times change and no effect results, exactly
    what the full step would compute (tests/unit/test_membership.py compares both). None: take the full path.
    """
    due = state.due
    if due is None or now >= due:
        return None
    peer = state.peers.get(ev.node)
    if (peer is None or peer.state != UP or not peer.verified or peer.generation != ev.generation
            or ev.node == state.local):
        return None
    lv = peer.links.get(ev.link)
    if lv is None or lv.status != LINK_UP:
        return None
    links = dict(peer.links)
    links[ev.link] = _copy(lv, last_heard=now)
    peers = dict(state.peers)
    peers[ev.node] = _copy(peer, seq=ev.seq, last_heard=now, links=links)
    return _copy(state, peers=peers)


def _heartbeat(state: Membership, ev: Heartbeat, now: float, effects: List[Effect]) -> Membership:
    if ev.node == state.local:
        return state
    peer = state.peers.get(ev.node)
    if peer is None:
        if not state.autojoin or len(state.peers) >= MAX_PEERS:
            effects.append(UnknownNode(ev.node, ev.link))
            return state
        peer = Peer(links={ln: LinkView() for ln in state.links})
    if ev.link not in state.links:
        return state
    gen, known = ev.generation, peer.generation
    reason = _judge(state, peer, ev, now)
    if reason is not None:
        effects.append(Rejected(ev.node, gen, known, reason))
        if reason == "stale" and gen != known and (known is None or gen > known) and not peer.verified:
            # not proven yet, but the generation to echo back so that the peer can prove it
            return replace(state, peers={**state.peers, ev.node: replace(peer, generation=gen)})
        return state
    if known is not None and gen != known and peer.last_heard is not None:
        effects.append(NodeRestarted(ev.node, known, gen))
    if not peer.verified or known != gen:
        effects.append(Verified(ev.node, gen, ev.seq))
    links = dict(peer.links)
    links[ev.link] = replace(links.get(ev.link, LinkView()), last_heard=now)
    peer = replace(peer, generation=gen, verified=True, seq=ev.seq, last_heard=now, links=links)
    return replace(state, peers={**state.peers, ev.node: peer})


def _judge(state: Membership, peer: Peer, ev: Heartbeat, now: float) -> str | None:
    """None when the packet counts for `peer`, else the Rejected reason (see the module's rules)."""
    gen, known = ev.generation, peer.generation
    fresh = ev.echo == state.generation
    if known is not None and gen - known > MAX_GENERATION_JUMP:
        return "generation"
    if known is not None and gen < known and not fresh:
        return "replay"
    if known is None or not peer.verified:       # nothing proven in this run yet
        return None if fresh else "stale"
    if gen == known:
        return None
    if not fresh:
        return "stale" if gen > known else "replay"
    silent = None if peer.last_heard is None else now - peer.last_heard
    if gen > known:
        # a restart; held while the incarnation we know still speaks (one forged packet locks nobody out)
        return "generation" if silent is not None and silent < 2 * state.timing.keepalive else None
    # an older generation, fresh: the peer lost its state; believed once the known one is dead
    return "replay" if silent is not None and silent < state.timing.deadtime else None


def step(state: Membership, event: Event, now: float) -> Tuple[Membership, List[Effect]]:
    """Apply one event at time `now` (monotonic seconds); return the new state and its effects."""
    effects: List[Effect] = []
    if type(event) is Heartbeat and FAST_PATH:
        fast = _steady_heartbeat(state, event, now)
        if fast is not None:
            return fast, effects
    if isinstance(event, Start):
        state = replace(state, started=now)
    elif isinstance(event, Heartbeat):
        state = _heartbeat(state, event, now, effects)
    elif isinstance(event, LinkDown):
        if event.link in state.local_links:
            state = replace(state, local_links={**state.local_links, event.link: False})
    elif isinstance(event, LinkUp):
        if event.link in state.local_links:
            state = replace(state, local_links={**state.local_links, event.link: True})
    elif isinstance(event, Reconfigure):
        state = _reconfigure(state, event)
    elif not isinstance(event, Tick):
        raise TypeError(f"unknown membership event {event!r}")
    return _evaluate(state, now, effects), effects


def _reconfigure(state: Membership, ev: Reconfigure) -> Membership:
    links = tuple(ev.links)
    peers = {}
    for name in ev.nodes:
        if name == state.local:
            continue
        peer = state.peers.get(name, Peer())
        peer = replace(peer, links={ln: peer.links.get(ln, LinkView()) for ln in links})
        peers[name] = peer
    if state.autojoin and not ev.nodes:
        peers = {n: replace(p, links={ln: p.links.get(ln, LinkView()) for ln in links})
                 for n, p in state.peers.items()}
    local_links = {ln: state.local_links.get(ln, True) for ln in links}
    return replace(state, timing=ev.timing, links=links, peers=peers, local_links=local_links)
