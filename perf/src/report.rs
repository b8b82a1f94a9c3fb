//! The Markdown report: machine and commit header, a results table with
//! ours/reference ratios next to issue 3's published Go nsqd figures, the
//! latency table, memory and CPU, failures, and links to the SVG plots.

use std::fmt::Write as _;

use serde_json::Value;

use crate::runner::{RunResult, Target};
use crate::scenario::{Focus, Scenario};

/// Where and how the run happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Header {
    /// UTC date, YYYY-MM-DD.
    pub date: String,
    /// CPU model.
    pub cpu: String,
    /// CPUs this process may use.
    pub cores: usize,
    /// Memory, GiB.
    pub mem_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the run started (other tenants show here).
    pub load_at_start: String,
    /// `git rev-parse --short HEAD`, `+dirty` when the tree has changes.
    pub commit: String,
    /// Our broker binary and its `--version` line.
    pub ours: String,
    /// Reference broker, if any.
    pub reference: Option<String>,
    /// The command line that produced the report.
    pub command: String,
    /// Seconds per timed step, and warm-up.
    pub duration_s: f64,
    /// Warm-up, s.
    pub warmup_s: f64,
    /// A/B rounds.
    pub rounds: usize,
}

/// A figure taken from a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Publish msg/s.
    PubRate,
    /// Publish MiB/s.
    PubMib,
    /// Consume msg/s.
    SubRate,
    /// Consume MiB/s.
    SubMib,
    /// Publish acknowledgement p99, ns.
    AckP99,
    /// End-to-end p50, ns.
    E2eP50,
    /// End-to-end p99, ns.
    E2eP99,
    /// End-to-end p99.9, ns.
    E2eP999,
}

impl Figure {
    fn label(self) -> &'static str {
        match self {
            Figure::PubRate => "PUB msg/s",
            Figure::PubMib => "PUB MiB/s",
            Figure::SubRate => "SUB msg/s",
            Figure::SubMib => "SUB MiB/s",
            Figure::AckP99 => "PUB ack p99",
            Figure::E2eP50 => "end-to-end p50",
            Figure::E2eP99 => "end-to-end p99",
            Figure::E2eP999 => "end-to-end p99.9",
        }
    }

    fn is_latency(self) -> bool {
        matches!(
            self,
            Figure::AckP99 | Figure::E2eP50 | Figure::E2eP99 | Figure::E2eP999
        )
    }

    /// The figures reported for a scenario focus.
    pub fn for_focus(focus: Focus) -> &'static [Figure] {
        match focus {
            Focus::Publish => &[Figure::PubRate, Figure::PubMib, Figure::AckP99],
            Focus::Consume => &[Figure::SubRate, Figure::SubMib],
            Focus::Both => &[Figure::PubRate, Figure::SubRate, Figure::E2eP99],
            Focus::PubThenSub => &[Figure::PubRate, Figure::SubRate],
            Focus::Latency => &[
                Figure::PubRate,
                Figure::E2eP50,
                Figure::E2eP99,
                Figure::E2eP999,
                Figure::AckP99,
            ],
            Focus::Custom(_) => &[],
        }
    }

    /// This figure from one run's loadgen summaries.
    pub fn of(self, run: &RunResult) -> Option<f64> {
        let first_pub = run.steps.iter().find(|s| !s["publish"].is_null());
        let last_sub = run.steps.iter().rev().find(|s| !s["consume"].is_null());
        let get = |step: Option<&Value>, side: &str, key: &str| -> Option<f64> {
            step.and_then(|s| s[side][key].as_f64())
        };
        let lat = |step: Option<&Value>, side: &str, key: &str| -> Option<f64> {
            step.and_then(|s| s[side]["latency"][key].as_f64())
        };
        match self {
            Figure::PubRate => get(first_pub, "publish", "msgs_per_sec"),
            Figure::PubMib => get(first_pub, "publish", "mib_per_sec"),
            Figure::SubRate => get(last_sub, "consume", "msgs_per_sec"),
            Figure::SubMib => get(last_sub, "consume", "mib_per_sec"),
            Figure::AckP99 => lat(first_pub, "publish", "p99_ns"),
            Figure::E2eP50 => lat(last_sub, "consume", "p50_ns"),
            Figure::E2eP99 => lat(last_sub, "consume", "p99_ns"),
            Figure::E2eP999 => lat(last_sub, "consume", "p999_ns"),
        }
    }

    /// Formats a value of this figure.
    pub fn format(self, v: f64) -> String {
        if self.is_latency() {
            human_ns(v)
        } else if matches!(self, Figure::PubMib | Figure::SubMib) {
            format!("{v:.1}")
        } else {
            format!("{:.0}k", v / 1e3)
        }
    }
}

