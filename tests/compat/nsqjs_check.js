#!/usr/bin/env node
// nsqjs compatibility check against one nsqd.
//
// An nsqjs Writer publishes COUNT messages (PUB, MPUB and a few DPUB) and
// waits for every acknowledgement, then an nsqjs Reader consumes them from a
// fresh channel. Exit 0 when every message arrived exactly once; otherwise
// print what went wrong and exit 1. The whole run is bounded by --timeout.
//
// Usage: node nsqjs_check.js --tcp 127.0.0.1:4150 --topic t [--count 300] [--timeout 60]

'use strict'

const nsq = require('nsqjs')

function parseArgs(argv) {
  const out = {channel: 'nsqjs', count: 300, timeout: 60}
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2)
    const value = inline !== undefined ? inline : argv[++i]
    switch (flag) {
      case '--tcp': out.tcp = value; break
      case '--http': out.http = value; break
      case '--topic': out.topic = value; break
      case '--channel': out.channel = value; break
      case '--count': out.count = parseInt(value, 10); break
      case '--timeout': out.timeout = parseFloat(value); break
      default:
        console.error(`unknown argument ${argv[i]}`)
        process.exit(2)
    }
  }
  if (!out.tcp || !out.topic) {
    console.error('usage: nsqjs_check.js --tcp host:port --topic t [--count N] [--timeout S]')
    process.exit(2)
  }
  return out
}

const args = parseArgs(process.argv.slice(2))
const [host, portText] = args.tcp.split(':')
const port = parseInt(portText, 10)
const count = args.count
const bodies = Array.from({length: count}, (_, i) => `nsqjs-${i}`)
const expected = new Set(bodies)
const received = []
let acked = 0
let done = false
let reader = null

function finish(ok, message) {
  if (done) return
  done = true
  if (ok) console.log(message)
  else console.error(message)
  process.exit(ok ? 0 : 1)
}

setTimeout(() => {
  finish(false, `timed out after ${args.timeout}s: ${acked}/${commands.length} ` +
    `commands acknowledged, ${received.length}/${count} messages received`)
}, args.timeout * 1000)

// A third by PUB, a third by MPUB in batches of 10, the rest PUB with the
// last 5 deferred by 100 ms (DPUB).
const third = Math.floor(count / 3)
const commands = []
for (const b of bodies.slice(0, third)) commands.push(['pub', b])
const mpubPart = bodies.slice(third, 2 * third)
for (let i = 0; i < mpubPart.length; i += 10) commands.push(['mpub', mpubPart.slice(i, i + 10)])
const rest = bodies.slice(2 * third)
for (const b of rest.slice(0, -5)) commands.push(['pub', b])
for (const b of rest.slice(-5)) commands.push(['dpub', b])

function onAck(err) {
  if (err) return finish(false, `publish failed: ${err}`)
  acked += 1
  if (acked === commands.length) startReader()
}

const writer = new nsq.Writer(host, port)
writer.on('error', (err) => finish(false, `writer error: ${err}`))
writer.on('ready', () => {
  for (const [kind, payload] of commands) {
    if (kind === 'pub') writer.publish(args.topic, payload, onAck)
    else if (kind === 'mpub') writer.publish(args.topic, payload, onAck)
    else writer.deferPublish(args.topic, [payload], 100, onAck)
  }
})
writer.connect()

function judge() {
  const got = new Set(received)
  const dups = received.length - got.size
  const missing = bodies.filter((b) => !got.has(b))
  const extra = received.filter((b) => !expected.has(b))
  if (dups || missing.length || extra.length) {
    finish(false, `received ${received.length} (duplicates ${dups}, missing ${missing.length} ` +
      `e.g. ${missing.slice(0, 5)}, unexpected ${extra.slice(0, 5)})`)
  } else {
    finish(true, `nsqjs: ${count} published and consumed exactly once`)
  }
}

function startReader() {
  reader = new nsq.Reader(args.topic, args.channel, {
    nsqdTCPAddresses: [args.tcp],
    maxInFlight: 100,
  })
  reader.on('error', (err) => finish(false, `reader error: ${err}`))
  reader.on('message', (msg) => {
    if (msg.attempts !== 1) {
      return finish(false, `message ${msg.body} has attempts ${msg.attempts}`)
    }
    received.push(msg.body.toString())
    msg.finish()
    // Give duplicates a moment to show up, then judge.
    if (received.length === count) setTimeout(judge, 500)
  })
  reader.connect()
}
