//! The Grafana dashboard `deploy/grafana/nsqd.json` against the real
//! `GET /metrics` of nsqd.
//!
//! * `extractor_*`: unit tests of the PromQL metric-name extractor below
//!   (no broker).
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
use nsq_tests::{consumer, unique_name, wait_until, workspace_root, TestNsqd, READ_TIMEOUT};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// PromQL metric-name extraction
// ---------------------------------------------------------------------------

/// PromQL words that are never metric names: aggregation operators, set and
/// vector-matching operators, modifiers and the float literals.
/// (Functions are recognised by the `(` that follows them.)
const RESERVED: &[&str] = &[
    // Aggregation operators (may be followed by `by (...)` before their `(`).
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    // Binary operators and modifiers.
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    // Float literals.
    "inf",
    "nan",
];

/// Keywords that may be followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Index just past the string literal that starts at `i` (quote `"`, `'` or
/// a backtick, which has no escapes), and its raw contents.
fn read_string(b: &[u8], i: usize) -> (usize, String) {
    let quote = b[i];
    let mut j = i + 1;
    let mut text = Vec::new();
    while j < b.len() {
        let c = b[j];
        if c == quote {
            return (j + 1, String::from_utf8_lossy(&text).into_owned());
        }
        if c == b'\\' && quote != b'`' && j + 1 < b.len() {
            text.push(b[j + 1]);
            j += 2;
            continue;
        }
        text.push(c);
        j += 1;
    }
    (b.len(), String::from_utf8_lossy(&text).into_owned())
}

/// Index just past the bracketed group that opens at `i` (nesting counted;
/// string literals inside are skipped whole).
fn skip_balanced(b: &[u8], i: usize, open: u8, close: u8) -> usize {
    let mut depth = 0usize;
    let mut j = i;
    while j < b.len() {
        let c = b[j];
        if matches!(c, b'"' | b'\'' | b'`') {
            j = read_string(b, j).0;
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return j + 1;
            }
        }
        j += 1;
    }
    b.len()
}

/// Skips a Grafana variable: `$name`, `$__rate_interval`, `${name:format}`.
fn skip_variable(b: &[u8], i: usize) -> usize {
    let j = i + 1;
    if j < b.len() && b[j] == b'{' {
        return skip_balanced(b, j, b'{', b'}');
    }
    let mut k = j;
    while k < b.len() && is_ident_char(b[k]) {
        k += 1;
    }
    k
}

/// Skips a number or duration literal (`0.99`, `1e3`, `0x1f`, `5m`, `1h30m`).
fn skip_number(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
        i += 1;
    }
    i
}

/// Scans a label-matcher block `{...}` starting at `i`. Label names and
/// values are not metrics, except `{__name__="x"}` and a bare quoted name
/// (`{"x", label="v"}`, Prometheus 3), which are recorded. Returns the
/// index past the closing `}`.
fn scan_matchers(b: &[u8], i: usize, out: &mut BTreeSet<String>) -> usize {
    let mut j = i + 1;
    loop {
        j = skip_ws(b, j);
        if j >= b.len() {
            return b.len();
        }
        match b[j] {
            b'}' => return j + 1,
            b',' => j += 1,
            c if is_ident_start(c) || matches!(c, b'"' | b'\'' | b'`') => {
                // A label name (or a bare quoted metric name).
                let (after_name, name, quoted) = if is_ident_start(c) {
                    let mut k = j;
                    while k < b.len() && is_ident_char(b[k]) {
                        k += 1;
                    }
                    (k, String::from_utf8_lossy(&b[j..k]).into_owned(), false)
                } else {
                    let (k, s) = read_string(b, j);
                    (k, s, true)
                };
                j = skip_ws(b, after_name);
                let op_start = j;
                while j < b.len() && matches!(b[j], b'=' | b'!' | b'~') {
                    j += 1;
                }
                let op = &b[op_start..j];
                if op.is_empty() {
                    if quoted {
                        out.insert(name);
                    }
                    continue;
                }
                j = skip_ws(b, j);
                if j < b.len() && matches!(b[j], b'"' | b'\'' | b'`') {
                    let (k, value) = read_string(b, j);
                    if name == "__name__" && op == b"=" {
                        out.insert(value);
                    }
                    j = k;
                }
            }
            _ => j += 1,
        }
    }
}

