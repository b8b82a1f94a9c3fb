#!/usr/bin/env python3
"""Render the panels of deploy/grafana/nsqd.json from a live nsqd, without Grafana.

Scrapes an nsqd `GET /metrics` URL every --interval seconds for --samples
samples, evaluates every panel query of the dashboard (a small PromQL subset:
selectors, rate/irate/increase, sum/min/max/avg/count/stddev by/without,
histogram_quantile, arithmetic, comparisons, and/or/unless, vector(), time())
over those samples, and writes one self-contained HTML page: the dashboard's
rows and grid layout, inline SVG line charts and stat panels, dark
Grafana-like styling, no JavaScript, no external resources.

As Prometheus would, every scraped series gets an `instance` label
(host:port of --url). Dashboard variables ($instance, $topic, $channel)
select everything; $__rate_interval is 4 x --interval, as Grafana computes it
for a data source whose scrape interval is --interval.

Python 3 standard library only. Example:

    python3 deploy/grafana/preview/preview.py --url http://127.0.0.1:4151/metrics \\
        --interval 2 --samples 30 --out /tmp/nsqd-preview.html
    chromium --headless --no-sandbox --disable-gpu --window-size=1400,1800 \\
        --screenshot=docs/monitoring.png file:///tmp/nsqd-preview.html

--save-raw FILE keeps the scrapes (JSON); --replay FILE renders from such a
file instead of scraping, to restyle without re-running the workload.
"""

import argparse
import html
import json
import math
import os
import re
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DASHBOARD = os.path.normpath(os.path.join(HERE, "..", "nsqd.json"))

NaN = float("nan")


# --------------------------------------------------------------------------
# Prometheus text exposition format
# --------------------------------------------------------------------------

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(s):
    return s.replace("\\\\", "\x00").replace('\\"', '"').replace("\\n", "\n").replace("\x00", "\\")


def _float(s):
    s = s.strip()
    if s in ("+Inf", "Inf", "inf"):
        return math.inf
    if s in ("-Inf", "-inf"):
        return -math.inf
    return float(s)


def parse_exposition(text, extra_labels):
    """-> {labelkey: value}; labelkey is a sorted tuple of (name, value) with __name__."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        name, labels, value = m.groups()
        lab = dict(extra_labels)
        if labels:
            for lm in _LABEL.finditer(labels):
                lab[lm.group(1)] = _unescape(lm.group(2))
        lab["__name__"] = name
        try:
            out[tuple(sorted(lab.items()))] = _float(value)
        except ValueError:
            pass
    return out


# --------------------------------------------------------------------------
# PromQL subset: lexer, parser
# --------------------------------------------------------------------------

AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "group", "topk", "bottomk", "quantile"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<range>\[[^\]]*\])
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>==|!=|=~|!~|>=|<=|[-+*/%^(){},=<>])
    )""",
    re.X,
)


class PromQLError(Exception):
    pass


def tokenize(src):
    toks, pos = [], 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise PromQLError("cannot parse at %r" % src[pos:pos + 20])
        pos = m.end()
        kind = m.lastgroup
        toks.append((kind, m.group(kind)))
    toks.append(("eof", None))
    return toks


def parse_duration(s):
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", s):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}[unit]
    if total <= 0:
        raise PromQLError("bad duration %r" % s)
    return total


