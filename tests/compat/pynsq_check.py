#!/usr/bin/env python3
"""pynsq compatibility check against one nsqd.

A pynsq Writer publishes COUNT messages (PUB, MPUB and a few DPUB), waits
for every acknowledgement, then a pynsq Reader consumes them from a fresh
channel. Exit 0 when every message arrived exactly once; otherwise print
what went wrong and exit 1. The whole run is bounded by --timeout seconds.

Usage: pynsq_check.py --tcp 127.0.0.1:4150 --topic t [--count 300] [--timeout 60]
"""

import argparse
import asyncio
import logging
import sys

import tornado.ioloop

import nsq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", required=True, help="nsqd TCP address host:port")
    ap.add_argument("--http", help="nsqd HTTP address (unused, accepted for symmetry)")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--channel", default="pynsq")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="pynsq %(levelname)s %(name)s: %(message)s")
    asyncio.set_event_loop(asyncio.new_event_loop())
    loop = tornado.ioloop.IOLoop.current()

    count = args.count
    bodies = ["pynsq-%d" % i for i in range(count)]
    expected = set(bodies)
    state = {"acked": 0, "pubs_sent": False, "received": [], "result": None, "reader": None}

    def finish(ok, message):
        if state["result"] is None:
            state["result"] = (ok, message)
            loop.add_callback(loop.stop)

    def on_ack(conn, data):
        if isinstance(data, nsq.Error) or data != b"OK":
            finish(False, "publish failed: %r" % (data,))
            return
        state["acked"] += 1
        if state["acked"] == n_commands:
            start_reader()

    # A third by PUB, a third by MPUB in batches of 10, the rest PUB,
    # with the last 5 deferred by 100 ms (DPUB).
    third = count // 3
    commands = []
    for b in bodies[:third]:
        commands.append(("pub", b))
    mpub_part = bodies[third:2 * third]
    for i in range(0, len(mpub_part), 10):
        commands.append(("mpub", mpub_part[i:i + 10]))
    rest = bodies[2 * third:]
    for b in rest[:-5]:
        commands.append(("pub", b))
    for b in rest[-5:]:
        commands.append(("dpub", b))
    n_commands = len(commands)

    writer = nsq.Writer([args.tcp])

    def publish_when_connected():
        if state["pubs_sent"] or state["result"] is not None:
            return
        if not writer.conns:
            loop.call_later(0.05, publish_when_connected)
            return
        state["pubs_sent"] = True
        for kind, payload in commands:
            if kind == "pub":
                writer.pub(args.topic, payload.encode(), callback=on_ack)
            elif kind == "mpub":
                writer.mpub(args.topic, [p.encode() for p in payload], callback=on_ack)
            else:
                writer.dpub(args.topic, 100, payload.encode(), callback=on_ack)

    def handler(message):
        state["received"].append(message.body.decode())
        if message.attempts != 1:
            finish(False, "message %r has attempts %d" % (message.body, message.attempts))
        if len(state["received"]) == count:
            # Give duplicates a moment to show up, then judge.
            loop.call_later(0.5, judge)
        return True

    def judge():
        got = state["received"]
        dups = len(got) - len(set(got))
        missing = expected - set(got)
        extra = set(got) - expected
        if dups or missing or extra:
            finish(False, "received %d (duplicates %d, missing %d e.g. %r, unexpected %r)"
                   % (len(got), dups, len(missing), sorted(missing)[:5], sorted(extra)[:5]))
        else:
            finish(True, "pynsq: %d published and consumed exactly once" % count)

    def start_reader():
        state["reader"] = nsq.Reader(
            topic=args.topic,
            channel=args.channel,
            message_handler=handler,
            nsqd_tcp_addresses=[args.tcp],
            max_in_flight=100,
        )

    def on_timeout():
        finish(False, "timed out after %.0fs: %d/%d commands acknowledged, %d/%d messages received"
               % (args.timeout, state["acked"], n_commands, len(state["received"]), count))

    loop.call_later(0.05, publish_when_connected)
    loop.call_later(args.timeout, on_timeout)
    loop.start()

    ok, message = state["result"]
    print(message, file=sys.stdout if ok else sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown of live connections.
    import os
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
