//! The Grafana dashboard `deploy/grafana/nsqd.json` against the real
//! `GET /metrics` of nsqd.
//!
//! * `extractor_family_mapping`: `_bucket`/`_sum`/`_count` map to their
//!   histogram or summary (the extractor itself, `nsq_tests::promql`, has
//!   its unit tests there).
//! * `dashboard_structure`: the JSON is an importable dashboard laid out as
//!   documented (data source variable, `instance`/`topic`/`channel`
//!   variables, the six rows, no overlapping panels), and every query names
//!   only `nsqd_*` / `process_*` metrics (no broker).
//! * `dashboard_metrics_are_exposed`: starts nsqd with e2e latency
//!   percentiles on and a small workload (publish, defer, requeue, FIN on one
//!   topic and channel, spilling to disk), scrapes `/metrics` and checks that
//!   every metric the dashboard queries is an exposed family (`_bucket`,
//!   `_sum`, `_count` map to their histogram or summary), and that the
//!   template variables' `label_values` sources carry the labels they read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use nsq_tests::promql::{
    is_ident_char, label_values_parts, metric_names, read_string, skip_ws, variable_metric_names,
};
use nsq_tests::{consumer, unique_name, wait_until, workspace_root, TestNsqd, READ_TIMEOUT};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// The dashboard
// ---------------------------------------------------------------------------

const ROWS: [&str; 6] = [
    "Throughput",
    "Backlog",
    "Latency",
    "Cores",
    "Disk",
    "Process",
];
const DATASOURCE_UID: &str = "${DS_PROMETHEUS}";

fn dashboard_path() -> PathBuf {
    workspace_root()
        .join("deploy")
        .join("grafana")
        .join("nsqd.json")
}

fn load_dashboard() -> Result<Value> {
    let path = dashboard_path();
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Every panel, rows' nested `panels` (collapsed rows) included.
fn all_panels(dash: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// A query of the dashboard: where it is, the text, and whether it is a
/// template variable query (Grafana syntax) rather than plain PromQL.
struct Query {
    place: String,
    text: String,
    variable: bool,
}

fn dashboard_queries(dash: &Value) -> Result<Vec<Query>> {
    let mut out = Vec::new();
    for p in all_panels(dash) {
        let title = p["title"].as_str().unwrap_or("<untitled>");
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .with_context(|| format!("panel {title:?}: a target without an expr: {t}"))?;
            out.push(Query {
                place: format!("panel {title:?}"),
                text: expr.to_string(),
                variable: false,
            });
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap_or("<unnamed>");
        let query = match &v["query"] {
            Value::String(s) => Some(s.as_str()),
            q => q["query"].as_str(),
        };
        let texts: BTreeSet<&str> = query.into_iter().chain(v["definition"].as_str()).collect();
        ensure!(!texts.is_empty(), "variable {name}: no query");
        for text in texts {
            out.push(Query {
                place: format!("variable ${name}"),
                text: text.to_string(),
                variable: true,
            });
        }
    }
    Ok(out)
}

/// Number of `"expr"` keys anywhere in `v` (to prove no query is missed).
fn count_expr_keys(v: &Value) -> usize {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| usize::from(k == "expr" && x.is_string()) + count_expr_keys(x))
            .sum(),
        Value::Array(a) => a.iter().map(count_expr_keys).sum(),
        _ => 0,
    }
}

/// Metric name → places in the dashboard that query it.
fn dashboard_metrics(dash: &Value) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for q in dashboard_queries(dash)? {
        let names = if q.variable {
            variable_metric_names(&q.text)
        } else {
            metric_names(&q.text)
        };
        for name in names {
            out.entry(name).or_default().insert(q.place.clone());
        }
    }
    Ok(out)
}

fn datasource_uid(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.as_str()),
        v => v["uid"].as_str(),
    }
}

// ---------------------------------------------------------------------------
// The exposition format
// ---------------------------------------------------------------------------

/// A parsed `/metrics` body: family → type, and sample name → label sets.
#[derive(Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

