#!/usr/bin/env python3
"""pynsq compatibility check of nsqd's connection upgrades: TLS (after
IDENTIFY tls_v1), snappy and deflate, alone or TLS plus one of them.

CHANNELS pynsq Readers subscribe to channels CHANNEL0..CHANNELn-1 of TOPIC
with the chosen upgrades; once /stats shows each of them connected with
exactly those upgrades (tls, snappy, deflate), a pynsq Writer with the same
upgrades publishes COUNT messages (PUB and MPUB; small, large and
incompressible bodies) and waits for every acknowledgement, and /stats must
show that producer with the same upgrades. Every channel must then receive
every message exactly once, byte for byte. Exit 0 on success; otherwise
print what went wrong and exit 1. The whole run is bounded by --timeout.

TLS verifies the server certificate against --ca (tls_options ca_certs,
pynsq's default cert_reqs=CERT_REQUIRED); --cert/--key present a client
certificate. snappy needs the python-snappy package.

pynsq 0.9.1's SnappySocket/DeflateSocket close the connection under
tornado 6 whenever one socket read decompresses to nothing (a partial
snappy frame, or only the end of a deflate sync flush): they raise
socket.error(EWOULDBLOCK) with no message, which is not a BlockingIOError,
so tornado takes it for a read error (nsqio/pynsq#258, open; the same
against nsqd v1.3.0). Large bodies make such reads likely, so compressed
runs use --small: short bodies only.

Usage: pynsq_tls_check.py --tcp 127.0.0.1:4150 --http 127.0.0.1:4151 --topic t
         [--channel pynsq] [--channels 1] [--count 200] [--timeout 60]
         [--tls --ca ca.pem [--cert client.pem --key client.key]]
         [--snappy] [--deflate] [--deflate-level 6] [--small]
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import urllib.parse
import urllib.request

import tornado.ioloop

import nsq


def body(i, layers, small):
    """Body i: b"m<i>:" then a filler. Every 20th is 70 000 pseudo-random
    (incompressible) bytes, every 20th + 10 is 70 000 repetitive bytes (both
    span several snappy chunks and deflate blocks), the rest are short; with
    `small` all are short."""
    head = b"m%d:" % i
    if not small and i % 20 == 0:
        x = (i * 2654435761 + 1) & 0xFFFFFFFF
        out = bytearray(70000)
        for j in range(len(out)):
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            out[j] = x & 0xFF
        return head + bytes(out)
    if not small and i % 20 == 10:
        return head + b"nsq compressed " * 4667
    return head + ("pynsq %s message %d " % (layers, i)).encode() * (1 + i % 7)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", required=True, help="nsqd TCP address host:port")
    ap.add_argument("--http", required=True, help="nsqd HTTP address host:port")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--channel", default="pynsq")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--snappy", action="store_true")
    ap.add_argument("--deflate", action="store_true")
    ap.add_argument("--deflate-level", type=int, default=6)
    ap.add_argument("--small", action="store_true",
                    help="short bodies only (see pynsq's compression bug above)")
    args = ap.parse_args()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="pynsq %(levelname)s %(name)s: %(message)s")
    asyncio.set_event_loop(asyncio.new_event_loop())
    loop = tornado.ioloop.IOLoop.current()

    layers = "+".join(name for name, on in
                      (("tls", args.tls), ("snappy", args.snappy), ("deflate", args.deflate))
                      if on) or "plain"
    conn_kwargs = {
        "snappy": args.snappy,
        "deflate": args.deflate,
        "deflate_level": args.deflate_level,
    }
    if args.tls:
        tls_options = {"ca_certs": args.ca}
        if args.cert:
            tls_options["certfile"] = args.cert
            tls_options["keyfile"] = args.key
        conn_kwargs["tls_v1"] = True
        conn_kwargs["tls_options"] = tls_options

    count = args.count
    bodies = [body(i, layers, args.small) for i in range(count)]
    channels = ["%s%d" % (args.channel, j) for j in range(args.channels)]
    received = {c: set() for c in channels}
    state = {"acked": 0, "producer_checked": False, "all_received": False,
             "result": None, "readers": [], "writer": None, "pubs_sent": False}

    def finish(ok, message):
        if state["result"] is None:
            state["result"] = (ok, message)
            loop.add_callback(loop.stop)

    def progress():
        return ", ".join("%s: %d/%d" % (c, len(received[c]), count) for c in channels)

    def get_stats():
        url = "http://%s/stats?format=json&topic=%s" % (
            args.http, urllib.parse.quote(args.topic))
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.loads(resp.read().decode())
        except Exception as e:
            finish(False, "GET /stats: %r" % (e,))
            return {}

    def layer_mismatch(client):
        for key, want in (("tls", args.tls), ("snappy", args.snappy),
                          ("deflate", args.deflate)):
            if client.get(key) is not want:
                return "%s is %r, expected %r" % (key, client.get(key), want)
        if args.tls and not client.get("tls_version"):
            return "tls without tls_version"
        return None

    # 1. Readers first, so every channel exists before the first PUB.
    def handler_for(channel):
        def handler(message):
            head = message.body[:16]
            try:
                i = int(head[1:head.index(b":")])
            except ValueError:
                i = -1
            if not (head[:1] == b"m" and 0 <= i < count and message.body == bodies[i]):
                finish(False, "%s: unexpected body of %d bytes starting %r"
                       % (channel, len(message.body), head))
                return True
            if message.attempts != 1:
                finish(False, "%s: message %d has attempts %d" % (channel, i, message.attempts))
            if i in received[channel]:
                finish(False, "%s: message %d delivered twice" % (channel, i))
            received[channel].add(i)
            if all(len(received[c]) == count for c in channels):
                # Give duplicates a moment to show up.
                loop.call_later(0.5, all_received)
            return True
        return handler

    for channel in channels:
        state["readers"].append(nsq.Reader(
            topic=args.topic,
            channel=channel,
            message_handler=handler_for(channel),
            nsqd_tcp_addresses=[args.tcp],
            max_in_flight=100,
            **conn_kwargs
        ))

    # 2. Wait until /stats shows each channel with one client, upgraded as asked.
    def wait_for_readers():
        if state["result"] is not None:
            return
        stats = get_stats()
        topic = next((t for t in stats.get("topics") or []
                      if t["topic_name"] == args.topic), None)
        ready = [c for c in (topic or {}).get("channels") or []
                 if c["channel_name"] in channels and len(c.get("clients") or []) == 1]
        if len(ready) < len(channels):
            loop.call_later(0.1, wait_for_readers)
            return
        for c in ready:
            wrong = layer_mismatch(c["clients"][0])
            if wrong:
                finish(False, "stats: consumer on %s: %s: %s"
                       % (c["channel_name"], wrong, json.dumps(c["clients"][0])))
                return
        state["writer"] = nsq.Writer([args.tcp], **conn_kwargs)
        loop.call_later(0.05, publish_when_connected)

    # 3. Publish: a third by PUB, the rest by MPUB in batches of 10.
    third = count // 3
    commands = [("pub", b) for b in bodies[:third]]
    for i in range(third, count, 10):
        commands.append(("mpub", bodies[i:i + 10]))

    def publish_when_connected():
        writer = state["writer"]
        if state["pubs_sent"] or state["result"] is not None:
            return
        if not writer.conns:
            loop.call_later(0.05, publish_when_connected)
            return
        state["pubs_sent"] = True
        for kind, payload in commands:
            if kind == "pub":
                writer.pub(args.topic, payload, callback=on_ack)
            else:
                writer.mpub(args.topic, payload, callback=on_ack)

    def on_ack(conn, data):
        if isinstance(data, nsq.Error) or data != b"OK":
            finish(False, "publish failed: %r" % (data,))
            return
        state["acked"] += 1
        if state["acked"] == len(commands):
            check_producer()

    # 4. The Writer's connection is still open: /stats lists it as a producer.
    def check_producer():
        # Producers of this topic (nsqd keeps only its pub_counts with ?topic=).
        producers = [p for p in get_stats().get("producers") or [] if p.get("pub_counts")]
        if len(producers) != 1:
            finish(False, "stats: %d producers, expected 1: %s"
                   % (len(producers), json.dumps(producers)))
            return
        wrong = layer_mismatch(producers[0])
        if wrong:
            finish(False, "stats: producer: %s: %s" % (wrong, json.dumps(producers[0])))
            return
        state["producer_checked"] = True
        maybe_succeed()

    def all_received():
        state["all_received"] = True
        maybe_succeed()

    def maybe_succeed():
        if state["producer_checked"] and state["all_received"]:
            finish(True, "pynsq %s: %d messages, each received once on each of %d "
                   "channel(s), bodies identical; /stats showed the upgrades"
                   % (layers, count, len(channels)))

    def on_timeout():
        finish(False, "pynsq %s: timed out after %.0fs: %d/%d commands acknowledged; "
               "received %s" % (layers, args.timeout, state["acked"], len(commands),
                                progress()))

    loop.call_later(0.05, wait_for_readers)
    loop.call_later(args.timeout, on_timeout)
    loop.start()

    ok, message = state["result"]
    print(message, file=sys.stdout if ok else sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown of live connections.
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
