//! Private network namespaces for running several "hosts" on one machine:
//! the multi-host test (`tests/src/cluster.rs`) and the perf `cluster`
//! scenario both use them, with their own name prefix and address block so
//! a test run and a perf run can coexist.
//!
//! Everything goes through the `ip` command (iproute2); nothing here is
//! needed by the broker.

use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

/// Runs `ip <args>`.
pub fn ip(args: &[&str]) -> Result<Output> {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))
}

/// Runs `ip <args>` and fails with its stderr when it fails.
pub fn ip_ok(args: &[&str]) -> Result<()> {
    let out = ip(args)?;
    if !out.status.success() {
        bail!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `None` when this machine lets the current user create network
/// namespaces and veth pairs; otherwise why not (callers then skip). Tried
/// for real (a namespace and a veth pair, removed at once): being root is
/// not enough in an unprivileged container.
pub fn netns_unavailable() -> Option<String> {
    if !ip(&["-V"]).is_ok_and(|o| o.status.success()) {
        return Some("the `ip` command (iproute2) is not available".into());
    }
    let probe = format!("nsqprobe{}", std::process::id());
    if let Err(e) = ip_ok(&["netns", "add", &probe]) {
        return Some(format!("`ip netns add` is not permitted here: {e:#}"));
    }
    let veth = format!("nsqp{}", std::process::id() % 1_000_000);
    let peer = format!("{veth}b");
    let result = ip_ok(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])
        .and_then(|()| ip_ok(&["link", "set", &peer, "netns", &probe]));
    let _ = ip(&["link", "del", &veth]);
    let _ = ip(&["netns", "del", &probe]);
    result
        .err()
        .map(|e| format!("veth pairs cannot be created here: {e:#}"))
}

/// `hosts` network namespaces, each joined to this (the root) namespace by
/// its own veth pair on a /30 of `10.<block>.N.0/24`: host `i` is
/// `10.<block>.N.(4i+2)`, reachable from here, and this namespace is
/// `10.<block>.N.(4i+1)` on that link (any of those addresses reaches this
/// namespace from every host: Linux accepts local addresses on any link).
/// Each host's default route points here. Everything is deleted on drop;
/// processes inside must be gone first.
#[derive(Debug)]
pub struct Netns {
    prefix: &'static str,
    block: u8,
    subnet: u8,
    names: Vec<String>,
}

impl Netns {
    /// Creates them. `prefix` starts every namespace and link name (keep
    /// it short: link names have 15 bytes), `block` is the second octet.
    pub fn create(prefix: &'static str, block: u8, hosts: u8) -> Result<Netns> {
        // The namespace name carries N, so `ip netns add` (which fails if
        // the name exists) claims the subnet even against a concurrent run
        // or one that died without cleaning up.
        let first = (std::process::id() % 200) as u16;
        for k in 0..200u16 {
            let subnet = (20 + (first + k) % 200) as u8;
            let name = format!("{prefix}{subnet}h0");
            if ip_ok(&["netns", "add", &name]).is_err() {
                continue;
            }
            let mut ns = Netns {
                prefix,
                block,
                subnet,
                names: vec![name],
            };
            ns.setup(hosts)?;
            return Ok(ns);
        }
        bail!("no free 10.{block}.N.0/24 subnet for network namespaces")
    }

    fn setup(&mut self, hosts: u8) -> Result<()> {
        let (prefix, subnet) = (self.prefix, self.subnet);
        for i in 0..hosts {
            let name = format!("{prefix}{subnet}h{i}");
            if i > 0 {
                ip_ok(&["netns", "add", &name])?;
                self.names.push(name.clone());
            }
            let outer = format!("{prefix}{subnet}v{i}");
            let inner = format!("{prefix}{subnet}p{i}");
            ip_ok(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip_ok(&["link", "set", &inner, "netns", &name])?;
            let (root, host) = (self.root_addr(i), self.host_addr(i));
            ip_ok(&["addr", "add", &format!("{root}/30"), "dev", &outer])?;
            ip_ok(&["link", "set", &outer, "up"])?;
            let host_cidr = format!("{host}/30");
            let inside: [&[&str]; 4] = [
                &["addr", "add", &host_cidr, "dev", &inner],
                &["link", "set", &inner, "up"],
                &["link", "set", "lo", "up"],
                &["route", "add", "default", "via", &root],
            ];
            for args in inside {
                let mut full = vec!["netns", "exec", &name, "ip"];
                full.extend_from_slice(args);
                ip_ok(&full)?;
            }
        }
        Ok(())
    }

    /// The namespace of host `i`.
    pub fn name(&self, i: u8) -> &str {
        &self.names[usize::from(i)]
    }

    /// Host `i`'s own address.
    pub fn host_addr(&self, i: u8) -> String {
        format!("10.{}.{}.{}", self.block, self.subnet, 4 * i + 2)
    }

    /// This namespace's address on host `i`'s link.
    pub fn root_addr(&self, i: u8) -> String {
        format!("10.{}.{}.{}", self.block, self.subnet, 4 * i + 1)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for (i, name) in self.names.iter().enumerate() {
            let _ = ip(&[
                "link",
                "del",
                &format!("{}{}v{i}", self.prefix, self.subnet),
            ]);
            let _ = ip(&["netns", "del", name]);
        }
    }
}
