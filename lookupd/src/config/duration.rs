//! Go's `time.ParseDuration`, for the two duration options.
//!
//! Written out rather than approximated because operators copy values from
//! nsqlookupd configs (`1m30s`, `.5h`, `300000ms`), and an error must name
//! the input the way Go does.

use std::time::Duration;

/// Go's `time.ParseDuration` (`[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units ns,
/// us/µs/μs, ms, s, m, h; "0" needs no unit), with Go's error text. Negative
/// values other than zero are rejected: both options are lengths of time.
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    const LIMIT: u128 = 1 << 63;
    let invalid = || format!("time: invalid duration {input:?}");
    let mut s = input.as_bytes();
    let mut negative = false;
    if let Some(&sign @ (b'-' | b'+')) = s.first() {
        negative = sign == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u128 = 0;
        for &c in &s[..digits] {
            whole = whole * 10 + u128::from(c - b'0');
            if whole > LIMIT {
                return Err(invalid());
            }
        }
        let has_whole = digits > 0;
        s = &s[digits..];
        // The fraction keeps digits while they fit, then ignores the rest.
        let (mut frac, mut scale, mut has_frac) = (0u128, 1.0f64, false);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            for &c in &s[..digits] {
                if frac * 10 + 9 < LIMIT {
                    frac = frac * 10 + u128::from(c - b'0');
                    scale *= 10.0;
                }
            }
            has_frac = digits > 0;
            s = &s[digits..];
        }
        if !has_whole && !has_frac {
            return Err(invalid());
        }
        let unit_len = s
            .iter()
            .take_while(|&&c| c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {input:?}"));
        }
        let unit: u128 = match &s[..unit_len] {
            b"ns" => 1,
            // "µs" is U+00B5 (micro sign), "μs" is U+03BC (Greek mu).
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            other => {
                let unit = String::from_utf8_lossy(other);
                return Err(format!("time: unknown unit {unit:?} in duration {input:?}"));
            }
        };
        s = &s[unit_len..];
        let mut value = whole * unit;
        if value > LIMIT {
            return Err(invalid());
        }
        // As Go: float64 arithmetic, truncated.
        value += (frac as f64 * (unit as f64 / scale)) as u128;
        total += value;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative && total != 0 {
        return Err("negative durations are not supported".to_string());
    }
    let nanos = u64::try_from(total)
        .ok()
        .filter(|n| *n < 1 << 63)
        .ok_or_else(invalid)?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok = |s: &str| parse_go_duration(s).unwrap();
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("300s"), Duration::from_secs(300));
        assert_eq!(ok("1h2m3s"), Duration::from_secs(3723));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5ms"), Duration::from_micros(500));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(
            parse_go_duration("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go_duration("5d").unwrap_err(),
            "time: unknown unit \"d\" in duration \"5d\""
        );
        for bad in ["", "s", ".s", "1..2s", "9999999999999999999h", "-"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_go_duration("-1s").unwrap_err(),
            "negative durations are not supported"
        );
    }
}
