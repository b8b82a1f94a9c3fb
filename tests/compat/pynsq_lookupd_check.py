#!/usr/bin/env python3
"""pynsq Reader that discovers nsqd through nsqlookupd (for tests/tests/cluster.rs).

Consumes TOPIC/CHANNEL from every producer the given lookupds list (polled
every second) and prints one line "MSG <attempts> <body>" per message,
flushed at once; the Rust test publishes and checks what arrives. Exits 0
when stdin reaches EOF (the test closes it), 1 after --timeout seconds.

Usage: pynsq_lookupd_check.py --lookupd http://127.0.0.1:4161 [--lookupd ...]
                              --topic t [--channel c] [--timeout 120]
"""

import argparse
import asyncio
import logging
import os
import sys
import threading

import tornado.ioloop

import nsq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lookupd", action="append", required=True,
                    help="nsqlookupd HTTP address (repeatable)")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--channel", default="pynsq")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="pynsq %(levelname)s %(name)s: %(message)s")
    asyncio.set_event_loop(asyncio.new_event_loop())
    loop = tornado.ioloop.IOLoop.current()
    state = {"code": None}

    def finish(code, message):
        if state["code"] is None:
            state["code"] = code
            print(message, file=sys.stderr, flush=True)
            loop.add_callback(loop.stop)

    def handler(message):
        sys.stdout.write("MSG %d %s\n" % (message.attempts, message.body.decode()))
        sys.stdout.flush()
        return True

    nsq.Reader(
        topic=args.topic,
        channel=args.channel,
        message_handler=handler,
        lookupd_http_addresses=args.lookupd,
        lookupd_poll_interval=1,
        lookupd_poll_jitter=0.1,
        max_in_flight=100,
    )

    def watch_stdin():
        sys.stdin.read()
        loop.add_callback(finish, 0, "pynsq: stdin closed, exiting")

    threading.Thread(target=watch_stdin, daemon=True).start()
    loop.call_later(args.timeout, finish, 1, "pynsq: timed out after %.0fs" % args.timeout)
    loop.start()
    sys.stdout.flush()
    os._exit(state["code"] or 0)


if __name__ == "__main__":
    main()