class Parser:
    def __init__(self, src):
        self.toks = tokenize(src)
        self.i = 0

    def peek(self, k=0):
        return self.toks[self.i + k]

    def next(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, kind, value=None):
        t = self.peek()
        if t[0] == kind and (value is None or t[1] == value):
            self.i += 1
            return t
        return None

    def expect(self, kind, value=None):
        t = self.accept(kind, value)
        if not t:
            raise PromQLError("expected %s %s, got %r" % (kind, value or "", self.peek()[1]))
        return t

    def parse(self):
        e = self.binary(0)
        if self.peek()[0] != "eof":
            raise PromQLError("trailing input at %r" % self.peek()[1])
        return e

    LEVELS = [
        ({"or", "unless"}, "ident"),
        ({"and"}, "ident"),
        ({"==", "!=", ">", "<", ">=", "<="}, "op"),
        ({"+", "-"}, "op"),
        ({"*", "/", "%"}, "op"),
        ({"^"}, "op"),
    ]

    def binary(self, level):
        if level == len(self.LEVELS):
            return self.unary()
        ops, kind = self.LEVELS[level]
        lhs = self.binary(level + 1)
        while True:
            t = self.peek()
            if t[0] != kind or t[1] not in ops:
                return lhs
            self.next()
            mods = self.modifiers()
            rhs = self.binary(level if t[1] == "^" else level + 1)
            lhs = ("binop", t[1], lhs, rhs, mods)
            if t[1] == "^":
                return lhs

    def labels_list(self):
        self.expect("op", "(")
        names = []
        while not self.accept("op", ")"):
            names.append(self.expect("ident")[1])
            self.accept("op", ",")
        return names

    def modifiers(self):
        mods = {"bool": False, "on": None, "ignoring": None, "group": None}
        if self.accept("ident", "bool"):
            mods["bool"] = True
        t = self.peek()
        if t[0] == "ident" and t[1] in ("on", "ignoring"):
            self.next()
            mods[t[1]] = self.labels_list()
        t = self.peek()
        if t[0] == "ident" and t[1] in ("group_left", "group_right"):
            self.next()
            mods["group"] = t[1]
            if self.peek() == ("op", "("):
                self.labels_list()
        return mods

    def unary(self):
        if self.accept("op", "-"):
            return ("binop", "*", ("num", -1.0), self.unary(), {"bool": False, "on": None, "ignoring": None, "group": None})
        if self.accept("op", "+"):
            return self.unary()
        return self.postfix()

    def postfix(self):
        e = self.primary()
        t = self.accept("range")
        if t:
            e = ("range", e, parse_duration(t[1][1:-1]))
        if self.accept("ident", "offset"):
            raise PromQLError("offset is not supported by the preview")
        return e

    def primary(self):
        t = self.next()
        kind, val = t
        if kind == "num":
            return ("num", float(val))
        if kind == "str":
            return ("str", _unescape(val[1:-1]))
        if t == ("op", "("):
            e = self.binary(0)
            self.expect("op", ")")
            return ("paren", e)
        if t == ("op", "{"):
            return ("select", None, self.matchers())
        if kind == "ident":
            if val in ("Inf", "NaN"):
                return ("num", math.inf if val == "Inf" else NaN)
            if val in AGGREGATIONS and self.peek()[0] == "ident" and self.peek()[1] in ("by", "without") \
                    or val in AGGREGATIONS and self.peek() == ("op", "("):
                return self.aggregation(val)
            if self.peek() == ("op", "("):
                self.next()
                args = []
                while not self.accept("op", ")"):
                    args.append(self.binary(0))
                    self.accept("op", ",")
                return ("call", val, args)
            matchers = self.matchers() if self.peek() == ("op", "{") else []
            return ("select", val, matchers)
        raise PromQLError("unexpected %r" % (val,))

    def matchers(self):
        self.expect("op", "{")
        ms = []
        while not self.accept("op", "}"):
            name = self.expect("ident")[1]
            op = self.next()[1]
            if op not in ("=", "!=", "=~", "!~"):
                raise PromQLError("bad matcher op %r" % op)
            value = _unescape(self.expect("str")[1][1:-1])
            ms.append((name, op, value))
            self.accept("op", ",")
        return ms

    def aggregation(self, op):
        grouping = None
        t = self.peek()
        if t[0] == "ident" and t[1] in ("by", "without"):
            self.next()
            grouping = (t[1], self.labels_list())
        self.expect("op", "(")
        param = None
        if op in ("topk", "bottomk", "quantile"):
            param = self.binary(0)
            self.expect("op", ",")
        e = self.binary(0)
        self.expect("op", ")")
        t = self.peek()
        if grouping is None and t[0] == "ident" and t[1] in ("by", "without"):
            self.next()
            grouping = (t[1], self.labels_list())
        return ("agg", op, grouping, param, e)


# --------------------------------------------------------------------------
# PromQL subset: evaluation over the scraped samples
# --------------------------------------------------------------------------

def drop_name(key):
    return tuple(kv for kv in key if kv[0] != "__name__")


def signature(key, mods):
    if mods and mods.get("on") is not None:
        keep = set(mods["on"])
        return tuple(kv for kv in key if kv[0] in keep)
    drop = {"__name__"}
    if mods and mods.get("ignoring"):
        drop |= set(mods["ignoring"])
    return tuple(kv for kv in key if kv[0] not in drop)


def arith(op, a, b):
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                return NaN if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
            return a / b
        if op == "%":
            return math.fmod(a, b) if b else NaN
        if op == "^":
            return a ** b
    except (OverflowError, ValueError, ZeroDivisionError):
        return NaN
    cmp = {"==": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}
    return cmp[op]


COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}


def bucket_quantile(q, buckets):
    """Prometheus' histogram_quantile on [(le, cumulative count)]."""
    if math.isnan(q):
        return NaN
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf or len(buckets) < 2:
        return NaN
    # keep cumulative counts monotonic (as Prometheus does)
    fixed, top = [], 0.0
    for le, c in buckets:
        top = max(top, c)
        fixed.append((le, top))
    total = fixed[-1][1]
    if total == 0:
        return NaN
    rank = q * total
    for i, (le, c) in enumerate(fixed):
        if c >= rank:
            break
    if i == len(fixed) - 1:
        return fixed[-2][0]
    if i == 0 and le <= 0:
        return le
    lo, lo_count = (0.0, 0.0) if i == 0 else fixed[i - 1]
    count = c - lo_count
    rank -= lo_count
    return lo + (le - lo) * (rank / count if count else 0)


