//! Go value syntax, as nsqd's and nsqlookupd's flags and config files use
//! it: `strconv` booleans and integers, `time.ParseDuration` /
//! `Duration.String`, and `%q` quoting. Pure functions; shared here so the
//! two daemons parse the same text the same way.
//!
//! `%q` lives in `nsq_proto` (nsqd's wire errors quote client input with
//! it) and is re-exported here as [`go_quote`].

use std::fmt::Write as _;
use std::time::Duration;

pub use nsq_proto::go_quote;

/// `strconv.ParseBool`.
pub fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Why an integer did not parse (Go's `strconv.ErrSyntax` / `ErrRange`).
#[derive(Debug, PartialEq)]
pub enum IntError {
    /// Not an integer.
    Syntax,
    /// Out of the 64-bit range.
    Range,
}

/// `strconv.ParseInt(s, 0, 64)`, which Go's integer flags use: optional
/// sign, `0x`/`0o`/`0b` prefixes, a leading `0` for octal, and `_` between
/// digits.
pub fn go_parse_int(s: &str) -> Result<i64, IntError> {
    let (negative, body) = match s.as_bytes().first() {
        None => return Err(IntError::Syntax),
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        Some(_) => (false, s),
    };
    let magnitude = i128::from(go_parse_uint(body)?);
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| IntError::Range)
}

/// `strconv.ParseUint(s, 0, 64)`.
fn go_parse_uint(s: &str) -> Result<u64, IntError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(IntError::Syntax);
    }
    let (base, digits): (u64, &[u8]) = if bytes[0] == b'0' {
        match bytes.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if bytes.len() >= 3 => (2, &bytes[2..]),
            Some(b'o') if bytes.len() >= 3 => (8, &bytes[2..]),
            Some(b'x') if bytes.len() >= 3 => (16, &bytes[2..]),
            _ => (8, &bytes[1..]),
        }
    } else {
        (10, bytes)
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        let lower = c.to_ascii_lowercase();
        let digit = match lower {
            b'_' => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => u64::from(lower - b'0'),
            b'a'..=b'z' => u64::from(lower - b'a') + 10,
            _ => return Err(IntError::Syntax),
        };
        if digit >= base {
            return Err(IntError::Syntax);
        }
        n = n
            .checked_mul(base)
            .and_then(|n| n.checked_add(digit))
            .ok_or(IntError::Range)?;
    }
    if underscores && !go_underscore_ok(bytes) {
        return Err(IntError::Syntax);
    }
    Ok(n)
}