/// Every metric name a PromQL expression selects (Grafana variables such
/// as `$topic` or `[$__rate_interval]` allowed). Functions, aggregation
/// operators, keywords, label names in `by (...)`/`on (...)` lists and
/// label matchers, strings, numbers and durations are not metric names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => i = read_string(b, i).0,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            // Range selectors, subqueries, `[[var]]`: durations only.
            b'[' => i = skip_balanced(b, i, b'[', b']'),
            b'{' => i = scan_matchers(b, i, &mut out),
            b'$' => i = skip_variable(b, i),
            b'0'..=b'9' => i = skip_number(b, i),
            b'.' if i + 1 < b.len() && b[i + 1].is_ascii_digit() => i = skip_number(b, i),
            c if is_ident_start(c) => {
                let start = i;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let lower = word.to_ascii_lowercase();
                let next = skip_ws(b, i);
                let paren_follows = next < b.len() && b[next] == b'(';
                if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                    if paren_follows {
                        i = skip_balanced(b, next, b'(', b')');
                    }
                } else if !RESERVED.contains(&lower.as_str()) && !paren_follows {
                    out.insert(word.to_string());
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Splits `s` at commas that are not nested in brackets or strings.
fn split_top_level(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = read_string(b, i).0;
                continue;
            }
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = s[start..].trim();
    if !last.is_empty() || !parts.is_empty() {
        parts.push(last);
    }
    parts
}

/// The text between the parentheses of `name( ... )` when `query` is
/// exactly one call of `name`.
fn call_body<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    let rest = query.trim().strip_prefix(name)?.trim_start();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    // `f(a) + g(b)` also starts with `f(` and ends with `)`: the opening
    // parenthesis must close at the very end.
    let b = rest.as_bytes();
    (skip_balanced(b, 0, b'(', b')') == b.len()).then_some(inner)
}

/// `label_values(selector, label)` → (selector, label). `None` for the
/// one-argument form and for other queries.
fn label_values_parts(query: &str) -> Option<(&str, &str)> {
    match split_top_level(call_body(query, "label_values")?).as_slice() {
        [selector, label] => Some((selector, label)),
        _ => None,
    }
}

/// Metric names of a Grafana Prometheus variable query: `label_values`
/// (metric from its selector, never the label), `query_result(expr)`,
/// `label_names()`/`metrics(regex)` (none), or a plain PromQL expression.
fn variable_metric_names(query: &str) -> BTreeSet<String> {
    if let Some(body) = call_body(query, "label_values") {
        return match label_values_parts(query) {
            Some((selector, _)) => metric_names(selector),
            None if split_top_level(body).len() <= 1 => BTreeSet::new(),
            None => metric_names(body),
        };
    }
    if let Some(body) = call_body(query, "query_result") {
        return metric_names(body);
    }
    if call_body(query, "label_names").is_some() || call_body(query, "metrics").is_some() {
        return BTreeSet::new();
    }
    metric_names(query)
}

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
// Tests: the extractor
// ---------------------------------------------------------------------------

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn extractor_plain_selectors_and_functions() {
    assert_eq!(metric_names("up"), set(&["up"]));
    assert_eq!(
        metric_names("rate(x_total[1m])"),
        set(&["x_total"]),
        "rate is a function, [1m] a duration"
    );
    assert_eq!(
        metric_names("time() - process_start_time_seconds{instance=~\"$instance\"}"),
        set(&["process_start_time_seconds"])
    );
    assert_eq!(
        metric_names("rate(a_total{x=\"1\"}[$__rate_interval]) / rate(b_total [5m:1m] offset 1h)"),
        set(&["a_total", "b_total"])
    );
    assert_eq!(
        metric_names("label_replace(up, \"dst\", \"$1\", \"src\", \"(.*)\")"),
        set(&["up"]),
        "string arguments are not metrics"
    );
    assert_eq!(
        metric_names("count(nsqd_topic_paused{topic=~\"$topic\"} == 1) or vector(0)"),
        set(&["nsqd_topic_paused"])
    );
    assert_eq!(
        metric_names("rate(x_total[1m]) @ start() > 1e-3 and y > Inf"),
        set(&["x_total", "y"])
    );
    assert_eq!(metric_names("job:rate5m:sum"), set(&["job:rate5m:sum"]));
}

