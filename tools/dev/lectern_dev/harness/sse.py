"""The one server-sent-events reader of the tests and benchmarks: `event:`/`id:`/`data:` blocks
(JSON data) as they arrive, comment lines (keep-alives) skipped."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    id: int
    event: str
    data: dict


def frame_fields(lines: Iterable[str]) -> dict[str, str]:
    """The fields of one event block; comment lines (`: keep-alive`) carry none."""
    fields: dict[str, str] = {}
    for line in lines:
        if line and not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
    return fields


def _event(fields: dict[str, str]) -> Event:
    return Event(
        id=int(fields.get("id", "0")),
        event=fields.get("event", "message"),
        data=json.loads(fields["data"]),
    )


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from a stream's lines (e.g. `response.iter_lines()`), each as soon as its block
    ends; blocks without data (keep-alive comments) are skipped."""
    block: list[str] = []
    for line in lines:
        if line == "":
            if "data" in (fields := frame_fields(block)):
                yield _event(fields)
            block = []
        else:
            block.append(line)
    if "data" in (fields := frame_fields(block)):
        yield _event(fields)


def parse_text(body: str) -> list[Event]:
    """Every event of a whole stream body."""
    return list(parse(body.replace("\r\n", "\n").split("\n")))
