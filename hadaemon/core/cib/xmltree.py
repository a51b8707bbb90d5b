"""A small XML element tree that remembers the line of every element (expat based)."""
from __future__ import annotations

import contextlib
import gc
from typing import Dict, Iterator, List
from xml.parsers import expat

from hadaemon.core.errors import ConfigError


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects (restored after):
    a large CIB allocates hundreds of thousands of them and the collector's passes cost a third of
    the time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Element:
    """One XML element: tag, attributes, children and the line it starts on."""

    __slots__ = ("tag", "attrib", "children", "line")

    def __init__(self, tag: str, attrib: Dict[str, str], line: int):
        self.tag = tag
        self.attrib = attrib
        self.children: List[Element] = []
        self.line = line

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrib.get(name, default)

    def find(self, tag: str) -> Element | None:
        for child in self.children:
            if child.tag == tag:
                return child
        return None

    def findall(self, tag: str) -> List[Element]:
        return [c for c in self.children if c.tag == tag]

    def __repr__(self) -> str:
        return f"<{self.tag} line {self.line}>"


def parse_xml(text: str, path: str) -> Element:
    """Parse XML text into Elements; errors become ConfigError(path, line, message)."""
    parser = expat.ParserCreate()
    stack: List[Element] = []
    root: List[Element] = []

    def start(tag, attrs):
        el = Element(tag, attrs, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(el)
        else:
            root.append(el)
        stack.append(el)

    def end(tag):
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        if isinstance(text, str):
            text = text.encode("utf-8")
        parser.Parse(text, True)
    except expat.ExpatError as err:
        raise ConfigError(path, err.lineno, f"invalid XML: {expat.ErrorString(err.code)}") from None
    if not root:
        raise ConfigError(path, 1, "empty document")
    return root[0]