#[test]
fn extractor_aggregations_and_label_lists() {
    assert_eq!(
        metric_names("sum by (topic) (rate(nsqd_topic_messages_total{topic=~\"$topic\"}[1m]))"),
        set(&["nsqd_topic_messages_total"])
    );
    assert_eq!(
        metric_names("sum(rate(m_total[5m])) by (topic, channel)"),
        set(&["m_total"]),
        "labels after a trailing `by` are not metrics"
    );
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le) (rate(nsqd_fsync_duration_seconds_bucket[5m])))"
        ),
        set(&["nsqd_fsync_duration_seconds_bucket"])
    );
    assert_eq!(
        metric_names("SUM WITHOUT (shard) (a) / ignoring(shard) group_left(version) b"),
        set(&["a", "b"])
    );
    assert_eq!(
        metric_names("a * on (shard) group_left c"),
        set(&["a", "c"]),
        "group_left without a label list"
    );
    assert_eq!(
        metric_names("topk(5, max by (instance) (x)) - min by (instance) (y)"),
        set(&["x", "y"])
    );
    assert_eq!(
        metric_names("nsqd_shard_mesh_queued{shard=\"0\"} / (nsqd_shard_mesh_capacity > 0)"),
        set(&["nsqd_shard_mesh_capacity", "nsqd_shard_mesh_queued"])
    );
}

#[test]
fn extractor_label_matchers() {
    assert_eq!(
        metric_names("x{topic=~\"$topic\", channel!=\"a}b\", le=\"+Inf\"}"),
        set(&["x"]),
        "label names and values, even with braces inside, are not metrics"
    );
    assert_eq!(
        metric_names("{__name__=\"named\", job=\"j\"} + {__name__=~\"re.*\"}"),
        set(&["named"])
    );
    assert_eq!(
        metric_names("{\"quoted.name\", topic=\"t\"}"),
        set(&["quoted.name"])
    );
    assert_eq!(
        metric_names("sum(x{instance=~\"${instance:regex}\"}) # comment metric_in_comment"),
        set(&["x"])
    );
}

#[test]
fn extractor_variable_queries() {
    assert_eq!(
        variable_metric_names("label_values(nsqd_channel_depth, topic)"),
        set(&["nsqd_channel_depth"])
    );
    assert_eq!(
        variable_metric_names(
            "label_values(nsqd_channel_depth{instance=~\"$instance\", topic=~\"$topic\"}, channel)"
        ),
        set(&["nsqd_channel_depth"])
    );
    assert_eq!(
        label_values_parts("label_values(m{a=\"1,2\"}, channel)"),
        Some(("m{a=\"1,2\"}", "channel"))
    );
    assert_eq!(variable_metric_names("label_values(instance)"), set(&[]));
    assert_eq!(variable_metric_names("label_names()"), set(&[]));
    assert_eq!(variable_metric_names("metrics(nsqd_.*)"), set(&[]));
    assert_eq!(
        variable_metric_names("query_result(topk(5, sum by (topic) (nsqd_topic_depth)))"),
        set(&["nsqd_topic_depth"])
    );
    assert_eq!(
        variable_metric_names("sum by (shard) (nsqd_shard_connections)"),
        set(&["nsqd_shard_connections"])
    );
}

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
