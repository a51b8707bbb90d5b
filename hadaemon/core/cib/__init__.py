"""The CIB: Pacemaker XML loaded into an immutable model (configuration and status)."""
from hadaemon.core.cib.loader import load_cib, parse_cib, parse_interval_ms
from hadaemon.core.cib.model import (
    Cib, Colocation, Expression, Group, Location, LrmOp, LrmResource, Node, NodeState, NvSet, Op,
    Order, Primitive, Rule,
)
from hadaemon.core.cib.scores import INFINITY, add_scores, parse_score, score_text

__all__ = [
    "Cib", "Colocation", "Expression", "Group", "INFINITY", "Location", "LrmOp", "LrmResource",
    "Node", "NodeState", "NvSet", "Op", "Order", "Primitive", "Rule", "add_scores", "load_cib",
    "parse_cib", "parse_interval_ms", "parse_score", "score_text",
]