class Evaluator:
    def __init__(self, samples, variables):
        self.samples = samples          # [(t, {key: value})]
        self.vars = variables
        self._select_cache = {}

    def subst(self, s):
        """Replace dashboard variables in a label matcher value ($topic etc. select everything)."""
        def rep(m):
            name = m.group(1) or m.group(2)
            return self.vars.get(name, ".*")
        return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", rep, s)

    def subst_expr(self, expr):
        """Replace Grafana's interval variables in a whole expression (range selectors)."""
        for name in ("__rate_interval", "__interval", "__range"):
            expr = expr.replace("${%s}" % name, self.vars[name]).replace("$" + name, self.vars[name])
        return expr

    # values: ("scalar", f) | ("vector", {key: f}) | ("matrix", {key: [(t, f)]}) | ("string", s)
    def ev(self, node, i):
        kind = node[0]
        if kind == "num":
            return ("scalar", node[1])
        if kind == "str":
            return ("string", node[1])
        if kind == "paren":
            return self.ev(node[1], i)
        if kind == "select":
            return ("vector", self.select(node, i))
        if kind == "range":
            sel, window = node[1], node[2]
            if sel[0] != "select":
                raise PromQLError("subqueries are not supported by the preview")
            t_now = self.samples[i][0]
            series = {}
            j = i
            while j >= 0 and self.samples[j][0] > t_now - window - 1e-9:
                for k, v in self.select(sel, j).items():
                    series.setdefault(k, []).append((self.samples[j][0], v))
                j -= 1
            for k in series:
                series[k].reverse()
            return ("matrix", series)
        if kind == "call":
            return self.call(node[1], node[2], i)
        if kind == "agg":
            return self.aggregate(node, i)
        if kind == "binop":
            return self.binop(node, i)
        raise PromQLError("cannot evaluate %r" % (kind,))

    def select(self, node, i):
        """Series of sample i matching a selector node ("select", name, matchers)."""
        ck = (repr(node), i)
        if ck in self._select_cache:
            return self._select_cache[ck]
        name, matchers = node[1], node[2]
        compiled = []
        for lname, op, value in matchers:
            value = self.subst(value)
            if op in ("=~", "!~"):
                compiled.append((lname, op, re.compile("^(?:" + value + ")$")))
            else:
                compiled.append((lname, op, value))
        out = {}
        for key, v in self.samples[i][1].items():
            lab = dict(key)
            if name is not None and lab.get("__name__") != name:
                continue
            ok = True
            for lname, op, value in compiled:
                lv = lab.get(lname, "")
                if op == "=":
                    ok = lv == value
                elif op == "!=":
                    ok = lv != value
                elif op == "=~":
                    ok = bool(value.match(lv))
                else:
                    ok = not value.match(lv)
                if not ok:
                    break
            if ok:
                out[key] = v
        self._select_cache[ck] = out
        return out

    def call(self, fn, args, i):
        if fn in ("rate", "irate", "increase", "delta", "idelta", "deriv"):
            kind, m = self.ev(args[0], i)
            if kind != "matrix":
                raise PromQLError("%s() needs a range vector" % fn)
            out = {}
            for k, pts in m.items():
                if len(pts) < 2:
                    continue
                if fn in ("irate", "idelta"):
                    pts = pts[-2:]
                counter = fn in ("rate", "irate", "increase")
                inc, prev = 0.0, pts[0][1]
                for _, v in pts[1:]:
                    if counter and v < prev:
                        inc += v
                    else:
                        inc += v - prev
                    prev = v
                dt = pts[-1][0] - pts[0][0]
                if dt <= 0:
                    continue
                out[drop_name(k)] = inc if fn in ("increase", "delta", "idelta") else inc / dt
            return ("vector", out)
        if fn in ("avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "last_over_time"):
            kind, m = self.ev(args[0], i)
            agg = {"avg_over_time": lambda xs: sum(xs) / len(xs), "max_over_time": max, "min_over_time": min,
                   "sum_over_time": sum, "last_over_time": lambda xs: xs[-1]}[fn]
            return ("vector", {drop_name(k): agg([v for _, v in pts]) for k, pts in m.items() if pts})
        if fn == "histogram_quantile":
            q = self.scalar(args[0], i)
            kind, vec = self.ev(args[1], i)
            groups = {}
            for k, v in vec.items():
                lab = dict(k)
                if "le" not in lab:
                    continue
                le = _float(lab.pop("le"))
                lab.pop("__name__", None)
                groups.setdefault(tuple(sorted(lab.items())), []).append((le, v))
            return ("vector", {k: bucket_quantile(q, b) for k, b in groups.items()})
        if fn == "vector":
            return ("vector", {(): self.scalar(args[0], i)})
        if fn == "scalar":
            kind, vec = self.ev(args[0], i)
            return ("scalar", next(iter(vec.values())) if len(vec) == 1 else NaN)
        if fn == "time":
            return ("scalar", self.samples[i][0])
        if fn in ("abs", "ceil", "floor", "sqrt", "exp", "ln", "log2", "log10", "round", "clamp_min", "clamp_max"):
            kind, vec = self.ev(args[0], i)
            extra = [self.scalar(a, i) for a in args[1:]]
            f = {
                "abs": abs, "ceil": math.ceil, "floor": math.floor, "round": round,
                "sqrt": lambda x: math.sqrt(x) if x >= 0 else NaN, "exp": math.exp,
                "ln": lambda x: math.log(x) if x > 0 else NaN, "log2": lambda x: math.log2(x) if x > 0 else NaN,
                "log10": lambda x: math.log10(x) if x > 0 else NaN,
                "clamp_min": lambda x: max(x, extra[0]), "clamp_max": lambda x: min(x, extra[0]),
            }[fn]
            if kind == "scalar":
                return ("scalar", f(vec))
            return ("vector", {drop_name(k): f(v) for k, v in vec.items()})
        raise PromQLError("function %s() is not supported by the preview" % fn)

    def scalar(self, node, i):
        kind, v = self.ev(node, i)
        if kind != "scalar":
            raise PromQLError("expected a scalar")
        return v

    def aggregate(self, node, i):
        _, op, grouping, param, expr = node
        kind, vec = self.ev(expr, i)
        if kind != "vector":
            raise PromQLError("%s() needs an instant vector" % op)
        groups = {}
        for k, v in vec.items():
            if grouping is None:
                g = ()
            elif grouping[0] == "by":
                keep = set(grouping[1])
                g = tuple(kv for kv in k if kv[0] in keep)
            else:
                drop = set(grouping[1]) | {"__name__"}
                g = tuple(kv for kv in k if kv[0] not in drop)
            groups.setdefault(g, []).append((k, v))
        out = {}
        for g, items in groups.items():
            xs = [v for _, v in items]
            if op == "sum":
                out[g] = sum(xs)
            elif op == "min":
                out[g] = min(xs)
            elif op == "max":
                out[g] = max(xs)
            elif op == "avg":
                out[g] = sum(xs) / len(xs)
            elif op == "count":
                out[g] = float(len(xs))
            elif op == "group":
                out[g] = 1.0
            elif op in ("stddev", "stdvar"):
                mean = sum(xs) / len(xs)
                var = sum((x - mean) ** 2 for x in xs) / len(xs)
                out[g] = math.sqrt(var) if op == "stddev" else var
            elif op == "quantile":
                q = self.scalar(param, i)
                s = sorted(xs)
                rank = q * (len(s) - 1)
                lo = int(math.floor(rank))
                hi = min(lo + 1, len(s) - 1)
                out[g] = s[lo] + (s[hi] - s[lo]) * (rank - lo)
            elif op in ("topk", "bottomk"):
                n = int(self.scalar(param, i))
                for k, v in sorted(items, key=lambda kv: kv[1], reverse=(op == "topk"))[:n]:
                    out[k] = v
        return ("vector", out)

    def binop(self, node, i):
        _, op, lnode, rnode, mods = node
        lk, lv = self.ev(lnode, i)
        rk, rv = self.ev(rnode, i)
        is_cmp = op in COMPARISONS
        if op in ("and", "or", "unless"):
            if lk != "vector" or rk != "vector":
                raise PromQLError("%s needs vectors on both sides" % op)
            rsigs = {signature(k, mods) for k in rv}
            lsigs = {signature(k, mods) for k in lv}
            if op == "and":
                return ("vector", {k: v for k, v in lv.items() if signature(k, mods) in rsigs})
            if op == "unless":
                return ("vector", {k: v for k, v in lv.items() if signature(k, mods) not in rsigs})
            out = dict(lv)
            for k, v in rv.items():
                if signature(k, mods) not in lsigs:
                    out[k] = v
            return ("vector", out)
        if lk == "scalar" and rk == "scalar":
            r = arith(op, lv, rv)
            return ("scalar", float(r))
        if lk == "vector" and rk == "scalar":
            out = {}
            for k, v in lv.items():
                r = arith(op, v, rv)
                if is_cmp and not mods["bool"]:
                    if r:
                        out[k] = v
                else:
                    out[drop_name(k)] = float(r)
            return ("vector", out)
        if lk == "scalar" and rk == "vector":
            out = {}
            for k, v in rv.items():
                r = arith(op, lv, v)
                if is_cmp and not mods["bool"]:
                    if r:
                        out[k] = v
                else:
                    out[drop_name(k)] = float(r)
            return ("vector", out)
        if lk == "vector" and rk == "vector":
            swap = mods["group"] == "group_right"
            many, one = (rv, lv) if swap else (lv, rv)
            index = {}
            for k, v in one.items():
                index[signature(k, mods)] = v
            out = {}
            for k, v in many.items():
                sig = signature(k, mods)
                if sig not in index:
                    continue
                a, b = (index[sig], v) if swap else (v, index[sig])
                r = arith(op, a, b)
                if is_cmp and not mods["bool"]:
                    if r:
                        out[k] = a
                else:
                    out[drop_name(k) if mods["on"] is None or mods["group"] else sig] = float(r)
            return ("vector", out)
        raise PromQLError("unsupported operands for %s" % op)


def legend_text(fmt, key):
    lab = dict(key)
    if fmt and fmt != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: lab.get(m.group(1), ""), fmt).strip()
    name = lab.pop("__name__", "")
    inner = ", ".join('%s="%s"' % kv for kv in sorted(lab.items()))
    return (name + ("{" + inner + "}" if inner else "")) or "value"


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------

