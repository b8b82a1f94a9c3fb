//! Restarting on the same ports, as an operator does: `systemctl restart`,
//! a supervisor's `Restart=always` after a crash, a `kill -9` recovery.
//!
//! Each cycle serves HTTP and TCP traffic (so the server closes connections
//! and leaves TIME_WAIT sockets on its ports), stops the daemon (SIGTERM or
//! SIGKILL), waits until the ports refuse connections, and starts it again
//! at once on the same ports, with no retry. Every start must succeed: Go's
//! nsqd and nsqlookupd set SO_REUSEADDR on their listeners, so must we.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use nsq_tests::cluster::{free_loopback_pair, Daemon};
use nsq_tests::http;
use nsq_tests::lookupd::LookupClient;
use nsq_tests::{unique_name, RawClient};
use serde_json::json;

const CYCLES: usize = 20;

#[derive(Clone, Copy, PartialEq)]
enum Stop {
    Term,
    Kill,
}

/// Waits (bounded) until nothing accepts connections on `addr`.
fn wait_refused(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        if Instant::now() >= deadline {
            bail!("{addr} still accepts connections 10 s after the daemon stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// HTTP and TCP traffic on nsqd whose connections the server closes.
/// Returns a consumer left connected, so the stop closes it server-side.
fn nsqd_traffic(d: &Daemon, topic: &str) -> Result<RawClient> {
    for i in 0..5 {
        let (status, body) = http::post(
            d.http_addr(),
            &format!("/pub?topic={topic}"),
            format!("m{i}").as_bytes(),
        )?;
        ensure!(status == 200, "POST /pub: {status} {body}");
        let (status, _) = http::get(d.http_addr(), "/stats?format=json")?;
        ensure!(status == 200, "GET /stats: {status}");
    }
    let mut producer = RawClient::connect(d.tcp_addr())?;
    producer.pub_ok(topic, b"over tcp")?;
    // A bad command: nsqd answers E_INVALID and closes the connection.
    let mut bad = RawClient::connect(d.tcp_addr())?;
    bad.send(b"NOT_A_COMMAND\n")?;
    bad.expect_fatal("E_INVALID invalid command NOT_A_COMMAND")?;
    let mut consumer = RawClient::connect(d.tcp_addr())?;
    consumer.sub_ok(topic, "ch")?;
    consumer.rdy(1)?;
    let msg = consumer.expect_message_skip_heartbeats()?;
    consumer.fin(&msg.id)?;
    Ok(consumer)
}

/// `CYCLES` times: `traffic` (its result, e.g. a connected client, lives
/// through the stop), stop, wait for the ports to refuse, start once.
/// Every failed immediate start is counted.
fn cycle<T>(mut d: Daemon, stop: Stop, traffic: impl Fn(&Daemon) -> Result<T>) -> Result<()> {
    let mut failures = Vec::new();
    for cycle in 0..CYCLES {
        let connected = traffic(&d)?;
        match stop {
            Stop::Term => d.stop()?,
            Stop::Kill => d.kill(),
        }
        drop(connected);
        wait_refused(d.tcp_addr())?;
        wait_refused(d.http_addr())?;
        if let Err(e) = d.start_again_once() {
            failures.push(format!("cycle {cycle}: {e:#}"));
            // Keep counting: start it the patient way for the next cycle.
            d.start_again()?;
        }
    }
    ensure!(
        failures.is_empty(),
        "{} of {CYCLES} immediate restarts failed:
{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

fn cycle_nsqd(stop: Stop) -> Result<()> {
    let (tcp, http_addr) = free_loopback_pair()?;
    let topic = unique_name("restart");
    cycle(Daemon::nsqd_on(tcp, http_addr, &[])?, stop, |d| {
        nsqd_traffic(d, &topic)
    })
}

#[test]
fn nsqd_restarts_on_the_same_ports_after_sigterm() -> Result<()> {
    cycle_nsqd(Stop::Term)
}

#[test]
fn nsqd_restarts_on_the_same_ports_after_kill_9() -> Result<()> {
    cycle_nsqd(Stop::Kill)
}

/// The guarantee SO_REUSEADDR must not weaken: a second nsqd on ports that
/// a running one listens on refuses to start.
#[test]
fn nsqd_still_refuses_ports_in_use_after_restarts() -> Result<()> {
    let (tcp, http_addr) = free_loopback_pair()?;
    let mut d = Daemon::nsqd_on(tcp, http_addr, &[])?;
    d.stop()?;
    d.start_again_once()?;
    match Daemon::nsqd_on(tcp, http_addr, &[]) {
        Ok(_) => bail!("a second nsqd started on {tcp} while the first listens there"),
        Err(e) => ensure!(format!("{e:#}").contains("in use"), "{e:#}"),
    }
    Ok(())
}

fn lookupd_traffic(d: &Daemon) -> Result<LookupClient> {
    for path in ["/ping", "/topics", "/nodes", "/info"] {
        let (status, _) = http::get(d.http_addr(), path)?;
        ensure!(status == 200, "GET {path}: {status}");
    }
    let mut peer = LookupClient::connect(d.tcp_addr())?;
    peer.identify(&json!({
        "broadcast_address": "127.0.0.1",
        "hostname": "restart-test",
        "tcp_port": 1,
        "http_port": 2,
        "version": "1.3.0",
    }))?;
    peer.register("restart", Some("ch"))?;
    peer.ping()?;
    // A bad command: nsqlookupd answers E_INVALID and closes.
    let mut bad = LookupClient::connect(d.tcp_addr())?;
    bad.command("NOT_A_COMMAND")?;
    bad.expect_fatal("E_INVALID invalid command NOT_A_COMMAND")?;
    Ok(peer)
}

fn cycle_lookupd(stop: Stop) -> Result<()> {
    let (tcp, http_addr) = free_loopback_pair()?;
    cycle(
        Daemon::lookupd_on(tcp, http_addr, &[])?,
        stop,
        lookupd_traffic,
    )
}

#[test]
fn nsqlookupd_restarts_on_the_same_ports_after_sigterm() -> Result<()> {
    cycle_lookupd(Stop::Term)
}

#[test]
fn nsqlookupd_restarts_on_the_same_ports_after_kill_9() -> Result<()> {
    cycle_lookupd(Stop::Kill)
}

/// Started again the moment the old process has exited, without waiting for
/// the ports to refuse connections (what a supervisor does): the listeners
/// are stopped before exit, so no accept still queued in io_uring keeps a
/// port listening past the process's end.
#[test]
fn nsqd_and_nsqlookupd_restart_the_moment_they_exited() -> Result<()> {
    let (tcp, http_addr) = free_loopback_pair()?;
    let mut n = Daemon::nsqd_on(tcp, http_addr, &[])?;
    let (ltcp, lhttp) = free_loopback_pair()?;
    let mut l = Daemon::lookupd_on(ltcp, lhttp, &[])?;
    let topic = unique_name("at_once");
    for cycle in 0..10 {
        let consumer = nsqd_traffic(&n, &topic)?;
        let peer = lookupd_traffic(&l)?;
        n.stop()?;
        l.stop()?;
        n.start_again_once()
            .map_err(|e| e.context(format!("nsqd, cycle {cycle}")))?;
        l.start_again_once()
            .map_err(|e| e.context(format!("nsqlookupd, cycle {cycle}")))?;
        drop((consumer, peer));
    }
    Ok(())
}

/// Started again the moment a SIGKILLed nsqd was reaped (`kill -9` then
/// start, as a script or a supervisor does): its listeners close only with
/// the kernel's deferred io_uring teardown, a little after the process is
/// gone, and startup waits for them (bounded) instead of failing with
/// "address already in use".
#[test]
fn nsqd_restarts_the_moment_it_was_killed() -> Result<()> {
    let (tcp, http_addr) = free_loopback_pair()?;
    let mut n = Daemon::nsqd_on(tcp, http_addr, &[])?;
    let topic = unique_name("killed_at_once");
    for cycle in 0..10 {
        let consumer = nsqd_traffic(&n, &topic)?;
        n.kill();
        n.start_again_once()
            .map_err(|e| e.context(format!("nsqd, cycle {cycle}")))?;
        drop(consumer);
    }
    Ok(())
}
