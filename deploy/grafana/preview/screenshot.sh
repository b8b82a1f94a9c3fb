#!/usr/bin/env bash
# Regenerates docs/monitoring.png: the panels of deploy/grafana/nsqd.json on a
# live nsqd under a ~60 s workload, rendered by preview.py and captured with
# headless Chromium. No Grafana or Prometheus needed.
#
#   cargo build --release -p nsq-broker -p nsq-loadgen
#   apt-get install -y chromium          # Debian; or set CHROMIUM=...
#   deploy/grafana/preview/screenshot.sh
#
# Environment: BIN (directory holding nsqd and loadgen) [target/release],
# OUT [docs/monitoring.png], WORK (scratch directory) [/tmp/nsqd-preview],
# PORT_BASE (nsqd TCP port; HTTP is +1, HTTPS +2) [26150], CHROMIUM [chromium].
#
# Workload (all on one nsqd, 127.0.0.1):
#   topic orders  : 6000 msg/s of 300 B for 60 s, +6000 msg/s for 12 s from t=20 s;
#                   channel billing (2 loadgen consumers, FIN everything),
#                   channel audit (a flaky worker: FINs, REQs 5 % with a 3 s
#                   delay, never answers 0.2 %, so they time out after 5 s)
#   topic events  : 2500 msg/s of 512 B from t=6 s to t=40 s; channel archive
#                   has no consumer until t=44 s, so it overflows the 10000
#                   message memory queue to disk, then a consumer drains it.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
OUT=${OUT:-$ROOT/docs/monitoring.png}
WORK=${WORK:-/tmp/nsqd-preview}
PORT_BASE=${PORT_BASE:-26150}
CHROMIUM=${CHROMIUM:-chromium}
TCP=127.0.0.1:$PORT_BASE
HTTP=127.0.0.1:$((PORT_BASE + 1))
HTTPS=127.0.0.1:$((PORT_BASE + 2))

for b in "$BIN/nsqd" "$BIN/loadgen"; do
    [ -x "$b" ] || { echo "missing $b (cargo build --release -p nsq-broker -p nsq-loadgen, or set BIN)" >&2; exit 1; }
done
command -v "$CHROMIUM" >/dev/null || { echo "no $CHROMIUM (apt-get install -y chromium, or set CHROMIUM)" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK/data" "$(dirname "$OUT")"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN/nsqd" --tcp-address="$TCP" --http-address="$HTTP" --https-address="$HTTPS" \
    --data-path="$WORK/data" --mem-queue-size=10000 \
    --e2e-processing-latency-percentile=0.5,0.99 >"$WORK/nsqd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    curl -sf "http://$HTTP/ping" >/dev/null 2>&1 && break
    sleep 0.1
done

post() { curl -sf -X POST "http://$HTTP/$1" >/dev/null; }
post "topic/create?topic=orders"
post "channel/create?topic=orders&channel=billing"
post "channel/create?topic=orders&channel=audit"
post "topic/create?topic=events"
post "channel/create?topic=events&channel=archive"

# A consumer that is not perfect: requeues some messages and loses a few.
cat >"$WORK/flaky.py" <<'EOF'
import json, random, socket, struct, sys, time
host, port, topic, channel, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
s = socket.create_connection((host, port))
s.sendall(b"  V2")
ident = json.dumps({"client_id": "audit-worker", "hostname": "preview", "msg_timeout": 5000,
                    "feature_negotiation": True, "user_agent": "preview-flaky/1"}).encode()
s.sendall(b"IDENTIFY\n" + struct.pack(">I", len(ident)) + ident)
s.sendall(("SUB %s %s\nRDY 200\n" % (topic, channel)).encode())
s.settimeout(0.5)
buf, end = bytearray(), time.time() + secs
while time.time() < end:
    try:
        data = s.recv(1 << 16)
    except socket.timeout:
        continue
    if not data:
        break
    buf += data
    out, pos = [], 0
    while len(buf) - pos >= 8:
        size, kind = struct.unpack_from(">II", buf, pos)
        if len(buf) - pos < 4 + size:
            break
        frame, pos = bytes(buf[pos + 8:pos + 4 + size]), pos + 4 + size
        if kind == 0 and frame == b"_heartbeat_":
            out.append(b"NOP\n")
        elif kind == 1:
            print("flaky: error", frame, file=sys.stderr)
        elif kind == 2:
            mid, r = frame[10:26], random.random()
            if r < 0.05:
                out.append(b"REQ " + mid + b" 3000\n")
            elif r >= 0.052:
                out.append(b"FIN " + mid + b"\n")
    del buf[:pos]
    if out:
        s.sendall(b"".join(out))
s.sendall(b"CLS\n")
s.close()
EOF

LG=("$BIN/loadgen")
common=(--nsqd-tcp-address "$TCP" --no-progress --warmup 0)

python3 "$HERE/preview.py" --url "http://$HTTP/metrics" --interval 2 --samples 30 \
    --out "$WORK/preview.html" --save-raw "$WORK/scrapes.json" &
preview=$!
pids+=($preview)

"${LG[@]}" sub "${common[@]}" --topic orders --channel billing --consumers 2 --duration 62s >"$WORK/billing.log" 2>&1 &
pids+=($!)
python3 "$WORK/flaky.py" 127.0.0.1 "$PORT_BASE" orders audit 62 >"$WORK/audit.log" 2>&1 &
pids+=($!)
"${LG[@]}" pub "${common[@]}" --topic orders --producers 2 --batch 20 --size 300 --rate 6000 --duration 60s >"$WORK/orders.log" 2>&1 &
pids+=($!)

sleep 6
"${LG[@]}" pub "${common[@]}" --topic events --producers 1 --batch 50 --size 512 --rate 2500 --duration 34s \
    --producer-id-base 10 >"$WORK/events.log" 2>&1 &
pids+=($!)
sleep 14
"${LG[@]}" pub "${common[@]}" --topic orders --producers 2 --batch 20 --size 300 --rate 6000 --duration 12s \
    --producer-id-base 20 >"$WORK/spike.log" 2>&1 &
pids+=($!)
sleep 24
"${LG[@]}" sub "${common[@]}" --topic events --channel archive --consumers 1 --rdy 20 --duration 16s >"$WORK/archive.log" 2>&1 &
pids+=($!)

wait "$preview"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,1800 \
    --screenshot="$OUT" "file://$WORK/preview.html" >"$WORK/chromium.log" 2>&1
echo "wrote $OUT ($(wc -c <"$OUT") bytes); page: $WORK/preview.html, scrapes: $WORK/scrapes.json"