def _trim(x, decimals):
    s = "%.*f" % (decimals, x)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _decimals_for(step):
    if step <= 0 or not math.isfinite(step):
        return 2
    return max(0, -int(math.floor(math.log10(step))) + (1 if step / 10 ** math.floor(math.log10(step)) not in (1, 2, 5) else 0))


def fmt_value(v, unit, step=None):
    """Format like Grafana's value formatters (short, bytes, Bps, s, percentunit, dtdurations)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "No data"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    unit = unit or "short"
    if v == 0 and unit not in ("percentunit", "percent", "dtdurations"):
        return {"bytes": "0 B", "decbytes": "0 B", "Bps": "0 B/s", "binBps": "0 B/s", "decBps": "0 B/s",
                "s": "0 s", "ms": "0 s", "µs": "0 s", "us": "0 s", "ns": "0 s"}.get(unit, "0")
    neg = "-" if v < 0 else ""
    a = abs(v)
    if unit == "percentunit" or unit == "percent":
        p = a * 100 if unit == "percentunit" else a
        ps = step * 100 if (step and unit == "percentunit") else step
        d = _decimals_for(ps) if ps else (0 if p >= 10 or p == 0 else 1)
        return neg + _trim(p, d) + "%"
    if unit in ("bytes", "decbytes", "Bps", "binBps", "decBps"):
        base, names = (1000, ["B", "kB", "MB", "GB", "TB"]) if unit.startswith("dec") else \
            (1024, ["B", "KiB", "MiB", "GiB", "TiB"])
        suffix = "/s" if "Bps" in unit else ""
        ref = max(a, step or 0)
        i = 0
        while ref >= base and i < len(names) - 1:
            ref /= base
            a /= base
            if step:
                step /= base
            i += 1
        d = _decimals_for(step) if step else (0 if a >= 100 or a == int(a) else 1)
        return neg + _trim(a, d) + " " + names[i] + suffix
    if unit in ("s", "ms", "µs", "us", "ns"):
        secs = a * {"s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}[unit]
        ref = max(secs, step or 0)
        for lim, div, name in ((1e-6, 1e-9, "ns"), (1e-3, 1e-6, "µs"), (1, 1e-3, "ms"), (60, 1, "s"),
                               (3600, 60, "min"), (86400, 3600, "hour"), (math.inf, 86400, "day")):
            if ref < lim or lim == math.inf:
                x = secs / div
                d = _decimals_for(step / div) if step else (0 if x >= 100 or x == int(x) else (1 if x >= 10 else 2))
                return neg + _trim(x, d) + " " + name
    if unit in ("dtdurations", "dtdurationms"):
        secs = int(a)
        parts = []
        for div, name in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
            if secs >= div or (name == "s" and not parts):
                parts.append("%d%s" % (secs // div, name))
                secs %= div
        return neg + " ".join(parts[:2])
    # short (and anything unknown)
    ref = max(a, step or 0)
    names = ["", " K", " Mil", " Bil", " Tri"]
    i = 0
    while ref >= 1000 and i < len(names) - 1:
        ref /= 1000
        a /= 1000
        if step:
            step /= 1000
        i += 1
    d = _decimals_for(step) if step else (0 if a >= 100 or a == int(a) else (1 if a >= 10 else 2))
    return neg + _trim(a, d) + names[i]


def nice_ticks(lo, hi, max_ticks, unit):
    if hi <= lo:
        hi = lo + 1
    span = hi - lo
    raw = span / max(1, max_ticks)
    if unit in ("bytes", "Bps", "binBps"):
        mag = 1024 ** max(0, int(math.log(raw, 1024))) if raw >= 1 else 1
        cands = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        step = next((c * mag for c in cands if c * mag >= raw), 1024 * mag)
        if raw < 1:
            step = 10 ** math.floor(math.log10(raw))
    else:
        mag = 10 ** math.floor(math.log10(raw))
        step = next((c * mag for c in (1, 2, 2.5, 5, 10) if c * mag >= raw - 1e-12), 10 * mag)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(v)
        v += step
    return ticks, step


# --------------------------------------------------------------------------
# HTML / SVG rendering
# --------------------------------------------------------------------------

PALETTE = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0",
           "#37872D", "#FADE2A", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477"]
NAMED_COLORS = {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "yellow": "#FADE2A",
                "blue": "#5794F2", "purple": "#B877D9", "text": "#CCCCDC", "transparent": "transparent",
                "dark-red": "#C4162A", "dark-green": "#37872D", "dark-orange": "#FA6400", "semi-dark-red": "#E02F44"}

CSS = """
*{box-sizing:border-box}
html,body{overflow:hidden}
body{margin:0;background:#111217;color:#ccccdc;font-family:Inter,"Helvetica Neue","Liberation Sans",Arial,sans-serif;font-size:12px}
.top{height:%(toph)dpx;display:flex;align-items:center;gap:14px;padding:0 %(gap)dpx;border-bottom:1px solid #24272e}
.top h1{font-size:15px;font-weight:500;margin:0;color:#d8d9e6}
.top .vars{display:flex;gap:6px;font-size:11px}
.top .var{border:1px solid #2c3036;border-radius:2px;display:flex}
.top .var b{font-weight:500;background:#1c1f25;padding:3px 7px;color:#9fa2ad}
.top .var span{padding:3px 8px;color:#ccccdc}
.top .meta{margin-left:auto;color:#8e8e9c;font-size:11px}
.grid{position:relative;margin:%(gap)dpx}
.row{position:absolute;display:flex;align-items:center;font-size:13px;font-weight:500;color:#d8d9e6}
.row:before{content:"";display:inline-block;border:4px solid transparent;border-top:5px solid #9fa2ad;margin:4px 7px 0 2px}
.panel{position:absolute;background:#181b1f;border:1px solid #24272e;border-radius:2px;overflow:hidden}
.panel .title{height:%(titleh)dpx;line-height:%(titleh)dpx;padding:0 8px;font-size:12px;font-weight:500;color:#ccccdc;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.panel svg{display:block}
.legend{padding:0 8px;font-size:10.5px;line-height:13px;color:#ccccdc;overflow:hidden}
.legend span{display:inline-block;margin-right:12px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:3px;border-radius:1px;margin-right:5px;vertical-align:middle}
.stat{display:flex;align-items:center;justify-content:space-evenly;gap:8px;padding:0 8px}
.stat div{text-align:center;overflow:hidden}
.stat .v{font-weight:500;line-height:1.1}
.stat .n{font-size:11px;color:#ccccdc;margin-bottom:2px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.err{color:#F2495C;padding:8px;font-size:11px}
"""


def esc(s):
    return html.escape(str(s), quote=True)


def finite(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def render_timeseries(panel, series, times, w, h, title_h):
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    custom = defaults.get("custom", {})
    unit = defaults.get("unit", "short")
    fill = custom.get("fillOpacity", 0) / 100.0
    lw = max(1.0, float(custom.get("lineWidth", 1)) * 1.2)
    axis_label = custom.get("axisLabel") or ""
    show_legend = panel.get("options", {}).get("legend", {}).get("showLegend", True)

    # legend lines (rough text width estimate: 10.5px font)
    legend_lines = 0
    if show_legend and series:
        width_avail = w - 16
        x = 0
        legend_lines = 1
        for name, _, _ in series:
            sw = 17 + len(name) * 5.9 + 12
            if x + sw > width_avail and x > 0:
                legend_lines += 1
                x = 0
            x += sw
        legend_lines = min(legend_lines, 3)
    legend_h = legend_lines * 13 + (4 if legend_lines else 0)
    ch = h - title_h - legend_h - 2
    cw = w - 2

    vals = [v for _, _, ys in series for v in ys if finite(v)]
    lo = defaults.get("min")
    hi = defaults.get("max")
    dlo = min(vals) if vals else 0.0
    dhi = max(vals) if vals else 1.0
    if lo is None:
        lo = min(0.0, dlo)
    if hi is None:
        hi = max(dhi, lo)
        if hi == lo:
            hi = lo + 1
        else:
            hi = hi + (hi - lo) * 0.05
    top, bottom = 9, 18
    max_ticks = max(1, int((ch - top - bottom) / 20))   # at least ~20 px between y labels
    ticks, step = nice_ticks(lo, hi, max_ticks, unit)
    if ticks and ticks[-1] < hi - 1e-12 and defaults.get("max") is None:
        hi = ticks[-1] + step
        ticks.append(hi)
    elif ticks and defaults.get("max") is None:
        hi = max(hi, ticks[-1])
    labels = [fmt_value(t, unit, step) for t in ticks]
    left = 8 + max(len(s) for s in labels) * 6.0 + (14 if axis_label else 0)
    right = 10
    pw, ph = cw - left - right, ch - top - bottom
    t0, t1 = times[0], times[-1]
    if t1 <= t0:
        t1 = t0 + 1

    def X(t):
        return left + (t - t0) / (t1 - t0) * pw

    def Y(v):
        v = min(max(v, lo), hi)
        return top + ph - (v - lo) / (hi - lo) * ph

    parts = ['<svg width="%d" height="%d" viewBox="0 0 %d %d">' % (cw, ch, cw, ch)]
    gridc = "rgba(204,204,220,0.09)"
    txtc = "rgba(204,204,220,0.65)"
    for t, s in zip(ticks, labels):
        y = Y(t)
        parts.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s"/>' % (left, left + pw, y, y, gridc))
        parts.append('<text x="%.1f" y="%.1f" fill="%s" font-size="10" text-anchor="end">%s</text>'
                     % (left - 5, y + 3.5, txtc, esc(s)))
    if axis_label:
        cy = top + ph / 2
        parts.append('<text x="10" y="%.1f" fill="%s" font-size="10" text-anchor="middle" transform="rotate(-90 10 %.1f)">%s</text>'
                     % (cy, txtc, cy, esc(axis_label)))
    # time axis: ticks every nice number of seconds
    span = t1 - t0
    tstep = next((c for c in (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)
                  if pw / (span / c) >= 62), 3600)
    tt = math.ceil(t0 / tstep) * tstep
    while tt <= t1 + 1e-6:
        x = X(tt)
        if x - 24 < left or x + 24 > cw:    # label would run into the y labels or off the panel
            tt += tstep
            continue
        parts.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s"/>' % (x, x, top, top + ph, gridc))
        parts.append('<text x="%.1f" y="%.1f" fill="%s" font-size="10" text-anchor="middle">%s</text>'
                     % (x, top + ph + 13, txtc, time.strftime("%H:%M:%S", time.localtime(tt))))
        tt += tstep
    # series
    for name, color, ys in series:
        segs, cur = [], []
        for t, v in zip(times, ys):
            if finite(v):
                cur.append((X(t), Y(v)))
            elif cur:
                segs.append(cur)
                cur = []
        if cur:
            segs.append(cur)
        for seg in segs:
            pts = " ".join("%.1f,%.1f" % p for p in seg)
            if fill > 0 and len(seg) > 1:
                base = Y(max(lo, min(0, hi))) if lo <= 0 <= hi else top + ph
                area = "%.1f,%.1f %s %.1f,%.1f" % (seg[0][0], base, pts, seg[-1][0], base)
                parts.append('<polygon points="%s" fill="%s" fill-opacity="%.2f" stroke="none"/>' % (area, color, fill))
            if len(seg) == 1:
                parts.append('<circle cx="%.1f" cy="%.1f" r="1.5" fill="%s"/>' % (seg[0][0], seg[0][1], color))
            else:
                parts.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f" stroke-linejoin="round"/>'
                             % (pts, color, lw))
    if not series or not vals:
        parts.append('<text x="%.1f" y="%.1f" fill="%s" font-size="12" text-anchor="middle">No data</text>'
                     % (left + pw / 2, top + ph / 2, txtc))
    parts.append("</svg>")
    legend = ""
    if legend_lines:
        legend = '<div class="legend" style="height:%dpx">%s</div>' % (
            legend_h, "".join('<span><i style="background:%s"></i>%s</span>' % (c, esc(n)) for n, c, _ in series))
    return "".join(parts) + legend


def threshold_color(defaults, v):
    steps = defaults.get("thresholds", {}).get("steps", [])
    color = "green"
    for s in steps:
        if s.get("value") is None or (finite(v) and v >= s["value"]):
            color = s.get("color", color)
    return NAMED_COLORS.get(color, color)


def apply_mappings(defaults, v):
    for m in defaults.get("mappings", []) or []:
        if m.get("type") == "value" and finite(v):
            for k, res in m.get("options", {}).items():
                try:
                    if float(k) == v:
                        return res.get("text"), NAMED_COLORS.get(res.get("color"), res.get("color"))
                except ValueError:
                    pass
    return None, None


def render_stat(panel, series, w, h, title_h):
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    opts = panel.get("options", {})
    unit = defaults.get("unit", "short")
    text_mode = opts.get("textMode", "auto")
    color_mode = opts.get("colorMode", "value")
    body_h = h - title_h - 2
    if not series:
        return '<div class="stat" style="height:%dpx"><div class="v" style="font-size:%dpx">No data</div></div>' % (
            body_h, max(12, min(22, body_h - 8)))
    n = len(series)
    pad = 4
    avail_h = body_h - 2 * pad
    cell_w = (w - 16) / n - 8
    cells = []
    for name, _, ys in series:
        last = next((v for v in reversed(ys) if finite(v)), None)
        text, mcolor = apply_mappings(defaults, last)
        if text is None:
            text = fmt_value(last, unit)
        color = mcolor or threshold_color(defaults, last)
        show_name = text_mode in ("value_and_name", "name") or (text_mode == "auto" and n > 1)
        show_value = text_mode != "name"
        main = text if show_value else name
        both = show_name and show_value
        # not enough height for name above value: put them side by side
        side = both and avail_h < 44
        name_fs = 11 if avail_h < 60 else 12
        room = avail_h - (name_fs + 3 if both and not side else 0) - (4 if color_mode == "background" else 0)
        chars = max(3, len(main) + (len(name) * 0.6 + 2 if side else 0))
        size = int(max(11, min(room * 0.9, cell_w / (chars * 0.62), 44)))
        vcolor = "#ffffff" if color_mode == "background" else color
        inner = ""
        if both:
            ncolor = "#ffffff" if color_mode == "background" else "#ccccdc"
            inner += '<div class="n" style="font-size:%dpx;color:%s;margin:0">%s</div>' % (name_fs, ncolor, esc(name))
        inner += '<div class="v" style="font-size:%dpx;color:%s">%s</div>' % (size, vcolor, esc(main))
        style = "flex:1;min-width:0;display:flex;flex-direction:%s;align-items:center;justify-content:center;gap:%dpx" % (
            "row" if side else "column", 14 if side else 2)
        if color_mode == "background":
            style += ";background:%s;border-radius:2px;align-self:stretch" % color
        cells.append('<div style="%s">%s</div>' % (style, inner))
    return '<div class="stat" style="height:%dpx;padding:%dpx 8px">%s</div>' % (body_h, pad, "".join(cells))


def evaluate_panel(panel, ev, n):
    """-> [(legend, color, [value per sample])], or raises PromQLError."""
    out = []
    for target in panel.get("targets", []):
        if target.get("hide") or not target.get("expr"):
            continue
        ast = Parser(ev.subst_expr(target["expr"])).parse()
        per_key = {}
        for i in range(n):
            kind, val = ev.ev(ast, i)
            if kind == "scalar":
                val = {(): val}
            elif kind != "vector":
                raise PromQLError("query does not return a vector")
            for k, v in val.items():
                per_key.setdefault(k, [None] * n)[i] = float(v)
        rows = sorted(per_key.items(), key=lambda kv: legend_text(target.get("legendFormat"), kv[0]))
        for k, ys in rows:
            out.append((legend_text(target.get("legendFormat"), k), ys))
    return [(name, PALETTE[i % len(PALETTE)], ys) for i, (name, ys) in enumerate(out)]


def render_page(dashboard, samples, instance, interval, width, height, title):
    # Grafana: $__rate_interval = max(4 x scrape interval, $__interval + scrape interval); for a
    # one-minute range $__interval is below the scrape interval.
    variables = {"instance": ".*", "topic": ".*", "channel": ".*", "__rate_interval": "%gs" % (4 * interval),
                 "__interval": "%gs" % interval, "__range": "%gs" % (samples[-1][0] - samples[0][0] or interval)}
    ev = Evaluator(samples, variables)

    panels = []
    for p in dashboard.get("panels", []):
        panels.append(p)
        if p.get("type") == "row" and p.get("collapsed"):
            panels.extend(p.get("panels", []))   # show collapsed rows expanded, like a screenshot would want
    max_y = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels if "gridPos" in p), default=1)

    gap, top_h, title_h = 6, 40, 22
    grid_w = width - 2 * gap
    col = (grid_w + gap) / 24.0
    unit_h = max(8.0, (height - top_h - gap) / max_y)   # px per grid unit, gap included
    times = [t for t, _ in samples]
    n = len(samples)

    body = []
    for p in panels:
        gp = p.get("gridPos")
        if not gp:
            continue
        x = gp["x"] * col
        y = gp["y"] * unit_h
        w = gp["w"] * col - gap
        h = gp["h"] * unit_h - gap
        if p.get("type") == "row":
            body.append('<div class="row" style="left:%.1fpx;top:%.1fpx;width:%.1fpx;height:%.1fpx">%s</div>'
                        % (x, y, w, h, esc(p.get("title", ""))))
            continue
        content = ""
        try:
            series = evaluate_panel(p, ev, n)
            if p.get("type") == "stat":
                content = render_stat(p, series, w, h, title_h)
            elif p.get("type") in ("timeseries", "graph"):
                content = render_timeseries(p, series, times, w, h, title_h)
            else:
                content = '<div class="err">panel type %s is not rendered by the preview</div>' % esc(p.get("type"))
        except PromQLError as e:
            content = '<div class="err">%s</div>' % esc(e)
        body.append('<div class="panel" style="left:%.1fpx;top:%.1fpx;width:%.1fpx;height:%.1fpx">'
                    '<div class="title">%s</div>%s</div>' % (x, y, w, h, esc(p.get("title", "")), content))

    grid_h = max_y * unit_h - gap
    css = CSS % {"gap": gap, "toph": top_h, "titleh": title_h}
    meta = "%s &middot; %d samples every %gs &middot; %s &ndash; %s" % (
        esc(instance), n, interval, time.strftime("%H:%M:%S", time.localtime(times[0])),
        time.strftime("%H:%M:%S", time.localtime(times[-1])))
    vars_html = "".join('<div class="var"><b>%s</b><span>%s</span></div>' % (k, v)
                        for k, v in (("Instance", "All"), ("Topic", "All"), ("Channel", "All")))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title><style>%s</style></head>"
            "<body style=\"width:%dpx\"><div class=\"top\"><h1>%s</h1><div class=\"vars\">%s</div><div class=\"meta\">%s</div></div>"
            "<div class=\"grid\" style=\"height:%.0fpx\">%s</div></body></html>\n"
            % (esc(title), css, width, esc(title), vars_html, meta, grid_h, "\n".join(body)))


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def scrape(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:4151/metrics", help="nsqd /metrics URL")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between scrapes [2]")
    ap.add_argument("--samples", type=int, default=30, help="number of scrapes [30]")
    ap.add_argument("--out", default="nsqd-preview.html", help="HTML file to write")
    ap.add_argument("--dashboard", default=DEFAULT_DASHBOARD, help="dashboard JSON [%(default)s]")
    ap.add_argument("--width", type=int, default=1400, help="page width in px, match the screenshot [1400]")
    ap.add_argument("--height", type=int, default=1800, help="page height in px the grid is fitted to [1800]")
    ap.add_argument("--save-raw", metavar="FILE", help="also write the raw scrapes as JSON")
    ap.add_argument("--replay", metavar="FILE", help="render from a --save-raw file instead of scraping")
    args = ap.parse_args()

    with open(args.dashboard, encoding="utf-8") as f:
        dashboard = json.load(f)

    if args.replay:
        with open(args.replay, encoding="utf-8") as f:
            raw = json.load(f)
        url, interval, scrapes = raw["url"], raw["interval"], raw["scrapes"]
    else:
        url, interval, scrapes = args.url, args.interval, []
        start = time.time()
        for i in range(args.samples):
            target = start + i * interval
            delay = target - time.time()
            if delay > 0:
                time.sleep(delay)
            t = time.time()
            try:
                scrapes.append([t, scrape(url)])
            except OSError as e:
                print("preview: scrape %d failed: %s" % (i + 1, e), file=sys.stderr)
                continue
            print("preview: sample %d/%d" % (i + 1, args.samples), file=sys.stderr)
        if args.save_raw:
            with open(args.save_raw, "w", encoding="utf-8") as f:
                json.dump({"url": url, "interval": interval, "scrapes": scrapes}, f)
    if len(scrapes) < 2:
        sys.exit("preview: need at least 2 successful scrapes, got %d" % len(scrapes))

    instance = urllib.parse.urlsplit(url).netloc or url
    samples = [(t, parse_exposition(text, {"instance": instance, "job": "nsqd"})) for t, text in scrapes]
    title = "nsqd — preview of deploy/grafana/nsqd.json"
    page = render_page(dashboard, samples, instance, interval, args.width, args.height, title)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(page)
    print("preview: wrote %s (%d samples, %d panels)" % (
        args.out, len(samples), sum(1 for p in dashboard.get("panels", []) if p.get("type") != "row")), file=sys.stderr)


if __name__ == "__main__":
    main()
