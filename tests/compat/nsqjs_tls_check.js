#!/usr/bin/env node
// nsqjs compatibility check of nsqd's connection upgrades: TLS (after
// IDENTIFY tls_v1), snappy and deflate, alone or TLS plus one of them.
//
// CHANNELS nsqjs Readers subscribe to channels CHANNEL0..CHANNELn-1 of TOPIC
// with the chosen upgrades; once /stats shows each of them connected with
// exactly those upgrades (tls, snappy, deflate), an nsqjs Writer with the same
// upgrades publishes COUNT messages (PUB and MPUB; small, large and
// incompressible bodies) and waits for every acknowledgement, and /stats must
// show that producer with the same upgrades. Every channel must then receive
// every message exactly once, byte for byte. Exit 0 on success; otherwise
// print what went wrong and exit 1. The whole run is bounded by --timeout.
//
// With --ca the server certificate is verified against that CA (nsqjs passes
// `ca` and `tlsVerification` to Node's tls.connect; the name checked is
// "localhost", Node's default when nsqjs gives no servername); --cert and
// --key present a client certificate.
//
// Usage: node nsqjs_tls_check.js --tcp 127.0.0.1:4150 --http 127.0.0.1:4151
//          --topic t [--channel nsqjs] [--channels 1] [--count 200]
//          [--timeout 60] [--tls [--ca ca.pem] [--cert c.pem --key c.key]]
//          [--snappy] [--deflate] [--deflate-level 6]

'use strict'

const fs = require('fs')
const http = require('http')
const nsq = require('nsqjs')

function parseArgs(argv) {
  const out = {
    channel: 'nsqjs', channels: 1, count: 200, timeout: 60,
    tls: false, ca: null, snappy: false, deflate: false, deflateLevel: 6,
  }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2)
    const value = () => (inline !== undefined ? inline : argv[++i])
    switch (flag) {
      case '--tcp': out.tcp = value(); break
      case '--http': out.http = value(); break
      case '--topic': out.topic = value(); break
      case '--channel': out.channel = value(); break
      case '--channels': out.channels = parseInt(value(), 10); break
      case '--count': out.count = parseInt(value(), 10); break
      case '--timeout': out.timeout = parseFloat(value()); break
      case '--tls': out.tls = true; break
      case '--ca': out.ca = value(); break
      case '--cert': out.cert = value(); break
      case '--key': out.key = value(); break
      case '--snappy': out.snappy = true; break
      case '--deflate': out.deflate = true; break
      case '--deflate-level': out.deflateLevel = parseInt(value(), 10); break
      default:
        console.error(`unknown argument ${argv[i]}`)
        process.exit(2)
    }
  }
  if (!out.tcp || !out.http || !out.topic) {
    console.error('usage: nsqjs_tls_check.js --tcp host:port --http host:port --topic t [options]')
    process.exit(2)
  }
  return out
}

const args = parseArgs(process.argv.slice(2))
const [host, portText] = args.tcp.split(':')
const port = parseInt(portText, 10)
const count = args.count
const layers = [args.tls && 'tls', args.snappy && 'snappy', args.deflate && 'deflate']
  .filter(Boolean).join('+') || 'plain'

// Connection options shared by the Writer and the Readers.
const connOptions = {
  tls: args.tls,
  tlsVerification: args.ca !== null,
  snappy: args.snappy,
  deflate: args.deflate,
  deflateLevel: args.deflateLevel,
}
if (args.ca !== null) connOptions.ca = fs.readFileSync(args.ca)
if (args.cert) {
  connOptions.cert = fs.readFileSync(args.cert)
  connOptions.key = fs.readFileSync(args.key)
}

// Body i: "m<i>:" then a filler. Every 20th is 70 000 pseudo-random
// (incompressible) bytes, every 20th + 10 is 70 000 repetitive bytes (both
// span several snappy chunks and deflate blocks), the rest are short.
function body(i) {
  const head = Buffer.from(`m${i}:`)
  let filler
  if (i % 20 === 0) {
    filler = Buffer.alloc(70000)
    let x = (i * 2654435761 + 1) >>> 0
    for (let j = 0; j < filler.length; j++) {
      x ^= x << 13; x >>>= 0
      x ^= x >>> 17
      x ^= x << 5; x >>>= 0
      filler[j] = x & 0xff
    }
  } else if (i % 20 === 10) {
    filler = Buffer.from('nsq compressed '.repeat(4667))
  } else {
    filler = Buffer.from(`nsqjs ${layers} message ${i} `.repeat(1 + (i % 7)))
  }
  return Buffer.concat([head, filler])
}

const bodies = Array.from({length: count}, (_, i) => body(i))
const channels = Array.from({length: args.channels}, (_, j) => `${args.channel}${j}`)
const received = new Map(channels.map((c) => [c, new Map()]))
const readers = []
let acked = 0
let producerChecked = false
let allReceived = false
let done = false

function finish(ok, message) {
  if (done) return
  done = true
  if (ok) console.log(message)
  else console.error(message)
  process.exit(ok ? 0 : 1)
}

function progress() {
  return channels.map((c) => `${c}: ${received.get(c).size}/${count}`).join(', ')
}

