//! The metric names a PromQL expression (or a Grafana template query such
//! as `label_values(metric, label)`) reads, for the dashboard test: every
//! name a dashboard panel uses must be a family `/metrics` exposes. A small
//! scanner, not a parser: it skips strings, label matchers, durations,
//! numbers and Grafana variables, and takes identifiers not followed by `(`
//! (functions) that are not PromQL keywords.

use std::collections::BTreeSet;

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

pub fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

pub fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

pub fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Index just past the string literal that starts at `i` (quote `"`, `'` or
/// a backtick, which has no escapes), and its raw contents.
pub fn read_string(b: &[u8], i: usize) -> (usize, String) {
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
pub fn metric_names(expr: &str) -> BTreeSet<String> {
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
pub fn split_top_level(s: &str) -> Vec<&str> {
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
pub fn call_body<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    let rest = query.trim().strip_prefix(name)?.trim_start();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    // `f(a) + g(b)` also starts with `f(` and ends with `)`: the opening
    // parenthesis must close at the very end.
    let b = rest.as_bytes();
    (skip_balanced(b, 0, b'(', b')') == b.len()).then_some(inner)
}

/// `label_values(selector, label)` → (selector, label). `None` for the
/// one-argument form and for other queries.
pub fn label_values_parts(query: &str) -> Option<(&str, &str)> {
    match split_top_level(call_body(query, "label_values")?).as_slice() {
        [selector, label] => Some((selector, label)),
        _ => None,
    }
}

/// Metric names of a Grafana Prometheus variable query: `label_values`
/// (metric from its selector, never the label), `query_result(expr)`,
/// `label_names()`/`metrics(regex)` (none), or a plain PromQL expression.
pub fn variable_metric_names(query: &str) -> BTreeSet<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
            metric_names(
                "rate(a_total{x=\"1\"}[$__rate_interval]) / rate(b_total [5m:1m] offset 1h)"
            ),
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
}