/// Parses `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>)> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && is_ident_char(b[i]) {
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let name = line[..i].to_string();
    let mut labels = BTreeMap::new();
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            i = skip_ws(b, i);
            match b.get(i)? {
                b'}' => break,
                b',' => i += 1,
                _ => {
                    let start = i;
                    while i < b.len() && is_ident_char(b[i]) {
                        i += 1;
                    }
                    let key = line[start..i].to_string();
                    i = skip_ws(b, i);
                    if b.get(i) != Some(&b'=') {
                        return None;
                    }
                    i = skip_ws(b, i + 1);
                    if b.get(i) != Some(&b'"') {
                        return None;
                    }
                    let (k, value) = read_string(b, i);
                    labels.insert(key, value);
                    i = k;
                }
            }
        }
    }
    Some((name, labels))
}

fn parse_exposition(text: &str) -> Result<Exposition> {
    let mut e = Exposition::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    bail!("malformed TYPE line: {line:?}");
                };
                e.types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        let (name, labels) =
            parse_sample(line).with_context(|| format!("malformed sample line: {line:?}"))?;
        e.samples.entry(name).or_default().push(labels);
    }
    Ok(e)
}

/// Checks that `name`, as a query uses it, is an exposed family: the family
/// itself (a histogram has no series of that bare name), or `_bucket` of a
/// histogram, or `_sum`/`_count` of a histogram or summary.
fn check_exposed(name: &str, types: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(kind) = types.get(name) {
        return if kind == "histogram" {
            Err(format!(
                "{name} is a histogram: query {name}_bucket, _sum or _count"
            ))
        } else {
            Ok(())
        };
    }
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ] {
        if let Some(family) = name.strip_suffix(suffix) {
            if let Some(kind) = types.get(family) {
                return if kinds.contains(&kind.as_str()) {
                    Ok(())
                } else {
                    Err(format!("{family} is a {kind}: it has no {suffix} series"))
                };
            }
        }
    }
    Err(format!("{name}: no `# TYPE` line for it (nor its family)"))
}

// ---------------------------------------------------------------------------
// Tests: the family mapping
// ---------------------------------------------------------------------------

