//! `loadgen`: a load generator for any NSQ-compatible nsqd (ours or the
//! original), in the spirit of nsq's `bench_writer` and `bench_reader`.
//!
//! # Layout
//!
//! * `args`: options and `--help`.
//! * `run`: subscribes consumers, starts producers, progress, deadline.
//! * `producer` / `consumer`: one blocking connection per thread.
//! * `body`: the stamped body (send time, sequence, producer, checksum).
//! * `pacing`: open-loop schedule (latency from the intended send time).
//! * `integrity`: sent/received/duplicated/missing/corrupted accounting.
//! * `report`: percentiles, text and JSON summary, progress line.
//! * `net`: connections (IDENTIFY and upgrades) and the monotonic clock.
//! * `lookup` / `discovery`: nsqlookupd `/lookup` and the consumers of the
//!   nsqd it lists (`--lookupd-http-address`).
//! * `layers`: TLS and snappy/deflate between frames and the socket.
//! * `tls`: the TLS client configuration from `--tls-*`.

#![allow(clippy::print_stdout)]

mod args;
mod body;
mod consumer;
mod discovery;
mod integrity;
mod layers;
mod lookup;
mod net;
mod pacing;
mod producer;
mod report;
mod run;
mod tls;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cfg = match args::parse(std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            report::eprint_line(&format!("loadgen: {err:#}"));
            return ExitCode::from(2);
        }
    };
    if cfg.security.tls && cfg.security.tls_ca.is_none() {
        report::eprint_line(
            "loadgen: warning: --tls without --tls-ca: nsqd's certificate is not verified",
        );
    }
    let outcome = match run::run(&cfg) {
        Ok(outcome) => outcome,
        Err(err) => {
            report::eprint_line(&format!("loadgen: {err:#}"));
            return ExitCode::from(1);
        }
    };
    let summary = report::summarize(&cfg, &outcome);
    if cfg.json {
        match serde_json::to_string_pretty(&summary) {
            Ok(json) => println!("{json}"),
            Err(err) => {
                report::eprint_line(&format!("loadgen: encoding JSON: {err}"));
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", report::text(&summary));
    }
    if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
