//! signals: init's signal mask and signalfd, and the signal name table.
//!
//! init never installs a handler: it blocks the signals it handles in the first statement of
//! `main` and reads them from a signalfd in the poll loop. Synchronous signals (SEGV, BUS, FPE,
//! ILL, TRAP, ABRT, SYS) are left unblocked, as tini does: blocking them only turns a crash into a
//! silent kill. Names follow the conventions of kill(1) and systemd: real-time signals count from
//! SIGRTMIN = 34 (glibc's value, which `kill -s RTMIN+3` and systemd-nspawn use), not musl's 35.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys::{self, SigSet};

/// glibc's SIGRTMIN: what other programs mean by "RTMIN+n" (32 and 33 are glibc's own).
pub const SIGRTMIN: i32 = 34;
/// SIGRTMAX on Linux.
pub const SIGRTMAX: i32 = 64;

/// Classic signal names (without `SIG`), by number; Horust's list plus KILL and STOP.
const NAMES: [(i32, &str); 31] = [
    (1, "HUP"),
    (2, "INT"),
    (3, "QUIT"),
    (4, "ILL"),
    (5, "TRAP"),
    (6, "ABRT"),
    (7, "BUS"),
    (8, "FPE"),
    (9, "KILL"),
    (10, "USR1"),
    (11, "SEGV"),
    (12, "USR2"),
    (13, "PIPE"),
    (14, "ALRM"),
    (15, "TERM"),
    (16, "STKFLT"),
    (17, "CHLD"),
    (18, "CONT"),
    (19, "STOP"),
    (20, "TSTP"),
    (21, "TTIN"),
    (22, "TTOU"),
    (23, "URG"),
    (24, "XCPU"),
    (25, "XFSZ"),
    (26, "VTALRM"),
    (27, "PROF"),
    (28, "WINCH"),
    (29, "IO"),
    (30, "PWR"),
    (31, "SYS"),
];

/// Aliases accepted on input only.
const ALIASES: [(&str, i32); 4] = [("POLL", 29), ("IOT", 6), ("CLD", 17), ("UNUSED", 31)];

/// Signals whose default action is a core dump or that the kernel raises synchronously: left
/// unblocked in init so a crash stays a crash.
const SYNCHRONOUS: [i32; 7] = [4, 5, 6, 7, 8, 11, 31];

/// Parses a signal: "TERM", "SIGTERM", "term", "15", "RTMIN+3", "SIGRTMAX-2", "RTMIN".
/// Pure; `None` for anything that is not a signal in 1..=64.
pub fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i32>().ok().filter(|n| (1..=SIGRTMAX).contains(n));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(n, _)) = NAMES.iter().find(|(_, nm)| *nm == name) {
        return Some(n);
    }
    if let Some(&(_, n)) = ALIASES.iter().find(|(nm, _)| *nm == name) {
        return Some(n);
    }
    parse_realtime(name)
}

fn parse_realtime(name: &str) -> Option<i32> {
    let (base, rest) = if let Some(rest) = name.strip_prefix("RTMIN") {
        (SIGRTMIN, rest)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        (SIGRTMAX, rest)
    } else {
        return None;
    };
    let n = if rest.is_empty() {
        base
    } else {
        let (sign, digits) = match rest.split_at_checked(1)? {
            ("+", d) => (1, d),
            ("-", d) => (-1, d),
            _ => return None,
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 2 {
            return None;
        }
        base + sign * digits.parse::<i32>().ok()?
    };
    (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(n)
}

/// The name of a signal: "SIGTERM", "SIGRTMIN+3", "SIGRTMAX"; "SIG32" for numbers without one.
pub fn signal_name(sig: i32) -> String {
    if let Some((_, name)) = NAMES.iter().find(|(n, _)| *n == sig) {
        return format!("SIG{name}");
    }
    if sig == SIGRTMIN {
        "SIGRTMIN".to_string()
    } else if sig == SIGRTMAX {
        "SIGRTMAX".to_string()
    } else if (SIGRTMIN..SIGRTMAX).contains(&sig) {
        format!("SIGRTMIN+{}", sig - SIGRTMIN)
    } else {
        format!("SIG{sig}")
    }
}

/// The signals init blocks and reads from its signalfd: every blockable signal except the
/// synchronous ones.
pub fn handled_set() -> SigSet {
    let mut set = sys::full_sigset();
    for sig in SYNCHRONOUS {
        set &= !sys::sig_bit(sig);
    }
    set
}

/// The signal state init found at start-up, for a child that should get it back (tini mode
/// restores it, as tini does; services get a clean state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inherited {
    pub mask: SigSet,
    pub ignored: SigSet,
}

/// First statement of `main`: block every signal init handles, then make SIGCHLD SIG_DFL (an
/// inherited SIG_IGN makes the kernel reap children itself and exit codes are lost). Returns
/// the mask and ignored set init was started with.
pub fn block_all() -> io::Result<Inherited> {
    let mask = sys::sigprocmask_block(handled_set())?;
    // The Rust runtime sets SIGPIPE to SIG_IGN before main, so its original disposition is
    // unknown: assume SIG_DFL, as nearly every parent leaves it (a child that inherits an
    // ignored SIGPIPE loops on EPIPE instead of dying in `yes | head`).
    let ignored = sys::ignored_signals() & !sys::sig_bit(SIGPIPE);
    sys::set_disposition(SIGCHLD, sys::Disposition::Default)?;
    Ok(Inherited { mask, ignored })
}

const SIGCHLD: i32 = 17;
const SIGPIPE: i32 = 13;

/// What `SignalFd::read` returns for one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    /// The sender (kill), or the child for SIGCHLD; 0 from the kernel. init's own pid for a
    /// SIGPIPE raised by one of its own writes to a closed pipe (not to be forwarded).
    pub pid: i32,
}

