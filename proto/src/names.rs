//! Topic and channel name rules (nsqd `internal/protocol/names.go`).
//!
//! A valid name matches `^[.a-zA-Z0-9_-]+(#ephemeral)?$` and is 1 to 64 bytes
//! long, the `#ephemeral` suffix included. Topics and channels share one rule.
//! Names are used as directory and file names by the disk queue, which is why
//! the character set is so narrow; the checks here are hand-written so the
//! crate needs no regex engine.

/// Longest valid topic or channel name in bytes, `#ephemeral` suffix included.
pub const MAX_NAME_LEN: usize = 64;

/// Suffix that marks a topic or channel as ephemeral (memory only, deleted
/// when its last consumer or channel goes away).
pub const EPHEMERAL_SUFFIX: &str = "#ephemeral";

/// Whether `name` is a valid topic name.
pub fn is_valid_topic_name(name: &str) -> bool {
    is_valid_name(name.as_bytes())
}

/// Whether `name` is a valid channel name.
pub fn is_valid_channel_name(name: &str) -> bool {
    is_valid_name(name.as_bytes())
}

/// Whether `name` ends in `#ephemeral`. Like nsqd (`strings.HasSuffix`), this
/// does not check validity; call it on names that already passed validation.
pub fn is_ephemeral(name: &str) -> bool {
    name.ends_with(EPHEMERAL_SUFFIX)
}

/// The name rule on raw bytes, as they come off the wire. Shared by topic
/// and channel validation and by the command decoder, which validates before
/// it knows the bytes are UTF-8.
pub fn is_valid_name(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    let base = name
        .strip_suffix(EPHEMERAL_SUFFIX.as_bytes())
        .unwrap_or(name);
    !base.is_empty()
        && base
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for name in [
            "a",
            "test",
            "a.b_c-d",
            "ABC123",
            "...",
            "-",
            "x#ephemeral",
            "ch#ephemeral",
            &"a".repeat(64),
            &format!("{}#ephemeral", "a".repeat(54)),
        ] {
            assert!(is_valid_topic_name(name), "{name:?}");
            assert!(is_valid_channel_name(name), "{name:?}");
        }
    }

    #[test]
    fn invalid_names() {
        for name in [
            "",
            "x!",
            "a b",
            "a/b",
            "#ephemeral",
            "a#ephemeral#ephemeral",
            "a#ephem",
            "a#",
            "é",
            "a\n",
            "a\r",
            &"a".repeat(65),
            &format!("{}#ephemeral", "a".repeat(55)),
        ] {
            assert!(!is_valid_topic_name(name), "{name:?}");
            assert!(!is_valid_channel_name(name), "{name:?}");
        }
    }

    #[test]
    fn ephemeral_suffix() {
        assert!(is_ephemeral("t#ephemeral"));
        assert!(!is_ephemeral("t"));
        assert!(!is_ephemeral("t#ephemeralx"));
    }
}