/// Go's `underscoreOK`: each `_` sits between digits (or after a base prefix).
fn go_underscore_ok(s: &[u8]) -> bool {
    // Last class seen: '^' start, '0' digit or prefix, '_' underscore, '!' other.
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &s[i..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// Why a duration did not parse.
#[derive(Debug, PartialEq)]
pub enum DurationError {
    /// Not Go duration syntax.
    Invalid,
    /// A number without a unit (other than "0").
    MissingUnit,
    /// A unit Go does not know.
    UnknownUnit(String),
    /// Negative (we reject them: every option is a length of time).
    Negative,
}

impl DurationError {
    /// Go's `time.ParseDuration` error text (plus our negative case).
    pub fn message(&self, input: &str) -> String {
        let quoted = go_quote(input);
        match self {
            DurationError::Invalid => format!("time: invalid duration {quoted}"),
            DurationError::MissingUnit => format!("time: missing unit in duration {quoted}"),
            DurationError::UnknownUnit(unit) => {
                format!("time: unknown unit {} in duration {quoted}", go_quote(unit))
            }
            DurationError::Negative => "negative durations are not supported".to_string(),
        }
    }
}

/// `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units ns, us
/// (or µs/μs), ms, s, m, h; "0" needs no unit. Negative values other than
/// zero are rejected, since every nsqd duration is a length of time.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    const LIMIT: u64 = 1 << 63;
    let mut s = input.as_bytes();
    let mut negative = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            negative = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::Invalid);
    }
    let mut total: u64 = 0;
    while let Some(&first) = s.first() {
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(DurationError::Invalid);
        }
        // Integer part.
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in &s[..digits] {
            if whole > LIMIT / 10 {
                return Err(DurationError::Invalid);
            }
            whole = whole * 10 + u64::from(c - b'0');
            if whole > LIMIT {
                return Err(DurationError::Invalid);
            }
        }
        let has_whole = digits > 0;
        s = &s[digits..];
        // Fraction: keep digits while they fit, then ignore the rest.
        let mut frac: u64 = 0;
        let mut scale = 1.0f64;
        let mut has_frac = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &s[..digits] {
                if overflow || frac > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = frac * 10 + u64::from(c - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                frac = next;
                scale *= 10.0;
            }
            has_frac = digits > 0;
            s = &s[digits..];
        }
        if !has_whole && !has_frac {
            return Err(DurationError::Invalid);
        }
        let unit_len = s
            .iter()
            .take_while(|&&c| !(c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit);
        }
        let unit_nanos: u64 = match &s[..unit_len] {
            b"ns" => 1,
            // "µs" is U+00B5 (micro sign), "μs" is U+03BC (Greek mu).
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            other => {
                return Err(DurationError::UnknownUnit(
                    String::from_utf8_lossy(other).into_owned(),
                ))
            }
        };
        s = &s[unit_len..];
        if whole > LIMIT / unit_nanos {
            return Err(DurationError::Invalid);
        }
        let mut value = whole * unit_nanos;
        if frac > 0 {
            // As Go: float64 arithmetic, truncated.
            let extra = (frac as f64 * (unit_nanos as f64 / scale)) as u64;
            value = value.checked_add(extra).ok_or(DurationError::Invalid)?;
            if value > LIMIT {
                return Err(DurationError::Invalid);
            }
        }
        total = total.checked_add(value).ok_or(DurationError::Invalid)?;
        if total > LIMIT {
            return Err(DurationError::Invalid);
        }
    }
    if negative && total != 0 {
        return Err(DurationError::Negative);
    }
    if total > LIMIT - 1 {
        return Err(DurationError::Invalid);
    }
    Ok(Duration::from_nanos(total))
}

/// Go's `time.Duration.String`, e.g. `250ms`, `1m30s`, `1h0m0s`.
pub fn go_duration_string(d: Duration) -> String {
    let nanos = duration_nanos(d);
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (prec, unit) = match nanos {
            0..=999 => (0, "ns"),
            1_000..=999_999 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (whole, frac) = go_fraction(nanos, prec);
        return format!("{whole}{frac}{unit}");
    }
    let (secs, frac) = go_fraction(nanos, 9);
    let mut out = String::new();
    let (hours, minutes) = (secs / 3600, secs / 60 % 60);
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if secs >= 60 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{}{frac}s", secs % 60);
    out
}

