//! The OS host name, as both daemons default `--broadcast-address` (and nsqd
//! its node ID) to it.

/// Longest host name read (POSIX `HOST_NAME_MAX` is 255, plus the NUL).
const HOST_NAME_BUF: usize = 256;

/// The OS host name (Go's `os.Hostname`), or "localhost" if it cannot be read.
pub fn hostname() -> String {
    let mut buf = [0u8; HOST_NAME_BUF];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostname_is_not_empty() {
        let name = super::hostname();
        assert!(!name.is_empty());
        assert!(!name.contains('\0'));
    }
}