/// A non-blocking, close-on-exec signalfd for `handled_set()`.
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// signalfd for every handled signal; call `block_all` first or they are delivered instead.
    pub fn new() -> io::Result<SignalFd> {
        Ok(SignalFd { fd: sys::signalfd(handled_set())? })
    }

    /// The next pending signal, or `None` when there is none (call until `None` to drain).
    /// A read error other than EAGAIN also gives `None` (logged): the loop must go on.
    pub fn read(&self) -> Option<SigInfo> {
        match sys::signalfd_read(&self.fd) {
            Ok(Some(i)) => Some(SigInfo { signo: i.signo, pid: i.pid }),
            Ok(None) => None,
            Err(e) => {
                log::error!("signalfd read: {}", sys::strerror(sys::errno_of(&e)));
                None
            }
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        for s in ["TERM", "SIGTERM", "term", "sigterm", "15", " TERM "] {
            assert_eq!(parse_signal(s), Some(15), "{s}");
        }
        assert_eq!(parse_signal("RTMIN+3"), Some(37));
        assert_eq!(parse_signal("SIGRTMIN+4"), Some(38));
        assert_eq!(parse_signal("rtmin"), Some(34));
        assert_eq!(parse_signal("RTMAX"), Some(64));
        assert_eq!(parse_signal("RTMAX-1"), Some(63));
        assert_eq!(parse_signal("POLL"), Some(29));
        assert_eq!(parse_signal("IO"), Some(29));
        assert_eq!(parse_signal("PWR"), Some(30));
        assert_eq!(parse_signal("64"), Some(64));
    }

    #[test]
    fn rejects_non_signals() {
        for s in [
            "",
            "0",
            "65",
            "-1",
            "+1",
            "SIG",
            "TERMX",
            "RTMIN+31",
            "RTMAX+1",
            "RTMIN+",
            "RTMIN3",
            "RTMIN-1",
            "RTMIN+-1",
            "99999999999",
            "é",
            "SIGé",
        ] {
            assert_eq!(parse_signal(s), None, "{s}");
        }
    }

    #[test]
    fn names_round_trip() {
        for sig in 1..=64 {
            let name = signal_name(sig);
            assert!(name.starts_with("SIG"), "{name}");
            if sig != 32 && sig != 33 {
                assert_eq!(parse_signal(&name), Some(sig), "{name}");
            }
        }
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(37), "SIGRTMIN+3");
        assert_eq!(signal_name(34), "SIGRTMIN");
        assert_eq!(signal_name(64), "SIGRTMAX");
        assert_eq!(signal_name(32), "SIG32");
        assert_eq!(signal_name(0), "SIG0");
    }

    #[test]
    fn handled_set_leaves_sync_and_unblockable_signals_out() {
        let set = handled_set();
        for sig in [9, 19, 11, 7, 8, 4, 5, 6, 31] {
            assert_eq!(set & sys::sig_bit(sig), 0, "{sig}");
        }
        for sig in [1, 2, 3, 10, 12, 13, 14, 15, 17, 18, 20, 21, 22, 28, 30, 34, 37, 38, 64] {
            assert_ne!(set & sys::sig_bit(sig), 0, "{sig}");
        }
    }
}
