#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/runtime/ (see fuzz/README.md for
the input format). Run it after changing the format in runtime_fuzzer.cc:
    python3 fuzz/make_runtime_seeds.py fuzz/corpus/runtime
"""
import os
import sys

# Step kinds (low nibble of a step's first byte; the high nibble is the slot).
INLINE, SPAWN, EAGER, SPAWN_ON, JOIN, DETACH, DROP, STOP, YIELD, SLEEP, \
    SEND, RUNTIME_STOP, SPAWN_TWICE = range(13)
# Body kinds (the step's second byte for INLINE, SPAWN, EAGER, SPAWN_ON).
(NOPS, SLEEP_B, FILE_WRITE, FILE_READ, SEND_B, RECV, RECV_TIMEOUT, MULTISHOT,
 FS_FILE, SUBMIT_VALUE, SUBMIT_TASK, SUBMIT_THROW, POST_BURST, BLOCKING,
 BATCH_TUPLE, BATCH_SPAN, CHAIN_WRITE_READ, CHAIN_FAIL_HEAD, CHAIN_SPAN,
 STOPPED_TOKEN, YIELD_B, CANCEL_OP, SHUTDOWN_SIDE, NESTED) = range(24)


def step(kind, slot=0, a=0, b=0, c=0):
    return bytes([(slot << 4) | kind, a, b, c])


def program(config, *steps):
    return bytes([config]) + b"".join(steps)


SEEDS = {
    # Every plain op, inline in the program.
    "ops_inline": program(
        0,
        step(INLINE, a=NOPS, b=3, c=1),
        step(INLINE, a=SLEEP_B, b=40),
        step(INLINE, a=FILE_WRITE, b=10, c=100),
        step(INLINE, a=FILE_READ, b=100, c=10),
        step(INLINE, a=FS_FILE, b=0, c=20),
        step(INLINE, a=FS_FILE, b=1, c=20),
        step(INLINE, a=FS_FILE, b=2, c=30),
        step(INLINE, a=FS_FILE, b=3, c=30),
        step(INLINE, a=STOPPED_TOKEN, b=0, c=0),
        step(INLINE, a=STOPPED_TOKEN, b=0, c=1),
        step(INLINE, a=YIELD_B, b=5),
        step(INLINE, a=CANCEL_OP, b=0, c=1),
        step(SLEEP, a=100),
        step(YIELD, a=3),
    ),
    # The fs::File registered in the fixed-file table.
    "fixed_file": program(
        1,
        step(INLINE, a=FS_FILE, b=0, c=7),
        step(INLINE, a=FS_FILE, b=1, c=7),
        step(SPAWN, 1, a=FS_FILE, b=2, c=90),
        step(SPAWN, 2, a=FS_FILE, b=3, c=90),
        step(JOIN, 1),
        step(JOIN, 2),
    ),
    # Sends and receives on the socket pair, multishot with a small ring.
    "sockets": program(
        0,
        step(SPAWN, 0, a=RECV, b=1, c=50),
        step(SEND, a=0, b=0, c=20),
        step(JOIN, 0),
        step(SPAWN, 1, a=MULTISHOT, b=0b0000_0010, c=0b0000_0110),
        step(SEND, b=1, c=200),
        step(SEND, b=1, c=30),
        step(SEND, b=1, c=60),
        step(SLEEP, a=200),
        step(INLINE, a=RECV_TIMEOUT, b=0, c=100),
        step(STOP, 1, a=0),
        step(JOIN, 1),
        step(SPAWN, 2, a=SEND_B, b=0, c=255),
        step(INLINE, a=RECV_TIMEOUT, b=1, c=255),
        step(JOIN, 2),
    ),
    # A dry buffer ring: one buffer, held, so the stream parks; a stop ends it.
    "multishot_dry": program(
        0,
        step(SPAWN, 3, a=MULTISHOT, b=0b0000_0000, c=0b0011_1010),
        step(SEND, b=1, c=10),
        step(YIELD, a=3),
        step(SEND, b=1, c=10),
        step(SEND, b=1, c=10),
        step(SLEEP, a=150),
        step(STOP, 3, a=1),
        step(JOIN, 3),
        step(SPAWN, 4, a=MULTISHOT, b=0b0000_0111, c=0b1000_0001),
        step(SEND, b=0, c=100),
        step(SLEEP, a=100),
        step(DETACH, 4),
    ),
    # Cancellation: eager frames dropped mid-op, stops from everywhere.
    "cancel_drop": program(
        0,
        step(EAGER, 2, a=RECV, b=0, c=8),
        step(YIELD, a=1),
        step(DROP, 2),
        step(EAGER, 3, a=SLEEP_B, b=255),
        step(DROP, 3),
        step(EAGER, 4, a=MULTISHOT, b=1, c=0),
        step(SEND, b=0, c=5),
        step(DROP, 4),
        step(SPAWN, 5, a=RECV, b=1, c=8),
        step(STOP, 5, a=1),
        step(JOIN, 5),
        step(SPAWN, 6, a=RECV, b=0, c=8),
        step(STOP, 6, a=2),
        step(JOIN, 6),
        step(SPAWN, 7, a=RECV, b=1, c=8),
        step(STOP, 7, a=3),
        step(JOIN, 7),
        step(EAGER, 0, a=RECV, b=1, c=8),
        step(STOP, 0, a=4),
        step(SPAWN, 1, a=NESTED, b=RECV, c=3),
        step(JOIN, 1, a=1),
    ),
    # Shard-to-shard messages and tasks, the blocking pool.
    "cross_shard": program(
        0,
        step(INLINE, a=SUBMIT_VALUE, b=7, c=0),
        step(INLINE, a=SUBMIT_VALUE, b=9, c=1),
        step(INLINE, a=SUBMIT_TASK, b=5, c=FILE_WRITE),
        step(INLINE, a=SUBMIT_THROW, b=0, c=0),
        step(INLINE, a=POST_BURST, b=7, c=0x55),
        step(INLINE, a=BLOCKING, b=3),
        step(SPAWN_ON, 0, a=RECV, b=0, c=40),
        step(SEND, b=1, c=40),
        step(JOIN, 0),
        step(SPAWN_ON, 1, a=SLEEP_B, b=200),
        step(SPAWN_ON, 2, a=POST_BURST, b=7, c=0xAA),
        step(SPAWN_ON, 3, a=MULTISHOT, b=3, c=2),
        step(SEND, b=1, c=100),
        step(STOP, 3, a=0),
        step(JOIN, 1),
        step(JOIN, 2),
        step(JOIN, 3),
    ),
    # batch() and chain() in their tuple and span forms.
    "batches_chains": program(
        0,
        step(INLINE, a=BATCH_TUPLE, b=20, c=40),
        step(INLINE, a=BATCH_SPAN, b=19, c=0),
        step(INLINE, a=BATCH_SPAN, b=12, c=1),
        step(INLINE, a=CHAIN_WRITE_READ, b=77, c=200),
        step(INLINE, a=CHAIN_FAIL_HEAD, b=10),
        step(INLINE, a=CHAIN_SPAN, b=3),
        step(INLINE, a=CHAIN_SPAN, b=11),
        step(SPAWN_TWICE, 0, a=BATCH_SPAN, b=19, c=1),
        step(SPAWN_TWICE, 2, a=CHAIN_WRITE_READ, b=1, c=255),
        step(JOIN, 0),
        step(JOIN, 1),
        step(JOIN, 2),
        step(JOIN, 3),
    ),
    # Runtime::stop() with ops in flight on both shards.
    "shutdown": program(
        0,
        step(SPAWN, 0, a=RECV, b=0, c=8),
        step(SPAWN, 1, a=MULTISHOT, b=2, c=4),
        step(SPAWN_ON, 2, a=RECV, b=1, c=8),
        step(SPAWN_ON, 3, a=SLEEP_B, b=255),
        step(EAGER, 4, a=RECV, b=1, c=16),
        step(SPAWN, 5, a=POST_BURST, b=7),
        step(SEND, b=1, c=50),
        step(RUNTIME_STOP),
        step(SPAWN, 6, a=BATCH_SPAN, b=19, c=1),
        step(SEND, b=0, c=10),
        step(INLINE, a=SUBMIT_TASK, b=1, c=SLEEP_B),
    ),
    # A socket side shut down: EOF for the receivers, EPIPE for the senders.
    "shutdown_side": program(
        0,
        step(SPAWN, 0, a=MULTISHOT, b=1, c=0),
        step(SPAWN, 1, a=RECV, b=0, c=30),
        step(SEND, b=1, c=3),
        step(INLINE, a=SHUTDOWN_SIDE, b=1),
        step(INLINE, a=SEND_B, b=1, c=3),
        step(INLINE, a=SHUTDOWN_SIDE, b=0),
        step(JOIN, 0),
        step(JOIN, 1),
        step(INLINE, a=CANCEL_OP, b=0, c=0),
    ),
    # Reproducers of findings (see fuzz/README.md). Destroying an eager frame
    # whose recv completed in the same loop turn: its wake-up is already in
    # the ready queue, and the shard resumes the freed frame.
    "bug-drop-after-wakeup": program(
        0,
        step(EAGER, 4, a=RECV, b=1, c=0),
        step(SEND, b=0, c=4),
        step(DROP, 4),
    ),
    # Destroying an eager frame suspended in post_to() (the queue to shard 1
    # is full): the outbox keeps its handle and resumes the freed frame.
    "bug-drop-in-post-outbox": program(
        0,
        step(EAGER, 4, a=POST_BURST, b=7, c=0),
        step(DROP, 4),
        step(SLEEP, a=200),
    ),
    # Runtime::stop() while the program goes on sending spawn_on messages
    # to shard 1: a message that reaches shard 1's queue after shard 1 shut
    # down outlives stop() (destroyed only by ~Runtime). Timing-dependent:
    # replay it with -runs=20.
    "bug-stop-strands-messages": program(
        0,
        step(RUNTIME_STOP),
        *[s for i in range(31)
          for s in (step(YIELD, a=0), step(SPAWN_ON, i % 8, a=NOPS))],
    ),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "corpus", "runtime")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
