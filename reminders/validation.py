"""Validating the records of a patients file: in parts, and in a second process.

A large file's records are most of a sync's CPU (a phone number's check alone is half), so
from :data:`PARALLEL_RECORDS` records on a second process validates some of them:
``python -m reminders.validation`` fed by pickles through its pipes, not multiprocessing
(that would run the caller's main module again in it). One record's rules are
:func:`reminders.patients.validate_record`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Generator, Iterable, Iterator, Set
from pathlib import Path
from typing import IO, Final

from reminders.models import Schedules
from reminders.patients import (
    Outcome,
    PatientFile,
    Problem,
    read_records,
    validate_record,
)
from reminders.records import RawRecord

#: From this many records to validate on, a second process validates part of them ...
PARALLEL_RECORDS: Final = 20_000
#: ... this share: its records and results cross two pipes as pickles (a third of the
#: time validating them takes), so with halves this process waited for it.
WORKER_SHARE: Final = 0.43
#: The second process: this module run by this interpreter.
_WORKER: Final = ("-m", "reminders.validation")
#: In parts, the first (validated here while the second process starts) is this
#: fraction (1/n) of a part: the sync's first write waits for it.
FIRST_PART: Final = 4


def load_patients(path: Path, schedules: Schedules) -> PatientFile:
    """Read and validate every record; raises PatientFileError only if the file is unreadable."""
    records = read_records(path, schedules)
    return validate_records(path, records, schedules)


def validate_records(path: Path, records: Iterable[RawRecord], schedules: Schedules) -> PatientFile:
    """Validate raw records, collecting one Problem per bad field and checking ids are unique."""
    records = list(records)
    return _validate_part(path, records, _duplicated(records), schedules)


def validate_parts(
    path: Path, records: list[RawRecord], schedules: Schedules, size: int
) -> Generator[PatientFile, None, None]:
    """:func:`validate_records` in parts of ``size`` records, in file order; an id is a
    duplicate across all parts. From :data:`PARALLEL_RECORDS` records on, a second process
    validates them, a part or more ahead: a sync writes one part while the next is checked."""
    duplicates = _duplicated(records)
    file = str(path)
    two = _two_processes(records)
    # With two processes, a short first part here while the second starts on the rest.
    parts = _split(records, size // FIRST_PART if two else 0, size)
    work = [[r for r in part if r.patient_id not in duplicates] for part in parts]
    answers: Generator[list[Outcome], None, None]
    if two and len(work) > 1:
        theirs = _validated(file, work[1:], schedules)
        answers = _after(_validate_chunk(file, work[0], schedules), theirs)
    else:
        answers = (_validate_chunk(file, w, schedules) for w in work)
    with contextlib.closing(answers):  # a sync that stops early stops the second process
        for part, outcomes in zip(parts, answers, strict=True):
            yield _collect(path, part, duplicates, iter(outcomes))


def _two_processes(records: list[RawRecord]) -> bool:
    """Whether to validate ``records`` in two processes: enough of them, and two cores."""
    return len(records) >= PARALLEL_RECORDS and (os.cpu_count() or 1) >= 2


def _split(records: list[RawRecord], first: int, size: int) -> list[list[RawRecord]]:
    """``records`` in parts of ``size``, after a first one of ``first`` (when not 0)."""
    head = [records[:first]] if first else []
    return head + [records[start : start + size] for start in range(first, len(records), size)]


def _after(
    first: list[Outcome], rest: Generator[list[Outcome], None, None]
) -> Generator[list[Outcome], None, None]:
    yield first
    yield from rest  # closing this closes them


def _duplicated(records: list[RawRecord]) -> set[str]:
    """The ids more than one record has."""
    seen: set[str] = set()
    duplicates: set[str] = set()
    for record in records:
        pid = record.patient_id
        if pid is not None:
            (duplicates if pid in seen else seen).add(pid)
    return duplicates


def _validate_part(
    path: Path, records: list[RawRecord], duplicates: Set[str], schedules: Schedules
) -> PatientFile:
    checkable = [r for r in records if r.patient_id not in duplicates]
    outcomes = iter(_validate_all(str(path), checkable, schedules))
    return _collect(path, records, duplicates, outcomes)


def _collect(
    path: Path, records: list[RawRecord], duplicates: Set[str], outcomes: Iterator[Outcome]
) -> PatientFile:
    """The records' patients and problems: the outcomes of those not duplicated, in order."""
    result = PatientFile(path=path)
    for record in records:
        pid = record.patient_id
        if pid in duplicates:
            place, element = record.where("id")
            result.problems.append(
                Problem(
                    str(path), place, element, "duplicate id: every record with it is skipped", pid
                )
            )
            continue
        patient, problems = next(outcomes)
        if patient is not None:
            result.patients.append(patient)
        result.problems.extend(problems)
    return result