#[test]
fn extractor_family_mapping() {
    let types: BTreeMap<String, String> = [
        ("h_seconds", "histogram"),
        ("s_seconds", "summary"),
        ("c_total", "counter"),
        ("g", "gauge"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    for ok in [
        "h_seconds_bucket",
        "h_seconds_sum",
        "h_seconds_count",
        "s_seconds",
        "s_seconds_sum",
        "s_seconds_count",
        "c_total",
        "g",
    ] {
        assert_eq!(check_exposed(ok, &types), Ok(()), "{ok}");
    }
    for bad in ["h_seconds", "s_seconds_bucket", "g_count", "missing", "c"] {
        assert!(check_exposed(bad, &types).is_err(), "{bad}");
    }
    let e = parse_exposition(
        "# HELP g a gauge\n# TYPE g gauge\ng{topic=\"a \\\"b\\\"\",shard=\"0\"} 1\ng 2 1700000000\n",
    )
    .expect("parses");
    assert_eq!(e.types.get("g").map(String::as_str), Some("gauge"));
    let g = &e.samples["g"];
    assert_eq!(g.len(), 2);
    assert_eq!(g[0]["topic"], "a \"b\"");
    assert_eq!(g[0]["shard"], "0");
}

// ---------------------------------------------------------------------------
// Tests: the dashboard file
// ---------------------------------------------------------------------------

#[test]
fn dashboard_structure() -> Result<()> {
    let dash = load_dashboard()?;
    ensure!(
        dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion: {}",
        dash["schemaVersion"]
    );
    ensure!(
        dash["uid"].as_str().is_some_and(|u| !u.is_empty()) && dash["title"].is_string(),
        "uid and title"
    );

    // Template variables.
    let vars = dash["templating"]["list"]
        .as_array()
        .context("templating.list")?;
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .context("a data source variable")?;
    ensure!(
        ds["query"] == "prometheus" && ds["name"] == "DS_PROMETHEUS",
        "{ds}"
    );
    for (name, label) in [
        ("instance", "instance"),
        ("topic", "topic"),
        ("channel", "channel"),
    ] {
        let v = var(name).with_context(|| format!("variable {name}"))?;
        ensure!(v["type"] == "query", "variable {name}: {v}");
        ensure!(
            datasource_uid(&v["datasource"]) == Some(DATASOURCE_UID),
            "variable {name} uses {}",
            v["datasource"]
        );
        let def = v["definition"].as_str().context("definition")?;
        let (_, read) = label_values_parts(def)
            .with_context(|| format!("variable {name}: not label_values(metric, label): {def}"))?;
        ensure!(read == label, "variable {name} reads label {read}");
    }

    // Rows, panels, layout.
    let top = dash["panels"].as_array().context("panels")?;
    let rows: Vec<&str> = top
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    ensure!(rows == ROWS, "rows {rows:?}, want {ROWS:?}");
    ensure!(
        top.first().is_some_and(|p| p["type"] == "row"),
        "starts with a row"
    );
    let panels = all_panels(&dash);
    let mut ids = BTreeSet::new();
    let mut boxes = Vec::new();
    for p in &panels {
        let title = p["title"].as_str().context("every panel has a title")?;
        let id = p["id"].as_u64().with_context(|| format!("{title}: id"))?;
        ensure!(ids.insert(id), "duplicate panel id {id} ({title})");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().context("gridPos.x")?,
            g["y"].as_u64().context("gridPos.y")?,
            g["w"].as_u64().context("gridPos.w")?,
            g["h"].as_u64().context("gridPos.h")?,
        );
        ensure!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {g}");
        boxes.push((title, x, y, w, h));
        if p["type"] == "row" {
            continue;
        }
        ensure!(
            matches!(p["type"].as_str(), Some("timeseries" | "stat")),
            "{title}: panel type {}",
            p["type"]
        );
        ensure!(
            datasource_uid(&p["datasource"]) == Some(DATASOURCE_UID),
            "{title}: datasource {}",
            p["datasource"]
        );
        let targets = p["targets"].as_array().context("targets")?;
        ensure!(!targets.is_empty(), "{title}: no targets");
        let mut refs = BTreeSet::new();
        for t in targets {
            ensure!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{title}: empty expr"
            );
            ensure!(
                datasource_uid(&t["datasource"]) == Some(DATASOURCE_UID),
                "{title}: target datasource {}",
                t["datasource"]
            );
            let r = t["refId"].as_str().context("refId")?;
            ensure!(refs.insert(r), "{title}: duplicate refId {r}");
        }
    }
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let overlap = a.1 < b.1 + b.3 && b.1 < a.1 + a.3 && a.2 < b.2 + b.4 && b.2 < a.2 + a.4;
            ensure!(!overlap, "panels {:?} and {:?} overlap", a.0, b.0);
        }
    }

    // Every query is found, and names only our families.
    let queries = dashboard_queries(&dash)?;
    let panel_queries = queries.iter().filter(|q| !q.variable).count();
    ensure!(
        panel_queries == count_expr_keys(&dash),
        "{panel_queries} panel queries walked, but the file has {} `expr` keys",
        count_expr_keys(&dash)
    );
    let metrics = dashboard_metrics(&dash)?;
    ensure!(metrics.len() >= 20, "only {} metrics found", metrics.len());
    for (name, places) in &metrics {
        ensure!(
            name.starts_with("nsqd_") || name.starts_with("process_"),
            "{name} (in {places:?}) is not an nsqd metric"
        );
    }
    for q in queries.iter().filter(|q| !q.variable) {
        ensure!(
            !metric_names(&q.text).is_empty(),
            "{}: no metric in {:?}",
            q.place,
            q.text
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tests: against the real /metrics
// ---------------------------------------------------------------------------

/// Every metric the dashboard queries is a family nsqd exposes, after a
/// workload that creates every topic and channel series.
#[test]
fn dashboard_metrics_are_exposed() -> Result<()> {
    let dash = load_dashboard()?;
    let wanted = dashboard_metrics(&dash)?;

    let nsqd = TestNsqd::start(&[
        "--shards=2",
        "--e2e-processing-latency-percentile=0.5,0.99",
        // Most of the workload goes through the disk queue (and fsyncs).
        "--mem-queue-size=4",
        "--sync-every=1",
    ])?;
    let topic = unique_name("dashboard");
    let channel = "dashboard_ch";
    let mut c = consumer(nsqd.tcp_addr(), &topic, channel, 0, json!({}))?;
    let mut p = nsqd.connect()?;
    let bodies: Vec<Vec<u8>> = (0..20).map(|i| format!("msg-{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    p.mpub_ok(&topic, &refs)?;
    p.dpub_ok(&topic, 600_000, b"deferred")?;
    nsqd.wait_channel(&topic, channel, "21 messages in the channel", |ch| {
        ch["message_count"] == 21
    })?;

    // Consume the 20: FIN 19, requeue one and FIN it on redelivery.
    c.rdy(25)?;
    let mut ids = Vec::new();
    for n in 0..20 {
        let m = c
            .expect_message_skip_heartbeats()
            .with_context(|| format!("after {n} of 20 messages"))?;
        ids.push(m.id);
    }
    let (last, rest) = ids.split_last().context("20 messages")?;
    for id in rest {
        c.fin(id)?;
    }
    c.req(last, 0)?;
    let again = c.expect_message_skip_heartbeats()?;
    c.fin(&again.id)?;
    let ch = nsqd.wait_channel(
        &topic,
        channel,
        "all FINed, one requeue, one deferred",
        |ch| {
            ch["in_flight_count"] == 0
                && ch["depth"] == 0
                && ch["requeue_count"] == 1
                && ch["deferred_count"] == 1
                && ch["e2e_processing_latency"]["count"]
                    .as_u64()
                    .is_some_and(|n| n > 0)
        },
    )?;

    // Scrape until every family is there (bounded), then report.
    let mut last = Exposition::default();
    let mut failures = Vec::new();
    let mut status_err = None;
    let waited = wait_until(
        READ_TIMEOUT,
        "/metrics to expose the dashboard's metrics",
        || {
            let (status, body) = nsqd.http_get("/metrics")?;
            if status != 200 {
                status_err = Some(format!("GET /metrics returned {status}: {body}"));
                return Ok(false);
            }
            status_err = None;
            last = parse_exposition(&body)?;
            failures = wanted
                .iter()
                .filter_map(|(name, places)| {
                    check_exposed(name, &last.types)
                        .err()
                        .map(|e| format!("{e} (used in {places:?})"))
                })
                .collect();
            Ok(failures.is_empty())
        },
    );
    if let Some(e) = status_err {
        bail!("{e}");
    }
    ensure!(
        failures.is_empty(),
        "dashboard metrics not exposed by nsqd:\n  {}\nexposed families: {:?}",
        failures.join("\n  "),
        last.types
    );
    waited?;

    // The template variables can be populated: their label_values source has
    // series carrying the label (instance and job are Prometheus's own).
    let expected: BTreeMap<&str, &str> = [("topic", topic.as_str()), ("channel", channel)]
        .into_iter()
        .collect();
    for q in dashboard_queries(&dash)?.iter().filter(|q| q.variable) {
        let Some((selector, label)) = label_values_parts(&q.text) else {
            continue;
        };
        for metric in metric_names(selector) {
            let series = last.samples.get(&metric).map(Vec::as_slice).unwrap_or(&[]);
            let ok = match (label, expected.get(label)) {
                ("instance" | "job", _) => !series.is_empty(),
                (_, Some(value)) => series
                    .iter()
                    .any(|s| s.get(label).map(String::as_str) == Some(*value)),
                (_, None) => series.iter().any(|s| s.contains_key(label)),
            };
            ensure!(
                ok,
                "{}: no {metric} series with label {label} (want {:?}): {series:?}",
                q.place,
                expected.get(label)
            );
        }
    }

    // With --e2e-processing-latency-percentile the latency panels have data.
    let e2e = last
        .samples
        .get("nsqd_channel_e2e_processing_latency_seconds")
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let quantiles: BTreeSet<&str> = e2e
        .iter()
        .filter(|s| {
            s.get("topic") == Some(&topic) && s.get("channel").map(String::as_str) == Some(channel)
        })
        .filter_map(|s| s.get("quantile").map(String::as_str))
        .collect();
    ensure!(
        quantiles.len() == 2,
        "e2e quantile series of {topic}/{channel}: {quantiles:?} (channel stats {ch})"
    );
    Ok(())
}
