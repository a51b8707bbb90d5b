"""A small XML element tree that remembers the line of every element (expat based)."""
from __future__ import annotations

import gc
from xml.parsers import expat

from hadaemon.core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, Iterator, List


class paused_gc:  # noqa: N801 - used as a function: `with paused_gc():`
    """Pause the cyclic garbage collector while building many small objects (restored after):
    a large CIB allocates hundreds of thousands of them and the collector's passes cost a third of
    the time. (A class rather than contextlib.contextmanager: contextlib costs start-up time.)"""

    def __enter__(self) -> None:
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc) -> None:
        if self.was:
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

    def iter(self, tag: str | None = None) -> Iterator[Element]:
        """This element and all below it in document order (only those named `tag` when given)."""
        stack = [self]
        while stack:
            el = stack.pop()
            if tag is None or el.tag == tag:
                yield el
            stack.extend(reversed(el.children))

    def __repr__(self) -> str:
        return f"<{self.tag} line {self.line}>"


class XmlSyntaxError(ConfigError):
    """Text that is not well-formed XML: `path:line: invalid XML: reason` (column counts from 1)."""

    def __init__(self, path: str, line: int, column: int, reason: str):
        super().__init__(path, line, f"invalid XML: {reason}")
        self.column, self.reason = column, reason


def parse_xml(text: str | bytes, path: str) -> Element:
    """Parse XML text (or bytes, honouring their encoding declaration) into Elements; malformed XML
    raises XmlSyntaxError (a ConfigError(path, line, message))."""
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
        parser.Parse(text, True)   # a str is read as the text it is (expat is told UTF-8), whatever it declares
    except expat.ExpatError as err:
        raise XmlSyntaxError(path, err.lineno, err.offset + 1, expat.ErrorString(err.code)) from None
    if not root:
        raise ConfigError(path, 1, "empty document")
    return root[0]
