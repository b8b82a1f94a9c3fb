#!/usr/bin/env python3
"""pynsq Writer left idle: it must stay connected across heartbeats.

A pynsq Writer (a producer: it never subscribes) connects with a 1 s
heartbeat interval and stays idle for --idle seconds. nsqd sends heartbeats
to producer connections too; pynsq answers each with NOP. Exit 0 when the
writer saw at least --idle - 2 heartbeats, its connection was never closed,
and a publish after the idle period is acknowledged; otherwise print what
went wrong and exit 1. Bounded by --timeout seconds.

Usage: pynsq_idle_writer.py --tcp 127.0.0.1:4150 --topic t [--idle 5] [--timeout 30]
"""

import argparse
import asyncio
import logging
import os
import sys

import tornado.ioloop

import nsq
from nsq import event


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--idle", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="pynsq %(levelname)s %(name)s: %(message)s")
    asyncio.set_event_loop(asyncio.new_event_loop())
    loop = tornado.ioloop.IOLoop.current()
    state = {"heartbeats": 0, "closes": 0, "conns": set(), "result": None}

    def finish(ok, message):
        if state["result"] is None:
            state["result"] = (ok, message)
            loop.add_callback(loop.stop)

    writer = nsq.Writer([args.tcp], heartbeat_interval=1)

    def watch():
        # Attach to the connection once the writer has it.
        if not writer.conns:
            loop.call_later(0.05, watch)
            return
        for conn in writer.conns.values():
            state["conns"].add(id(conn))
            conn.on(event.HEARTBEAT, on_heartbeat)
            conn.on(event.CLOSE, on_close)
        loop.call_later(args.idle, after_idle)

    def on_heartbeat(conn, **kwargs):
        state["heartbeats"] += 1

    def on_close(conn, **kwargs):
        state["closes"] += 1

    def after_idle():
        want = int(args.idle) - 2
        if state["closes"]:
            finish(False, "the idle writer's connection was closed %d time(s) after %d heartbeats"
                   % (state["closes"], state["heartbeats"]))
            return
        if state["heartbeats"] < want:
            finish(False, "only %d heartbeats in %.0f s idle (want >= %d)"
                   % (state["heartbeats"], args.idle, want))
            return
        writer.pub(args.topic, b"after idle", callback=on_ack)

    def on_ack(conn, data):
        if isinstance(data, nsq.Error) or data != b"OK":
            finish(False, "publish after idle failed: %r" % (data,))
        elif id(conn) not in state["conns"]:
            finish(False, "publish went over a new connection: the old one was dropped")
        else:
            finish(True, "pynsq writer: %d heartbeats while idle, still connected, publish OK"
                   % state["heartbeats"])

    loop.call_later(0.05, watch)
    loop.call_later(args.timeout, lambda: finish(False, "timed out after %.0fs" % args.timeout))
    loop.start()

    ok, message = state["result"]
    print(message, file=sys.stdout if ok else sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