/// Splits `v` into `v / 10^prec` and the fraction as ".ddd" without
/// trailing zeros ("" when zero), as Go's `fmtFrac`.
fn go_fraction(v: u64, prec: u32) -> (u64, String) {
    let pow = 10u64.pow(prec);
    let frac = v % pow;
    if frac == 0 {
        return (v / pow, String::new());
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (v / pow, format!(".{}", digits.trim_end_matches('0')))
}

/// A `Duration` as Go's `time.Duration` (nanoseconds), saturating.
pub fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok = |s: &str| parse_go_duration(s).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("60s"), Duration::from_secs(60));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("100us"), Duration::from_micros(100));
        assert_eq!(ok("100µs"), Duration::from_micros(100));
        assert_eq!(ok("100μs"), Duration::from_micros(100));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(
            ok("1h2m3s4ms5us6ns"),
            Duration::from_nanos(3_723_004_005_006)
        );
        assert_eq!(ok("0.000000001s"), Duration::from_nanos(1));
        assert_eq!(
            ok("2562047h47m16.854775807s"),
            Duration::from_nanos(i64::MAX as u64)
        );
        assert_eq!(
            parse_go_duration("2562047h47m16.854775808s"),
            Err(DurationError::Invalid)
        );
        assert_eq!(
            parse_go_duration("9999999999h"),
            Err(DurationError::Invalid)
        );
        for bad in ["", "-", "+", ".", ".s", "s", "x1s"] {
            assert_eq!(
                parse_go_duration(bad),
                Err(DurationError::Invalid),
                "{bad:?}"
            );
        }
        assert_eq!(parse_go_duration("1"), Err(DurationError::MissingUnit));
        assert_eq!(parse_go_duration("1s2"), Err(DurationError::MissingUnit));
        assert_eq!(parse_go_duration("1.2.3s"), Err(DurationError::MissingUnit));
        assert_eq!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit("d".to_string()))
        );
        assert_eq!(
            parse_go_duration("1 s"),
            Err(DurationError::UnknownUnit(" s".to_string()))
        );
        assert_eq!(parse_go_duration("-1s"), Err(DurationError::Negative));
        assert_eq!(
            DurationError::UnknownUnit("d".into()).message("1d"),
            "time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            DurationError::Invalid.message("x"),
            "time: invalid duration \"x\""
        );
        assert_eq!(
            DurationError::MissingUnit.message("1"),
            "time: missing unit in duration \"1\""
        );
    }

    #[test]
    fn go_duration_strings() {
        let s = |nanos: u64| go_duration_string(Duration::from_nanos(nanos));
        assert_eq!(s(0), "0s");
        assert_eq!(s(7), "7ns");
        assert_eq!(s(1_500), "1.5µs");
        assert_eq!(s(25_000_000), "25ms");
        assert_eq!(s(250_000_000), "250ms");
        assert_eq!(s(1_500_000_000), "1.5s");
        assert_eq!(s(2_000_000_000), "2s");
        assert_eq!(s(90_000_000_000), "1m30s");
        assert_eq!(s(900_000_000_000), "15m0s");
        assert_eq!(s(3_600_000_000_000), "1h0m0s");
        assert_eq!(s(3_723_000_000_001), "1h2m3.000000001s");
    }

    #[test]
    fn go_integers() {
        assert_eq!(go_parse_int("10"), Ok(10));
        assert_eq!(go_parse_int("+10"), Ok(10));
        assert_eq!(go_parse_int("-10"), Ok(-10));
        assert_eq!(go_parse_int("0x1F"), Ok(31));
        assert_eq!(go_parse_int("0o17"), Ok(15));
        assert_eq!(go_parse_int("017"), Ok(15));
        assert_eq!(go_parse_int("0b101"), Ok(5));
        assert_eq!(go_parse_int("0"), Ok(0));
        assert_eq!(go_parse_int("1_000"), Ok(1000));
        assert_eq!(go_parse_int("0x_1f"), Ok(31));
        assert_eq!(go_parse_int("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(go_parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(go_parse_int("9223372036854775808"), Err(IntError::Range));
        assert_eq!(go_parse_int("99999999999999999999"), Err(IntError::Range));
        for bad in [
            "", "-", "+", "abc", "1.5", "1e3", "08", "0b", "0x", "_1", "1_", "1__0", " 1", "+-1",
        ] {
            assert_eq!(go_parse_int(bad), Err(IntError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_parse_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_parse_bool(f), Some(false));
        }
        for bad in ["", "yes", "tRUE", "2"] {
            assert_eq!(go_parse_bool(bad), None);
        }
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("abc"), "\"abc\"");
        assert_eq!(
            go_quote("a\"b\\c\n\t\x01\x7f"),
            "\"a\\\"b\\\\c\\n\\t\\x01\\x7f\""
        );
        assert_eq!(go_quote("µs"), "\"µs\"");
    }
}
