"""Where a read buffer starts: the kernel's copy into it over loopback TCP, by offset.

Run: python bench/recv_alignment.py [--rounds 5] [--messages 1000] [--size 131072]

One process sends SIZE-byte messages to itself over a loopback TCP connection and reads each
back with ``recv_into`` into a view that starts OFFSET bytes past a page boundary (offsets 0
to 56 in steps of 8, and 4112: a page plus 16). The buffer is an anonymous mapping, so the
offset is exactly known. Reported: microseconds per message (medians over rounds, rounds
interleaved) and each offset's time as a ratio to offset 0's. This is why sample_server's read
buffer is page-aligned rather than a bytearray placed wherever malloc put it (malloc gives 16-byte
alignment only).
"""

from __future__ import annotations

import argparse
import mmap
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import invocation, machine_line, median, publish

OFFSETS = (0, 8, 16, 24, 32, 40, 48, 56, 4112)


def per_message(offset: int, size: int, messages: int) -> float:
    """Microseconds to send and read back one *size*-byte message into a buffer at *offset*."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
    with sender, receiver:
        out = memoryview(mmap.mmap(-1, size + 4096))[:size]
        into = memoryview(mmap.mmap(-1, 2 * size + 8192))[offset : offset + 2 * size]
        start = time.perf_counter()
        for _ in range(messages):
            sender.sendall(out)
            got = 0
            while got < size:
                got += receiver.recv_into(into)
        return (time.perf_counter() - start) / messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=131072)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})  # sender and reader on one core: the copy, not the wait
    times: dict[int, list[float]] = {offset: [] for offset in OFFSETS}
    for _ in range(args.rounds):
        for offset in OFFSETS:
            times[offset].append(per_message(offset, args.size, args.messages))
    base = median(times[0])
    rows = ["| buffer starts at page + | µs per message | vs page-aligned |", "|---:|---:|---:|"]
    for offset in OFFSETS:
        value = median(times[offset])
        rows.append(f"| {offset} | {value:.1f} | {value / base:.2f}× |")
    intro = (
        f"`{invocation('recv_alignment.py')}`; {machine_line()}. {args.size // 1024} KiB "
        f"messages over loopback TCP, {args.messages} per round, {args.rounds} rounds, medians."
    )
    publish("Read buffer alignment (bench/recv_alignment.py)", intro, rows, not args.no_record)


if __name__ == "__main__":
    main()
