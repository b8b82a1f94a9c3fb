#!/usr/bin/env python3
"""Parse nsqd's GET /metrics with a real Prometheus text parser and check
it against GET /stats?format=json taken right after.

Uses prometheus_client's parser (PyPI), the one Python exporters and
tooling use. Checks:
  * the exposition parses, every family has HELP and a known TYPE;
  * each topic's and channel's counts and depths equal /stats';
  * e2e summaries carry the configured quantiles when --quantiles is given;
  * the per-shard messages_in add up to the topics' message counts.
Exit 0 when everything agrees, else print the differences and exit 1.

Usage: prom_check.py --http 127.0.0.1:4151 [--quantiles 0.5,0.99]
"""

import argparse
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True)
    ap.add_argument("--quantiles", default="")
    args = ap.parse_args()

    ctype, text = fetch(f"http://{args.http}/metrics")
    _, stats_text = fetch(f"http://{args.http}/stats?format=json")
    stats = json.loads(stats_text)
    errors = []
    if not ctype.startswith("text/plain; version=0.0.4"):
        errors.append(f"content type {ctype!r}")

    samples = {}
    families = 0
    for family in text_string_to_metric_families(text):
        families += 1
        if family.type not in ("counter", "gauge", "summary", "histogram"):
            errors.append(f"{family.name}: type {family.type}")
        if not family.documentation:
            errors.append(f"{family.name}: no HELP")
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            samples[key] = s.value

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))))

    def expect(name, want, **labels):
        got = value(name, **labels)
        if got is None or float(got) != float(want):
            errors.append(f"{name}{labels}: /metrics {got}, /stats {want}")

    total_in = 0
    for t in stats["topics"] or []:
        topic = t["topic_name"]
        total_in += t["message_count"]
        expect("nsqd_topic_messages_total", t["message_count"], topic=topic)
        expect("nsqd_topic_message_bytes_total", t["message_bytes"], topic=topic)
        expect("nsqd_topic_depth", t["depth"], topic=topic)
        expect("nsqd_topic_backend_depth", t["backend_depth"], topic=topic)
        expect("nsqd_topic_paused", int(t["paused"]), topic=topic)
        for c in t["channels"]:
            labels = {"topic": topic, "channel": c["channel_name"]}
            expect("nsqd_channel_messages_total", c["message_count"], **labels)
            expect("nsqd_channel_depth", c["depth"], **labels)
            expect("nsqd_channel_backend_depth", c["backend_depth"], **labels)
            expect("nsqd_channel_in_flight", c["in_flight_count"], **labels)
            expect("nsqd_channel_deferred", c["deferred_count"], **labels)
            expect("nsqd_channel_requeues_total", c["requeue_count"], **labels)
            expect("nsqd_channel_timeouts_total", c["timeout_count"], **labels)
            expect("nsqd_channel_clients", c["client_count"], **labels)
            expect("nsqd_channel_paused", int(c["paused"]), **labels)
            for q in filter(None, args.quantiles.split(",")):
                for p in c["e2e_processing_latency"]["percentiles"] or []:
                    if abs(p["quantile"] - float(q)) < 1e-9:
                        got = value(
                            "nsqd_channel_e2e_processing_latency_seconds",
                            quantile=q,
                            **labels,
                        )
                        if got is None:
                            errors.append(f"no e2e quantile {q} for {labels}")
                        elif abs(got - p["value"] / 1e9) > 1e-9 + 0.05 * got:
                            errors.append(f"e2e {q} {labels}: {got} vs {p['value']} ns")
            if args.quantiles:
                n = value("nsqd_channel_e2e_processing_latency_seconds_count", **labels)
                if n is None or n < c["e2e_processing_latency"]["count"]:
                    errors.append(f"e2e _count {n} for {labels}")

    shard_in = sum(
        v for (name, _), v in samples.items() if name == "nsqd_shard_messages_in_total"
    )
    if shard_in != total_in:
        errors.append(f"shards' messages_in {shard_in} != topics' {total_in}")
    for name in ("process_resident_memory_bytes", "process_open_fds", "nsqd_health"):
        if value(name) is None:
            errors.append(f"{name} missing")

    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"ok: {families} families, {len(samples)} samples agree with /stats")


if __name__ == "__main__":
    main()
