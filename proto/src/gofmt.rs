//! Byte-exact reproductions of the two Go formatting verbs nsqd uses when it
//! echoes client input back in an error: `%s` of a `[]byte` (raw bytes) and
//! `%q` of a string (`strconv.Quote`). Clients and test suites compare error
//! strings verbatim, so "close enough" is not enough here.

use std::fmt::{self, Write as _};

/// Go's `%s` of a `[]byte` writes the bytes unchanged. A `fmt::Display` can
/// only emit UTF-8, so invalid sequences become U+FFFD here; callers that
/// need the exact bytes use [`crate::ProtoError::write_description`].
pub(crate) struct Lossy<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_char(char::REPLACEMENT_CHARACTER)?;
            }
        }
        Ok(())
    }
}

/// Go's `%q` of a string (`strconv.Quote`): double quotes, backslash escapes
/// for `"` and `\`, printable runes as is, `\a \b \f \n \r \t \v`, `\xNN` for
/// other control bytes and for each byte of invalid UTF-8, `\uNNNN` or
/// `\UNNNNNNNN` for other non-printable runes. Output is always valid UTF-8.
pub(crate) struct GoQuote<'a>(pub(crate) &'a [u8]);

impl fmt::Display for GoQuote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                quote_char(f, c)?;
            }
            // Go decodes invalid UTF-8 one byte at a time and escapes each
            // byte; a Rust invalid chunk is a lead byte plus continuation
            // bytes, none of which can start a valid sequence, so escaping
            // every byte of it gives the same output.
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_char('"')
    }
}

/// Go's `%q` (`strconv.Quote`) of a string, as Go's `flag` package and
/// nsqd print values in error messages.
pub fn go_quote(s: &str) -> String {
    GoQuote(s.as_bytes()).to_string()
}

fn quote_char(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '"' => f.write_str("\\\""),
        '\\' => f.write_str("\\\\"),
        ' '..='~' => f.write_char(c),
        '\x07' => f.write_str("\\a"),
        '\x08' => f.write_str("\\b"),
        '\x0c' => f.write_str("\\f"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '\x0b' => f.write_str("\\v"),
        '\0'..='\x1f' | '\x7f' => write!(f, "\\x{:02x}", c as u32),
        _ if is_go_printable(c) => f.write_char(c),
        _ if (c as u32) < 0x10000 => write!(f, "\\u{:04x}", c as u32),
        _ => write!(f, "\\U{:08x}", c as u32),
    }
}

/// Go's `unicode.IsPrint` for non-ASCII runes: categories L, M, N, P, S.
/// Rust's `str::escape_debug` leaves a char unescaped exactly when it is
/// outside Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs, which is the same set (up to the
/// Unicode version each toolchain ships). The char is put second so that
/// grapheme extenders (category M) are not escaped, as they would be in first
/// position.
fn is_go_printable(c: char) -> bool {
    let mut tmp = [0u8; 8];
    tmp[0] = b'a';
    let len = 1 + c.encode_utf8(&mut tmp[1..]).len();
    let Ok(s) = std::str::from_utf8(&tmp[..len]) else {
        return false;
    };
    let mut escaped = s.escape_debug().skip(1);
    escaped.next() == Some(c) && escaped.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(b: &[u8]) -> String {
        GoQuote(b).to_string()
    }

    #[test]
    fn quote_matches_go_strconv_quote() {
        // Expected values produced by Go's strconv.Quote.
        assert_eq!(q(b"x!"), r#""x!""#);
        assert_eq!(q(b""), r#""""#);
        assert_eq!(q(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(q(b"\x07\x08\x0c\n\r\t\x0b"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(q(b"\x00\x1b\x7f"), r#""\x00\x1b\x7f""#);
        assert_eq!(q(b"\xff\xfe"), r#""\xff\xfe""#);
        assert_eq!(q(b"\xe2\x82"), r#""\xe2\x82""#);
        assert_eq!(q("héllo 世界".as_bytes()), "\"héllo 世界\"");
        assert_eq!(q("\u{a0}".as_bytes()), r#""\u00a0""#);
        assert_eq!(q("\u{200b}".as_bytes()), r#""\u200b""#);
        assert_eq!(q("\u{feff}".as_bytes()), r#""\ufeff""#);
        assert_eq!(q("\u{85}".as_bytes()), r#""\u0085""#);
        assert_eq!(q("\u{10ffff}".as_bytes()), r#""\U0010ffff""#);
        // Combining marks are printable in Go, even at the start.
        assert_eq!(q("\u{301}".as_bytes()), "\"\u{301}\"");
        assert_eq!(q("😀".as_bytes()), "\"😀\"");
        // U+FFFD itself is a valid, printable rune.
        assert_eq!(q("\u{fffd}".as_bytes()), "\"\u{fffd}\"");
    }

    #[test]
    fn lossy_replaces_invalid_utf8() {
        assert_eq!(Lossy(b"ab\xffc").to_string(), "ab\u{fffd}c");
        assert_eq!(Lossy(b"FOO").to_string(), "FOO");
    }
}
