//! Deployment files: the systemd units in `deploy/systemd/`, the Docker
//! seccomp profile in `deploy/docker/` and the `Dockerfile`.
//!
//! * `systemd-analyze verify` accepts both units (pointed at the built
//!   binaries); skipped, saying so, when systemd-analyze is not installed.
//! * The settings operators rely on are there (locked memory, file limit,
//!   restart, a stop timeout longer than nsqd's shutdown flush).
//! * The exact flags of each unit's `ExecStart` start the real binary (moved
//!   to loopback ports and a temporary data path) and it becomes ready.
//! * The seccomp profile is Docker's default plus the io_uring syscalls.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use nsq_tests::cluster::{free_loopback_pair, Daemon};
use nsq_tests::lookupd::nsqlookupd_bin;
use nsq_tests::{nsqd_bin, run_to_exit, workspace_root, TempDir};
use serde_json::Value;

/// How long `systemd-analyze verify` and a daemon's SIGTERM exit may take
/// before the test fails (bounds, not assertions on speed).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Unit files
// ---------------------------------------------------------------------------

/// A parsed systemd unit file: (section, key, value) in file order.
struct Unit {
    name: String,
    text: String,
    entries: Vec<(String, String, String)>,
}

impl Unit {
    /// Loads `deploy/systemd/<name>`.
    fn load(name: &str) -> Result<Unit> {
        let path = workspace_root().join("deploy").join("systemd").join(name);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut entries = Vec::new();
        let mut section = String::new();
        let mut pending = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
                continue;
            }
            // A trailing backslash continues the line (systemd joins with a space).
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            let full = std::mem::take(&mut pending) + line;
            if let Some(name) = full.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let (key, value) = full
                .split_once('=')
                .ok_or_else(|| anyhow!("{name}: not a `Key=value` line: {full:?}"))?;
            ensure!(!section.is_empty(), "{name}: {key} outside any section");
            entries.push((
                section.clone(),
                key.trim().to_string(),
                value.trim().to_string(),
            ));
        }
        ensure!(pending.is_empty(), "{name}: ends inside a continued line");
        Ok(Unit {
            name: name.to_string(),
            text,
            entries,
        })
    }

    /// Every value of `key` in `section`, in order.
    fn values(&self, section: &str, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The effective value of a single-valued setting (the last assignment).
    fn get(&self, section: &str, key: &str) -> Result<&str> {
        self.values(section, key)
            .last()
            .copied()
            .ok_or_else(|| anyhow!("{}: no {key}= in [{section}]", self.name))
    }

    /// The variables of the `Environment=` lines.
    fn environment(&self) -> Result<BTreeMap<String, String>> {
        let mut env = BTreeMap::new();
        for line in self.values("Service", "Environment") {
            for word in split_words(line)? {
                let (name, value) = word
                    .split_once('=')
                    .ok_or_else(|| anyhow!("{}: Environment word {word:?}", self.name))?;
                env.insert(name.to_string(), value.to_string());
            }
        }
        Ok(env)
    }

    /// `ExecStart=` as systemd runs it: words, with `$NAME` (a word of its
    /// own: split at whitespace) and `${NAME}` (within a word) expanded from
    /// `Environment=`.
    fn exec_start(&self) -> Result<Vec<String>> {
        let lines = self.values("Service", "ExecStart");
        ensure!(
            lines.len() == 1,
            "{}: expected one ExecStart=, found {lines:?}",
            self.name
        );
        let env = self.environment()?;
        let mut argv = Vec::new();
        for word in split_words(lines[0])? {
            if let Some(var) = word.strip_prefix('$').filter(|v| is_var_name(v)) {
                let value = env
                    .get(var)
                    .ok_or_else(|| anyhow!("{}: ExecStart uses unset ${var}", self.name))?;
                argv.extend(value.split_whitespace().map(str::to_string));
            } else {
                let mut word = word;
                for (name, value) in &env {
                    word = word.replace(&format!("${{{name}}}"), value);
                }
                ensure!(
                    !word.contains('$'),
                    "{}: ExecStart word {word:?} has an unknown variable",
                    self.name
                );
                argv.push(word);
            }
        }
        ensure!(!argv.is_empty(), "{}: empty ExecStart", self.name);
        ensure!(
            argv[0].starts_with('/'),
            "{}: ExecStart must start with an absolute path (no -@:+! prefix), got {:?}",
            self.name,
            argv[0]
        );
        Ok(argv)
    }
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// systemd's word splitting: whitespace separates, single and double
/// quotes group, a backslash escapes the next character.
fn split_words(s: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                let next = chars
                    .next()
                    .ok_or_else(|| anyhow!("trailing \\ in {s:?}"))?;
                word.get_or_insert_with(String::new).push(next);
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    ensure!(quote.is_none(), "unterminated quote in {s:?}");
    words.extend(word);
    Ok(words)
}

/// A systemd time span ("75s", "75", "1min 15s", "2m") in seconds.
fn timespan_secs(s: &str) -> Result<f64> {
    let mut total = 0.0;
    let mut rest = s.trim();
    ensure!(!rest.is_empty(), "empty time span");
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits]
            .parse()
            .with_context(|| format!("time span {s:?}"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "ms" | "msec" => 0.001,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "infinity" => f64::INFINITY,
            other => bail!("time span {s:?}: unknown unit {other:?}"),
        };
        total += number * factor;
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}

/// The `--name=value` flags after the binary, as (name, value).
fn flags(unit: &Unit, argv: &[String]) -> Result<Vec<(String, String)>> {
    argv[1..]
        .iter()
        .map(|arg| {
            let flag = arg.strip_prefix("--").ok_or_else(|| {
                anyhow!(
                    "{}: ExecStart argument {arg:?} is not --flag=value",
                    unit.name
                )
            })?;
            let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Absolute path of a built binary.
fn built(bin: PathBuf) -> Result<PathBuf> {
    fs::canonicalize(&bin).with_context(|| {
        format!(
            "binary {} not found (cargo build --workspace, or set NSQD_BIN / NSQLOOKUPD_BIN)",
            bin.display()
        )
    })
}

/// Starts `bin` with the unit's exact flags, except that the listen
/// addresses become free loopback ports and `--data-path` becomes
/// `data_path`; checks it becomes ready and exits cleanly on SIGTERM.
/// Retries with new ports if one was taken between picking and binding.
fn start_with_unit_flags(unit: &Unit, bin: &Path, data_path: Option<&Path>) -> Result<()> {
    let argv = unit.exec_start()?;
    let unit_flags = flags(unit, &argv)?;
    let mut last_err = None;
    for _ in 0..3 {
        let (tcp, http) = free_loopback_pair()?;
        let mut args = Vec::new();
        for (name, value) in &unit_flags {
            let value = match name.as_str() {
                "tcp-address" => tcp.to_string(),
                "http-address" => http.to_string(),
                "data-path" => data_path
                    .ok_or_else(|| anyhow!("{}: unexpected --data-path", unit.name))?
                    .display()
                    .to_string(),
                other if other.ends_with("address") => bail!(
                    "{}: the shipped ExecStart sets --{other}={value}; this test only moves \
                     --tcp-address and --http-address to loopback (keep the example commented)",
                    unit.name
                ),
                _ => value.clone(),
            };
            args.push(format!("--{name}={value}"));
        }
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut argv = vec![bin.display().to_string()];
        argv.extend(args);
        match Daemon::from_argv(&name, argv, tcp, http) {
            // `stop` fails unless the exit on SIGTERM is clean.
            Ok(mut daemon) => return daemon.stop(),
            Err(e) => {
                let in_use = format!("{e:#}").to_lowercase().contains("in use");
                last_err = Some(e);
                if !in_use {
                    break;
                }
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow!("{}: did not start", unit.name)))
}

// ---------------------------------------------------------------------------
// systemd-analyze verify
// ---------------------------------------------------------------------------

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `systemd-analyze verify` on both units, their ExecStart pointed at the
/// built binaries (verify checks that the binary exists and is executable).
/// Any line about either unit fails the test: verify exits 0 on warnings.
#[test]
fn systemd_analyze_verifies_units() -> Result<()> {
    let Some(analyze) = on_path("systemd-analyze") else {
        println!("skipped: systemd-analyze not installed");
        eprintln!("skipped: systemd-analyze not installed");
        return Ok(());
    };
    let dir = TempDir::new("nsq-deploy-units")?;
    let mut units = Vec::new();
    for (name, installed, bin) in [
        ("nsqd.service", "/usr/local/bin/nsqd", built(nsqd_bin())?),
        (
            "nsqlookupd.service",
            "/usr/local/bin/nsqlookupd",
            built(nsqlookupd_bin())?,
        ),
    ] {
        let unit = Unit::load(name)?;
        ensure!(
            unit.text.contains(&format!("ExecStart={installed} ")),
            "{name}: ExecStart should run {installed}"
        );
        let path = dir.path().join(name);
        let text = unit.text.replace(
            &format!("ExecStart={installed} "),
            &format!("ExecStart={} ", bin.display()),
        );
        fs::write(&path, text)?;
        units.push(path);
    }

    let mut argv = vec!["verify", "--man=no"];
    let paths: Vec<String> = units.iter().map(|p| p.display().to_string()).collect();
    argv.extend(paths.iter().map(String::as_str));
    let (status, stdout, stderr) = run_to_exit(&analyze, &argv, COMMAND_TIMEOUT)?;
    let output = format!("{stdout}{stderr}");
    let ours: Vec<&str> = output
        .lines()
        .filter(|l| {
            l.contains("nsqd.service")
                || l.contains("nsqlookupd.service")
                || l.contains(&*dir.path().to_string_lossy())
        })
        .collect();
    ensure!(
        status.success() && ours.is_empty(),
        "systemd-analyze verify: {status}, about our units:\n{}\n--- full output ---\n{output}",
        ours.join("\n")
    );
    if !output.trim().is_empty() {
        println!("systemd-analyze verify, about other units (ignored):\n{output}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Operator-critical settings
// ---------------------------------------------------------------------------

/// Settings both units need: locked memory for io_uring, file descriptors,
/// restart on failure, SIGTERM, the `nsq` user, no syscall filter that
/// would block io_uring, network before start.
fn check_common(unit: &Unit) -> Result<()> {
    let name = &unit.name;
    ensure!(
        unit.get("Service", "LimitMEMLOCK")? == "infinity",
        "{name}: LimitMEMLOCK=infinity (io_uring registers locked memory per core)"
    );
    let nofile: u64 = unit
        .get("Service", "LimitNOFILE")?
        .split(':')
        .next_back()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("{name}: LimitNOFILE"))?;
    ensure!(nofile >= 65536, "{name}: LimitNOFILE {nofile} < 65536");
    ensure!(
        unit.get("Service", "Restart")? == "on-failure",
        "{name}: Restart"
    );
    ensure!(
        unit.get("Service", "KillSignal")? == "SIGTERM",
        "{name}: KillSignal=SIGTERM (nsqd's graceful shutdown)"
    );
    ensure!(unit.get("Service", "User")? == "nsq", "{name}: User=nsq");
    ensure!(unit.get("Service", "Group")? == "nsq", "{name}: Group=nsq");
    ensure!(
        unit.values("Service", "SystemCallFilter")
            .iter()
            .all(|v| v.contains("io_uring_setup")
                && v.contains("io_uring_enter")
                && v.contains("io_uring_register")),
        "{name}: a SystemCallFilter= must allow io_uring_setup, io_uring_enter and io_uring_register"
    );
    for key in ["After", "Wants"] {
        ensure!(
            unit.values("Unit", key)
                .iter()
                .any(|v| v.split_whitespace().any(|u| u == "network-online.target")),
            "{name}: {key}=network-online.target"
        );
    }
    ensure!(
        unit.get("Install", "WantedBy")? == "multi-user.target",
        "{name}: WantedBy=multi-user.target"
    );

    // The system user the units run as is the one deploy/systemd/nsq.sysusers creates.
    let sysusers = fs::read_to_string(workspace_root().join("deploy/systemd/nsq.sysusers"))?;
    ensure!(
        sysusers.lines().any(|l| l.starts_with("u nsq ")),
        "nsq.sysusers creates the nsq user"
    );
    Ok(())
}

#[test]
fn nsqd_unit_settings() -> Result<()> {
    let unit = Unit::load("nsqd.service")?;
    check_common(&unit)?;
    let stop = timespan_secs(unit.get("Service", "TimeoutStopSec")?)?;
    ensure!(
        stop >= 65.0,
        "TimeoutStopSec={stop}s: nsqd's shutdown flush may take two 30 s phases"
    );

    let argv = unit.exec_start()?;
    ensure!(
        argv[0] == "/usr/local/bin/nsqd",
        "ExecStart runs {}",
        argv[0]
    );
    let flags: BTreeMap<String, String> = flags(&unit, &argv)?.into_iter().collect();
    ensure!(
        flags.get("data-path").map(String::as_str) == Some("/var/lib/nsqd"),
        "--data-path=/var/lib/nsqd, got {flags:?}"
    );
    ensure!(
        unit.get("Service", "StateDirectory")? == "nsqd",
        "StateDirectory=nsqd creates /var/lib/nsqd for the nsq user"
    );
    ensure!(
        flags.get("tcp-address").map(String::as_str) == Some("0.0.0.0:4150")
            && flags.get("http-address").map(String::as_str) == Some("0.0.0.0:4151"),
        "nsqd listens on nsqd's ports: {flags:?}"
    );
    ensure!(
        unit.text.contains("# Environment=\"NSQD_OPTS=")
            && unit.text.contains("--lookupd-tcp-address="),
        "a commented example with --lookupd-tcp-address"
    );
    Ok(())
}

#[test]
fn nsqlookupd_unit_settings() -> Result<()> {
    let unit = Unit::load("nsqlookupd.service")?;
    check_common(&unit)?;
    timespan_secs(unit.get("Service", "TimeoutStopSec")?)?;
    let argv = unit.exec_start()?;
    ensure!(
        argv[0] == "/usr/local/bin/nsqlookupd",
        "ExecStart runs {}",
        argv[0]
    );
    let flags: BTreeMap<String, String> = flags(&unit, &argv)?.into_iter().collect();
    ensure!(
        flags.get("tcp-address").map(String::as_str) == Some("0.0.0.0:4160")
            && flags.get("http-address").map(String::as_str) == Some("0.0.0.0:4161"),
        "nsqlookupd listens on nsqlookupd's ports: {flags:?}"
    );
    Ok(())
}

/// The exact flags of nsqd.service's ExecStart are accepted by the real
/// nsqd (on loopback, with a temporary data path): it becomes ready and
/// exits cleanly on SIGTERM.
#[test]
fn nsqd_unit_flags_start_real_nsqd() -> Result<()> {
    let unit = Unit::load("nsqd.service")?;
    let data = TempDir::new("nsq-deploy-data")?;
    start_with_unit_flags(&unit, &built(nsqd_bin())?, Some(data.path()))
}

#[test]
fn nsqlookupd_unit_flags_start_real_nsqlookupd() -> Result<()> {
    let unit = Unit::load("nsqlookupd.service")?;
    start_with_unit_flags(&unit, &built(nsqlookupd_bin())?, None)
}

#[test]
fn unit_parsing_helpers() -> Result<()> {
    ensure!(
        split_words(r#""A=--x=1 --y=2" B=3 'C=d e' F\ G"#)?
            == ["A=--x=1 --y=2", "B=3", "C=d e", "F G"]
    );
    ensure!(timespan_secs("75s")? == 75.0);
    ensure!(timespan_secs("75")? == 75.0);
    ensure!(timespan_secs("1min 15s")? == 75.0);
    ensure!(timespan_secs("2m")? == 120.0);
    ensure!(timespan_secs("1min15s")? == 75.0);
    Ok(())
}

// ---------------------------------------------------------------------------
// Docker
// ---------------------------------------------------------------------------

/// Syscalls Docker's default profile does not allow unconditionally; a
/// profile that allows one of them is not "Docker's default plus io_uring".
const DOCKER_BLOCKED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_settime",
    "clone3",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_pages",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

const IO_URING: [&str; 3] = ["io_uring_setup", "io_uring_enter", "io_uring_register"];

#[test]
fn seccomp_profile_is_docker_default_plus_io_uring() -> Result<()> {
    let path = workspace_root().join("deploy/docker/seccomp-io_uring.json");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let profile: Value = serde_json::from_str(&text).context("seccomp profile is not JSON")?;

    ensure!(
        profile["defaultAction"] == "SCMP_ACT_ERRNO",
        "defaultAction must stay SCMP_ACT_ERRNO (deny by default), got {}",
        profile["defaultAction"]
    );
    ensure!(profile["defaultErrnoRet"] == 1, "defaultErrnoRet 1 (EPERM)");
    let arches: Vec<&str> = profile["archMap"]
        .as_array()
        .ok_or_else(|| anyhow!("no archMap"))?
        .iter()
        .filter_map(|a| a["architecture"].as_str())
        .collect();
    for arch in ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"] {
        ensure!(arches.contains(&arch), "archMap lacks {arch}: {arches:?}");
    }

    let rules = profile["syscalls"]
        .as_array()
        .ok_or_else(|| anyhow!("no syscalls"))?;
    let names = |rule: &Value| -> Vec<String> {
        rule["names"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let unconditional = |rule: &Value| {
        rule["action"] == "SCMP_ACT_ALLOW"
            && rule.get("args").is_none_or(|a| a.is_null())
            && rule
                .get("includes")
                .is_none_or(|i| i.as_object().is_none_or(|o| o.is_empty()))
    };

    // The main allow list (Docker's first rule) has io_uring, and is
    // Docker's full list (not a short hand-written one).
    let main = rules.first().ok_or_else(|| anyhow!("no rules"))?;
    ensure!(
        unconditional(main),
        "the first rule is the plain allow list"
    );
    let main_names = names(main);
    for syscall in IO_URING {
        ensure!(
            main_names.iter().any(|n| n == syscall),
            "{syscall} is not in the main allow list"
        );
    }
    for syscall in [
        "read",
        "write",
        "epoll_pwait",
        "membarrier",
        "mmap",
        "futex",
    ] {
        ensure!(
            main_names.iter().any(|n| n == syscall),
            "Docker's default allows {syscall}; the profile does not"
        );
    }
    ensure!(
        main_names.len() >= 300,
        "only {} syscalls in the main allow list: not Docker's default",
        main_names.len()
    );

    // Nothing beyond io_uring is opened up: the syscalls Docker blocks stay
    // blocked (or allowed only under Docker's conditions), and io_uring
    // appears nowhere else.
    for rule in rules.iter().filter(|r| unconditional(r)) {
        let rule_names = names(rule);
        let opened: Vec<&&str> = DOCKER_BLOCKED
            .iter()
            .filter(|b| rule_names.iter().any(|n| n == *b))
            .collect();
        ensure!(
            opened.is_empty(),
            "allowed unconditionally, blocked by Docker's default: {opened:?}"
        );
    }
    for (i, rule) in rules.iter().enumerate().skip(1) {
        let rule_names = names(rule);
        ensure!(
            !IO_URING.iter().any(|s| rule_names.iter().any(|n| n == s)),
            "rule {i} mentions io_uring: {rule}"
        );
    }
    Ok(())
}

/// The Dockerfile's contract with the README: both binaries, non-root,
/// `/data` as the data path, nsqd's and nsqlookupd's ports.
#[test]
fn dockerfile_builds_both_binaries_and_runs_nsqd() -> Result<()> {
    let root = workspace_root();
    let dockerfile = fs::read_to_string(root.join("Dockerfile"))?;
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    ensure!(
        dockerfile.contains("cargo build --locked --release -p nsq-broker -p nsq-lookupd"),
        "the builder stage builds nsqd and nsqlookupd"
    );
    ensure!(has("EXPOSE 4150 4151 4160 4161"), "EXPOSE the four ports");
    ensure!(has("VOLUME [\"/data\"]"), "a /data volume");
    ensure!(
        has("ENTRYPOINT [\"nsqd\", \"--data-path=/data\"]"),
        "nsqd is the entrypoint, with /data as its data path"
    );
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .ok_or_else(|| anyhow!("no USER: the image would run as root"))?;
    ensure!(
        !["root", "0", "root:root", "0:0"].contains(&user.trim()),
        "USER {user} is root"
    );

    let ignore = fs::read_to_string(root.join(".dockerignore"))?;
    for entry in ["**/target", ".git", "tests/.venv", "**/node_modules"] {
        ensure!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
    Ok(())
}