/// ns as a short duration.
pub fn human_ns(ns: f64) -> String {
    if ns < 1e6 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// Median of the successful runs' values (None when none succeeded).
pub fn median(runs: &[&RunResult], f: impl Fn(&RunResult) -> Option<f64>) -> Option<f64> {
    let mut values: Vec<f64> = runs.iter().filter(|r| r.ok).filter_map(|r| f(r)).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The runs of one scenario on one target.
pub fn runs_of<'a>(results: &'a [RunResult], scenario: &str, target: Target) -> Vec<&'a RunResult> {
    results
        .iter()
        .filter(|r| r.scenario == scenario && r.target == target)
        .collect()
}

fn cell(runs: &[&RunResult], figure: Figure) -> String {
    if runs.is_empty() {
        return "–".into();
    }
    match median(runs, |r| figure.of(r)) {
        Some(v) => figure.format(v),
        None if runs.iter().all(|r| !r.ok) => "FAILED".into(),
        None => "n/a".into(),
    }
}

fn gib(bytes: f64) -> String {
    format!("{:.2} GiB", bytes / (1u64 << 30) as f64)
}

/// Renders the report.
pub fn markdown(header: &Header, scenarios: &[Scenario], results: &[RunResult]) -> String {
    let mut md = String::new();
    let has_ref = header.reference.is_some();
    let _ = writeln!(md, "# Broker performance report, {}\n", header.date);
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| Machine | {} × {} CPUs, {:.1} GiB RAM |",
        header.cpu, header.cores, header.mem_gib
    );
    let _ = writeln!(md, "| Kernel | {} |", header.kernel);
    let _ = writeln!(md, "| Load average at start | {} |", header.load_at_start);
    let _ = writeln!(md, "| Commit | `{}` |", header.commit);
    let _ = writeln!(md, "| Ours | `{}` |", header.ours);
    let _ = writeln!(
        md,
        "| Reference | {} |",
        header.reference.as_deref().map_or(
            "none given (`--reference PATH` adds an A/B column)".to_string(),
            |r| format!("`{r}`")
        )
    );
    let _ = writeln!(
        md,
        "| Timing | {:.1} s measured after {:.1} s warm-up per step, {} round(s){} |",
        header.duration_s,
        header.warmup_s,
        header.rounds,
        if has_ref {
            ", A/B order alternating"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "| Command | `{}` |\n", header.command);
    let _ = writeln!(
        md,
        "Broker and load generator share the machine's cores, as in the issue-3 \
         figures. Values are medians over rounds. The \"Go nsqd v1.3\" column is \
         the figure quoted in issue 3 for this machine class (not measured in \
         this run; its PUB runs used `--mem-queue-size=1000000` with disk \
         overflow).\n"
    );

    let _ = writeln!(md, "## Results\n");
    if has_ref {
        let _ = writeln!(
            md,
            "| Scenario | Figure | Ours | Reference | Ours / reference | Go nsqd v1.3 (issue 3) |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---|");
    } else {
        let _ = writeln!(md, "| Scenario | Figure | Ours | Go nsqd v1.3 (issue 3) |");
        let _ = writeln!(md, "|---|---|---:|---|");
    }
    for scenario in scenarios {
        let ours = runs_of(results, scenario.name, Target::Ours);
        if ours.is_empty() {
            continue;
        }
        let reference = runs_of(results, scenario.name, Target::Reference);
        for (i, figure) in Figure::for_focus(scenario.focus).iter().enumerate() {
            let name = if i == 0 {
                format!("`{}`", scenario.name)
            } else {
                String::new()
            };
            let published = if i == 0 {
                scenario.published.unwrap_or("")
            } else {
                ""
            };
            if has_ref {
                let ratio = match (
                    median(&ours, |r| figure.of(r)),
                    median(&reference, |r| figure.of(r)),
                ) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                    _ => "–".into(),
                };
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {} | {ratio} | {published} |",
                    figure.label(),
                    cell(&ours, *figure),
                    cell(&reference, *figure)
                );
            } else {
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {published} |",
                    figure.label(),
                    cell(&ours, *figure)
                );
            }
        }
    }
    let _ = writeln!(
        md,
        "\nFor latency rows lower is better, so a ratio below 1 favours ours. \
         Rates are acknowledged publishes (PUB) and deliveries summed over \
         channels (SUB) inside the measured window; a drain is timed from its \
         first to its last message.\n"
    );

    crate::custom::markdown(&mut md, scenarios, results, has_ref);

    let _ = writeln!(md, "## Scenarios\n");
    for scenario in scenarios {
        let flags = scenario.broker_flags.join(" ");
        let _ = writeln!(
            md,
            "- `{}`: {} (broker flags `{flags}`)",
            scenario.name, scenario.title
        );
    }

    let _ = writeln!(md, "\n## Memory and CPU\n");
    let _ = writeln!(md, "| Scenario | Broker | Peak RSS | Broker CPU s | loadgen CPU s | Wall s | Messages delivered or acknowledged |");
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|");
    for scenario in scenarios {
        for target in [Target::Ours, Target::Reference] {
            let runs = runs_of(results, scenario.name, target);
            if runs.is_empty() {
                continue;
            }
            let rss =
                median(&runs, |r| r.broker_peak_rss.map(|b| b as f64)).map_or("–".into(), gib);
            let cpu = median(&runs, |r| r.broker_cpu_s).map_or("–".into(), |v| format!("{v:.1}"));
            let lg = median(&runs, |r| (!r.steps.is_empty()).then_some(r.loadgen_cpu_s))
                .map_or("–".into(), |v| format!("{v:.1}"));
            let wall =
                median(&runs, |r| Some(r.wall_s)).map_or("–".into(), |v| format!("{v:.1}"));
            let msgs = median(&runs, |r| {
                let acked: f64 = r
                    .steps
                    .iter()
                    .filter_map(|s| s["acknowledged"].as_f64())
                    .sum();
                let got: f64 = r
                    .steps
                    .iter()
                    .filter_map(|s| s["integrity"]["total"]["received"].as_f64())
                    .sum();
                // Custom scenarios have no loadgen steps: "–".
                (!r.steps.is_empty()).then_some(acked.max(got))
            })
            .map_or("–".into(), |v| format!("{v:.0}"));
            let _ = writeln!(
                md,
                "| `{}` | {target:?} | {rss} | {cpu} | {lg} | {wall} | {msgs} |",
                scenario.name
            );
        }
    }
    let _ = writeln!(
        md,
        "\nPeak RSS is the broker's VmHWM at the end of the scenario (a fresh \
         broker per scenario). CPU seconds cover the whole scenario, warm-up \
         and drain included.\n"
    );

    let failures: Vec<&RunResult> = results.iter().filter(|r| !r.ok).collect();
    if !failures.is_empty() {
        let _ = writeln!(md, "## Failures\n");
        for run in failures {
            let _ = writeln!(
                md,
                "- `{}` on {:?} (round {}): {}",
                run.scenario,
                run.target,
                run.round,
                run.error.as_deref().unwrap_or("unknown").replace('\n', " ")
            );
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Plots\n");
    let _ = writeln!(md, "![Throughput](throughput.svg)\n");
    let _ = writeln!(md, "![End-to-end latency percentiles](latency.svg)\n");
    let _ = writeln!(md, "Raw loadgen summaries for every run: `results.json`.");
    md
}
