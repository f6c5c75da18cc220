#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reads the memcheck logs that `make valgrind` leaves (one per daemon process, written by
daemon_argv in tests/integration/conftest.py) and fails when any of them shows a bug.

Usage: tests/valgrind-check.py DIR

A log fails when it has
  - definitely lost bytes (LEAK SUMMARY "definitely lost" above 0);
  - an invalid access anywhere: Invalid read/write/free, Mismatched free, a syscall given
    unaddressable bytes. These count wherever they happen: in OpenSSL, GnuTLS or
    libmicrohttpd they are as likely to be our misuse as theirs, and they are never
    expected noise;
  - an uninitialised-value error (Conditional jump / Use of uninitialised value / Syscall
    param ... uninitialised byte(s)) or an overlapping copy whose first frame, past the C
    library, is our code (a source file under ca/, lib/, proxy/ or webhook/, as
    --fullpath-after shows it). Reports whose first such frame is inside OpenSSL, GnuTLS,
    nettle, libmicrohttpd and the like are printed as "third-party" but do not fail: their
    constant-time and assembly code is a known source of false positives, and an
    uninitialised buffer of ours handed to them shows in our frames too as soon as our
    code or a system call (write, send) reads it back. Read them when they appear;
    suppress them in tests/valgrind.supp only once understood;
  - no end: a log without its ERROR SUMMARY belongs to a process that did not exit
    (killed, or still running), so its leaks were never checked; so does a process that
    ended on a fatal signal other than SIGTERM.
It prints each failure with its file and excerpt, then one summary line.
"""
import pathlib
import re
import sys

OURS = re.compile(r"\((?:ca|lib|proxy|webhook)/[\w.-]+\.[ch]:\d+\)")
FRAME = re.compile(r"^\s+(?:at|by) 0x[0-9A-F]+: (.*)$")
# The libraries whose own uninitialised-value reports do not count (see above); the C
# library and valgrind's replacements are neither ours nor theirs: the caller decides.
THEIRS = re.compile(r"\(in /\S*/lib(?:crypto|ssl|gnutls|nettle|hogweed|gmp|microhttpd|"
                    r"p11-kit|tasn1|idn2|unistring|yaml|jansson)[\w.-]*\.so")
INVALID = ("Invalid read", "Invalid write", "Invalid free", "Mismatched free",
           "points to unaddressable byte")
UNINIT = ("uninitialised", "Source and destination overlap")


def blocks(lines):
    """The log's paragraphs: runs of "==PID== text" lines between "==PID== " blank ones."""
    cur = []
    for line in lines:
        text = re.sub(r"^==\d+== ?", "", line.rstrip("\n"))
        if text.strip() == "":
            if cur:
                yield cur
            cur = []
        else:
            cur.append(text)
    if cur:
        yield cur


def ours(block):
    """Whether the first frame that is ours or a library's (the C library is skipped) is
    ours; a report that names neither counts as ours, to be looked at."""
    for line in block[1:]:
        m = FRAME.match(line)
        if m and OURS.search(m.group(1)):
            return True
        if m and THEIRS.search(m.group(1)):
            return False
    return True


def check(path):
    """(failures, third_party) of one log, each a list of (title, excerpt lines)."""
    lines = path.read_text(errors="replace").splitlines()
    failures, third = [], []
    ended = any("ERROR SUMMARY:" in l for l in lines)
    definite = 0
    for b in blocks(lines):
        head = b[0]
        has_frames = any(FRAME.match(l) for l in b)
        m = re.search(r"definitely lost: ([\d,]+) bytes", " ".join(b))
        if head.startswith("LEAK SUMMARY") and m:
            definite = int(m.group(1).replace(",", ""))
        if "are definitely lost" in head:
            failures.append(("definitely lost", b))
        elif has_frames and any(k in head for k in INVALID):
            failures.append((head, b))
        elif has_frames and any(k in head for k in UNINIT):
            (failures if ours(b) else third).append((head, b))
        elif head.startswith("Process terminating with default action of signal") and \
                "signal 15" not in head:
            failures.append((head, b))
    if definite and not any(t == "definitely lost" for t, _ in failures):
        failures.append(("definitely lost", [f"LEAK SUMMARY: definitely lost: {definite} bytes"
                                             " (records not shown)"]))
    if not ended:
        failures.append(("no ERROR SUMMARY: the process did not exit, leaks unchecked",
                         lines[:5]))
    return failures, third


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    logs = sorted(pathlib.Path(sys.argv[1]).glob("*.log"))
    if not logs:
        print(f"valgrind-check: no logs in {sys.argv[1]}", file=sys.stderr)
        return 1
    bad = errors = third_total = 0
    per_daemon = {}
    for log in logs:
        failures, third = check(log)
        name = log.name.split(".")[0]
        per_daemon[name] = per_daemon.get(name, 0) + 1
        third_total += len(third)
        for title, excerpt in third:
            print(f"{log}: third-party, not counted: {title}")
            print("\n".join("    " + l for l in excerpt[:12]))
        if failures:
            bad += 1
            errors += len(failures)
            for title, excerpt in failures:
                print(f"{log}: {title}")
                print("\n".join("    " + l for l in excerpt[:40]))
    who = ", ".join(f"{n} {k}" for k, n in sorted(per_daemon.items()))
    print(f"valgrind-check: {len(logs)} logs checked, one per process ({who}); {errors} errors "
          f"in {bad} logs; {third_total} third-party uninitialised-value reports not counted")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