def _validate_all(file: str, records: list[RawRecord], schedules: Schedules) -> list[Outcome]:
    """:func:`validate_record` of each record, in order; the last part of a large file
    (:data:`WORKER_SHARE`) in a second process meanwhile (most of a large sync's CPU)."""
    if not _two_processes(records):
        return _validate_chunk(file, records, schedules)
    split = len(records) - int(len(records) * WORKER_SHARE)
    theirs = _validated(file, [records[split:]], schedules)
    first = _validate_chunk(file, records[:split], schedules)
    return first + [outcome for answer in theirs for outcome in answer]


def _validated(
    file: str, parts: list[list[RawRecord]], schedules: Schedules
) -> Generator[list[Outcome], None, None]:
    """Start a second process validating ``parts`` now; the iterator gives each part's
    outcomes in order, as the process answers them. Where the process cannot start or
    fails, the parts it did not answer are validated here.

    The second process is ``python -m reminders.validation`` fed by pickles through its
    pipes, not multiprocessing: that would run the caller's main module again in it.
    """
    try:
        worker = subprocess.Popen(  # noqa: S603  # this interpreter, a constant module
            [sys.executable, *_WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
    except OSError:
        return (_validate_chunk(file, part, schedules) for part in parts)

    def feed(pipe: IO[bytes]) -> None:
        # A pickle per part: the process starts on the first before the rest is written.
        with contextlib.suppress(OSError):  # a worker gone: the answers stop
            pickle.dump((file, schedules, len(parts)), pipe, pickle.HIGHEST_PROTOCOL)
            for part in parts:
                pickle.dump(part, pipe, pickle.HIGHEST_PROTOCOL)
                pipe.flush()
            pipe.close()

    threading.Thread(target=feed, args=(worker.stdin,), daemon=True).start()
    return _answers(worker, file, parts, schedules)


def _answers(
    worker: subprocess.Popen[bytes],
    file: str,
    parts: list[list[RawRecord]],
    schedules: Schedules,
) -> Generator[list[Outcome], None, None]:
    assert worker.stdout is not None  # noqa: S101  # asked for
    done = 0
    try:
        while done < len(parts):
            answer: list[Outcome] = pickle.load(worker.stdout)  # noqa: S301  # our own child
            done += 1
            yield answer
    except (EOFError, OSError, pickle.UnpicklingError):  # it failed: the rest here
        pass
    finally:
        if done < len(parts):
            worker.kill()  # failed, or its answers are no longer wanted
        with worker:  # closes both pipes and waits
            pass
    for part in parts[done:]:
        yield _validate_chunk(file, part, schedules)


def _validate_chunk(file: str, records: list[RawRecord], schedules: Schedules) -> list[Outcome]:
    return [validate_record(file, record, schedules) for record in records]


if __name__ == "__main__":  # the second process of _validated: one answer per part, as done
    import queue

    from reminders.validation import _validate_chunk as _chunk

    _file, _schedules, _count = pickle.load(sys.stdin.buffer)  # noqa: S301  # from our parent
    # A thread writes the answers, so that validating runs ahead of a parent still busy
    # with the last part (the pipe holds 64 KiB; a part's answer is megabytes).
    _answers_out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def _write() -> None:
        while (data := _answers_out.get()) is not None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    _writer = threading.Thread(target=_write, daemon=True)
    _writer.start()
    for _ in range(_count):
        _part = pickle.load(sys.stdin.buffer)  # noqa: S301  # from our parent
        _answers_out.put(pickle.dumps(_chunk(_file, _part, _schedules), pickle.HIGHEST_PROTOCOL))
    _answers_out.put(None)
    _writer.join()