setTimeout(() => {
  finish(false, `nsqjs ${layers}: timed out after ${args.timeout}s: ` +
    `${acked}/${commands.length} commands acknowledged; received ${progress()}`)
}, args.timeout * 1000)

function getStats(callback) {
  const url = `http://${args.http}/stats?format=json&topic=${encodeURIComponent(args.topic)}`
  http.get(url, (res) => {
    const chunks = []
    res.on('data', (c) => chunks.push(c))
    res.on('end', () => {
      if (res.statusCode !== 200) {
        return finish(false, `GET /stats: ${res.statusCode} ${Buffer.concat(chunks)}`)
      }
      try {
        callback(JSON.parse(Buffer.concat(chunks).toString()))
      } catch (err) {
        finish(false, `bad /stats answer: ${err}`)
      }
    })
  }).on('error', (err) => finish(false, `GET /stats: ${err}`))
}

// What is wrong with a client's stats entry, or null.
function layerMismatch(client) {
  for (const [key, want] of [['tls', args.tls], ['snappy', args.snappy], ['deflate', args.deflate]]) {
    if (client[key] !== want) return `${key} is ${client[key]}, expected ${want}`
  }
  if (args.tls && !client.tls_version) return 'tls without tls_version'
  return null
}

// 1. Readers first, so every channel exists before the first PUB.
function startReaders() {
  for (const channel of channels) {
    const reader = new nsq.Reader(args.topic, channel, Object.assign({
      nsqdTCPAddresses: [args.tcp],
      maxInFlight: 100,
    }, connOptions))
    reader.on('error', (err) => finish(false, `reader ${channel} error: ${err}`))
    reader.on('message', (msg) => onMessage(channel, msg))
    reader.connect()
    readers.push(reader)
  }
  waitForReaders()
}

// 2. Wait until /stats shows each channel with one client, upgraded as asked.
function waitForReaders() {
  getStats((stats) => {
    const topic = (stats.topics || []).find((t) => t.topic_name === args.topic)
    const ready = topic ? topic.channels.filter((c) => channels.includes(c.channel_name) &&
      (c.clients || []).length === 1) : []
    if (ready.length < channels.length) {
      setTimeout(waitForReaders, 100)
      return
    }
    for (const c of ready) {
      const wrong = layerMismatch(c.clients[0])
      if (wrong) {
        return finish(false, `stats: consumer on ${c.channel_name}: ${wrong}: ` +
          JSON.stringify(c.clients[0]))
      }
    }
    startWriter()
  })
}

// 3. Publish: a third by PUB, the rest by MPUB in batches of 10.
const commands = []
const third = Math.floor(count / 3)
for (let i = 0; i < third; i++) commands.push(bodies[i])
for (let i = third; i < count; i += 10) commands.push(bodies.slice(i, Math.min(i + 10, count)))

function startWriter() {
  const writer = new nsq.Writer(host, port, connOptions)
  writer.on('error', (err) => finish(false, `writer error: ${err}`))
  writer.on('ready', () => {
    for (const payload of commands) writer.publish(args.topic, payload, onAck)
  })
  writer.connect()
}

function onAck(err) {
  if (err) return finish(false, `publish failed: ${err}`)
  acked += 1
  if (acked === commands.length) checkProducer()
}

// 4. The Writer's connection is still open: /stats lists it as a producer.
function checkProducer() {
  getStats((stats) => {
    // Producers of this topic (nsqd keeps only its pub_counts with ?topic=).
    const producers = (stats.producers || []).filter((p) => (p.pub_counts || []).length > 0)
    if (producers.length !== 1) {
      return finish(false, `stats: ${producers.length} producers, expected 1: ` +
        JSON.stringify(producers))
    }
    const wrong = layerMismatch(producers[0])
    if (wrong) return finish(false, `stats: producer: ${wrong}: ${JSON.stringify(producers[0])}`)
    producerChecked = true
    maybeSucceed()
  })
}

function onMessage(channel, msg) {
  const seen = received.get(channel)
  const text = msg.body.slice(0, 16).toString('latin1')
  const i = parseInt(text.slice(1, text.indexOf(':')), 10)
  if (!(text[0] === 'm' && i >= 0 && i < count && msg.body.equals(bodies[i]))) {
    return finish(false, `${channel}: unexpected body of ${msg.body.length} bytes ` +
      `starting ${JSON.stringify(text)}`)
  }
  if (msg.attempts !== 1) return finish(false, `${channel}: message ${i} has attempts ${msg.attempts}`)
  if (seen.has(i)) return finish(false, `${channel}: message ${i} delivered twice`)
  seen.set(i, true)
  msg.finish()
  // Everything arrived: give duplicates a moment to show up.
  if (!allReceived && channels.every((c) => received.get(c).size === count)) {
    setTimeout(() => {
      allReceived = true
      maybeSucceed()
    }, 500)
  }
}

function maybeSucceed() {
  if (producerChecked && allReceived) {
    finish(true, `nsqjs ${layers}: ${count} messages, each received once on each of ` +
      `${channels.length} channel(s), bodies identical; /stats showed the upgrades`)
  }
}

startReaders()
