//! init's own log: a small `log::Log` that writes `init: message` lines to stderr (fd 2).
//!
//! It never panics and never blocks for long: a failed or short write is dropped (stderr is shared
//! with services and the runtime, so it is never made non-blocking). Timestamps are off by default
//! (container runtimes add their own); `--log-level`/`$INIT_LOG_LEVEL` picks the level.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger;

/// Prefix lines with the monotonic time (`[   12.345]`, as the kernel's console does).
static TIMESTAMPS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Timestamps on or off: off in containers (the runtime stamps lines), on as a system's PID 1
/// (`--log-timestamps` forces them).
pub fn set_timestamps(on: bool) {
    TIMESTAMPS.store(on, std::sync::atomic::Ordering::Relaxed);
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // One write(2) per line, so lines from init and services do not interleave mid-line.
        let mut line: Vec<u8> = Vec::with_capacity(128);
        if TIMESTAMPS.load(std::sync::atomic::Ordering::Relaxed) {
            let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            let _ = write!(line, "[{:5}.{:03}] ", now.tv_sec, now.tv_nsec / 1_000_000);
        }
        let level = match r.level() {
            // The message grammar is `init: web: unable to exec /x: ...` (design §3): errors,
            // warnings and news read the same; only the chatty levels are tagged.
            Level::Error | Level::Warn | Level::Info => "",
            Level::Debug => "debug: ",
            Level::Trace => "trace: ",
        };
        let _ = write!(line, "init: {level}{}", r.args());
        line.push(b'\n');
        write_all_fd2(&line);
    }

    fn flush(&self) {}
}

/// Writes to fd 2, retrying on EINTR and short writes, giving up on any other error.
pub fn write_all_fd2(mut buf: &[u8]) {
    let fd = rustix::stdio::stderr();
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return,
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
    }
}

/// Parses a level name; None when unknown.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" | "warning" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

/// Installs the logger once; later calls only change the level.
pub fn init(level: LevelFilter, timestamps: bool) {
    static LOGGER: Logger = Logger;
    set_timestamps(timestamps);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("DEBUG"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("warning"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("loud"), None);
    }
}
