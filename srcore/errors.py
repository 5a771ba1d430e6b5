"""Reading why something failed: the chain of exceptions behind one."""
from __future__ import annotations

from collections.abc import Iterator


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """exc, then what it was raised from or during (its __cause__ or __context__), and so on;
    each exception once, so a cycle ends the walk."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
