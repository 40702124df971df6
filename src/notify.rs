//! notify: readiness messages from services: the sd_notify datagram socket (`ready = "notify"`),
//! the s6-style readiness pipe (`ready = "fd:N"`), and the `init notify` client.
//!
//! sd_notify: one datagram socket per service, in the abstract namespace (no file to create: a
//! `FROM scratch` image has no /run, a read-only root has no place for it). Abstract sockets have
//! no file permissions, so the kernel's `SCM_CREDENTIALS` (`SO_PASSCRED`) say who sent each
//! datagram: only root and the service's own user are believed. The socket itself says which
//! service it is about, so no pid check is made (a helper like `init notify` is a child of the
//! service, not the service). `MAINPID=` is rejected with a reason: ankh supervises the process it
//! started (see docs/health.md).

use std::ffi::OsString;
use std::io::{IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags,
    SocketAddrUnix, SocketFlags, SocketType,
};

use crate::probe::errno_text;

/// sd_notify datagrams larger than this are rejected (systemd's limit is the same order).
pub const MAX_DATAGRAM: usize = 4096;
/// Longest `STATUS=` text kept.
pub const MAX_STATUS: usize = 200;

/// One thing a service said on its notify socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `READY=1`.
    Ready,
    /// `STATUS=...`: free text for `init status`.
    Status(String),
    /// `STOPPING=1`: the service is shutting down on its own (informational).
    Stopping,
    /// `RELOADING=1` (informational).
    Reloading,
    /// `MAINPID=N`: not honoured; the loop logs `mainpid_rejected(n)`.
    MainPid(i32),
    /// A datagram that was not believed or not understood; the loop logs the reason.
    Rejected(String),
}

/// What the log says about a `MAINPID=` message.
pub fn mainpid_rejected(pid: i32) -> String {
    format!(
        "MAINPID={pid} ignored: init supervises the process it started (run the daemon in the \
         foreground)"
    )
}

/// Parses one sd_notify datagram: newline-separated `KEY=VALUE` assignments. Unknown keys are
/// ignored, as systemd does.
pub fn parse_datagram(data: &[u8]) -> Vec<Notification> {
    let mut out = Vec::new();
    let Ok(text) = std::str::from_utf8(data) else {
        out.push(Notification::Rejected("datagram is not UTF-8".into()));
        return out;
    };
    for line in text.split('\n') {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "READY" if value == "1" => out.push(Notification::Ready),
            "STOPPING" if value == "1" => out.push(Notification::Stopping),
            "RELOADING" if value == "1" => out.push(Notification::Reloading),
            "STATUS" => out.push(Notification::Status(
                value.chars().map(|c| if c.is_control() { '?' } else { c }).take(MAX_STATUS).collect(),
            )),
            "MAINPID" => match value.parse::<i32>() {
                Ok(pid) if pid > 0 => out.push(Notification::MainPid(pid)),
                _ => out.push(Notification::Rejected(format!("bad MAINPID={value}"))),
            },
            _ => {}
        }
    }
    out
}

static SOCKET_SERIAL: AtomicU32 = AtomicU32::new(0);

/// A service's `$NOTIFY_SOCKET`.
#[derive(Debug)]
pub struct NotifySocket {
    fd: OwnedFd,
    /// `@ankh/...`: the value of `NOTIFY_SOCKET` in the service's environment.
    env: String,
    /// Besides root, the only uid believed.
    uid: u32,
}

impl NotifySocket {
    /// Creates the socket for `service`, believing datagrams from root and `uid` (the service's
    /// user, or init's own uid when it does not switch user).
    pub fn bind(service: &str, uid: u32) -> Result<NotifySocket, String> {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| format!("notify socket: {}", errno_text(e)))?;
        rustix::net::sockopt::set_socket_passcred(&fd, true)
            .map_err(|e| format!("notify socket: SO_PASSCRED: {}", errno_text(e)))?;
        // Abstract names are at most 107 bytes; keep the service name short and the name unique.
        let short: String = service.chars().take(48).collect();
        let me = rustix::process::getpid().as_raw_nonzero();
        let mut last = Errno::ADDRINUSE;
        for _ in 0..16 {
            let serial = SOCKET_SERIAL.fetch_add(1, Ordering::Relaxed);
            let name = format!("ankh/{me}/{serial}/{short}");
            let addr = SocketAddrUnix::new_abstract_name(name.as_bytes())
                .map_err(|e| format!("notify socket @{name}: {}", errno_text(e)))?;
            match rustix::net::bind(&fd, &addr) {
                Ok(()) => {
                    return Ok(NotifySocket { fd, env: format!("@{name}"), uid });
                }
                // Someone squats the name: take the next.
                Err(Errno::ADDRINUSE) => last = Errno::ADDRINUSE,
                Err(e) => return Err(format!("notify socket @{name}: {}", errno_text(e))),
            }
        }
        Err(format!("notify socket: {}", errno_text(last)))
    }

    /// The value for `NOTIFY_SOCKET` in the service's environment.
    pub fn env_value(&self) -> &str {
        &self.env
    }

    /// Throws away datagrams queued by a previous run (call before each spawn).
    pub fn discard_pending(&self) {
        let mut buf = [0u8; 64];
        while matches!(rustix::net::recv(&self.fd, &mut buf, RecvFlags::DONTWAIT), Ok(_) | Err(Errno::INTR)) {
        }
    }

    /// Reads every queued datagram (until WouldBlock). Call when the fd is readable.
    pub fn receive(&self) -> Vec<Notification> {
        let mut out = Vec::new();
        let mut data = [0u8; MAX_DATAGRAM];
        loop {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut data)];
            let msg = rustix::net::recvmsg(
                &self.fd,
                &mut iov,
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            );
            let msg = match msg {
                Ok(m) => m,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => break,
                Err(e) => {
                    out.push(Notification::Rejected(format!("recvmsg: {}", errno_text(e))));
                    break;
                }
            };
            let mut sender = None;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmCredentials(c) = m {
                    sender = Some(c.uid.as_raw());
                }
                // Passed fds (SCM_RIGHTS) are dropped here, i.e. closed.
            }
            if msg.flags.contains(ReturnFlags::TRUNC) {
                out.push(Notification::Rejected(format!("datagram longer than {MAX_DATAGRAM} bytes")));
                continue;
            }
            match sender {
                Some(uid) if uid == 0 || uid == self.uid => {
                    let len = msg.bytes.min(MAX_DATAGRAM);
                    out.extend(parse_datagram(data.get(..len).unwrap_or(&[])));
                }
                Some(uid) => out
                    .push(Notification::Rejected(format!("datagram from uid {uid}, not the service's user"))),
                None => out.push(Notification::Rejected("datagram without credentials".into())),
            }
        }
        out
    }
}

impl AsFd for NotifySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// State of an s6-style readiness pipe after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeState {
    /// Nothing decisive yet.
    Pending,
    /// A newline arrived: the service is ready. Stop watching and drop the pipe.
    Ready,
    /// The service closed its end without a newline: it will never be ready this way.
    Closed,
}

/// `ready = "fd:N"`: the read end stays with init; the write end becomes fd N in the service.
#[derive(Debug)]
pub struct ReadyPipe {
    read: OwnedFd,
}

impl ReadyPipe {
    /// Returns the pipe and the write end to pass to the child (see `place_fd`).
    pub fn new() -> Result<(ReadyPipe, OwnedFd), String> {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| format!("readiness pipe: {}", errno_text(e)))?;
        // Only init's end is non-blocking (the flag is on the open file, which the child's end
        // does not share).
        rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| format!("readiness pipe: {}", errno_text(e)))?;
        Ok((ReadyPipe { read: r }, w))
    }

    /// Reads what is there; call when readable.
    pub fn on_readable(&mut self) -> PipeState {
        let mut buf = [0u8; 256];
        loop {
            match rustix::io::read(&self.read, &mut buf) {
                Ok(0) => return PipeState::Closed,
                Ok(n) => {
                    if buf.get(..n).unwrap_or(&[]).contains(&b'\n') {
                        return PipeState::Ready;
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return PipeState::Pending,
                Err(_) => return PipeState::Closed,
            }
        }
    }
}

impl AsFd for ReadyPipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

/// Puts `fd` where `spawn::Stdio::extra` makes it fd `n` in the child (extra[i] becomes 3 + i).
/// `n` must be the next free number: 3 with no socket-activation fds, 3 + their count otherwise.
pub fn place_fd(extra: &mut Vec<OwnedFd>, n: i32, fd: OwnedFd) -> Result<(), String> {
    let next = i32::try_from(extra.len()).unwrap_or(i32::MAX).saturating_add(3);
    if n != next {
        return Err(format!(
            "ready = \"fd:{n}\": the readiness fd must be fd {next} (the first after the \
             {} passed fd(s))",
            extra.len()
        ));
    }
    extra.push(fd);
    Ok(())
}

const NOTIFY_USAGE: &str =
    "usage: init notify [--ready] [--status=TEXT] [--stopping] [--reloading] [VAR=VALUE...]
Sends a readiness message to the supervisor through $NOTIFY_SOCKET (services with ready = \"notify\").
";

fn say(msg: &str) {
    // Not eprintln!: it panics when stderr is a closed pipe.
    let _ = std::io::stderr().write_all(msg.as_bytes());
}

/// `init notify`: like systemd-notify. `args` are those after `notify`. Returns the exit code:
/// 0 sent, 1 not sent (no `$NOTIFY_SOCKET`, send failed), 2 usage error.
pub fn notify_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    notify_to(std::env::var_os("NOTIFY_SOCKET").as_deref(), args)
}

/// `notify_main` with the socket given (the value of `$NOTIFY_SOCKET`, if any).
pub fn notify_to(socket: Option<&std::ffi::OsStr>, args: impl IntoIterator<Item = OsString>) -> i32 {
    match build_message(args) {
        Ok(None) => {
            say(NOTIFY_USAGE);
            0
        }
        Ok(Some(msg)) => match send(socket, &msg) {
            Ok(()) => 0,
            Err(e) => {
                say(&format!("init notify: {e}\n"));
                1
            }
        },
        Err(e) => {
            say(&format!("init notify: {e}\n{NOTIFY_USAGE}"));
            2
        }
    }
}

/// The datagram for the arguments; None for `--help`.
fn build_message(args: impl IntoIterator<Item = OsString>) -> Result<Option<String>, String> {
    use lexopt::prelude::*;
    let mut lines: Vec<String> = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("ready") => lines.push("READY=1".into()),
            Long("stopping") => lines.push("STOPPING=1".into()),
            Long("reloading") => lines.push("RELOADING=1".into()),
            Long("status") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                let v = v.into_string().map_err(|_| "--status: not UTF-8".to_string())?;
                lines.push(format!("STATUS={}", v.replace('\n', " ")));
            }
            Short('h') | Long("help") => return Ok(None),
            Value(v) => {
                let v = v.into_string().map_err(|_| "argument is not UTF-8".to_string())?;
                if !v.contains('=') || v.contains('\n') {
                    return Err(format!("expected VAR=VALUE, found {v:?}"));
                }
                lines.push(v);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if lines.is_empty() {
        return Err("nothing to send".into());
    }
    Ok(Some(lines.join("\n")))
}

/// Sends `msg` to `$NOTIFY_SOCKET` (`@abstract` or a path).
fn send(socket: Option<&std::ffi::OsStr>, msg: &str) -> Result<(), String> {
    let Some(target) = socket else {
        return Err("NOTIFY_SOCKET is not set (is this service run with ready = \"notify\"?)".into());
    };
    let target = target.to_string_lossy().into_owned();
    let addr = match target.strip_prefix('@') {
        Some(name) => SocketAddrUnix::new_abstract_name(name.as_bytes()),
        None => SocketAddrUnix::new(target.as_str()),
    }
    .map_err(|e| format!("NOTIFY_SOCKET={target}: {}", errno_text(e)))?;
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::DGRAM, SocketFlags::CLOEXEC, None)
        .map_err(|e| format!("socket: {}", errno_text(e)))?;
    rustix::net::sendto(&fd, msg.as_bytes(), SendFlags::NOSIGNAL, &addr)
        .map_err(|e| format!("send to {target}: {}", errno_text(e)))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn parse_systemd_assignments() {
        let n = parse_datagram(b"READY=1\nSTATUS=listening on :80\nMAINPID=42\nX=1\nSTOPPING=1");
        assert_eq!(
            n,
            vec![
                Notification::Ready,
                Notification::Status("listening on :80".into()),
                Notification::MainPid(42),
                Notification::Stopping,
            ]
        );
        assert_eq!(parse_datagram(b"READY=0"), vec![]);
        assert!(matches!(parse_datagram(b"MAINPID=abc").as_slice(), [Notification::Rejected(_)]));
        assert!(matches!(parse_datagram(b"\xff\xfe").as_slice(), [Notification::Rejected(_)]));
    }

    #[test]
    fn status_is_sanitised_and_bounded() {
        let long = format!("STATUS=a\x1bb{}", "x".repeat(1000));
        let parsed = parse_datagram(long.as_bytes());
        let [Notification::Status(s)] = parsed.as_slice() else { panic!("{parsed:?}") };
        assert!(s.starts_with("a?b"));
        assert_eq!(s.chars().count(), MAX_STATUS);
    }

    #[test]
    fn notify_arguments() {
        assert_eq!(
            build_message(args(&["--ready", "--status=up 3/3"])).unwrap(),
            Some("READY=1\nSTATUS=up 3/3".into())
        );
        assert_eq!(
            build_message(args(&["--status", "x", "STOPPING=1"])).unwrap(),
            Some("STATUS=x\nSTOPPING=1".into())
        );
        assert_eq!(build_message(args(&["--help"])).unwrap(), None);
        assert!(build_message(args(&[])).is_err());
        assert!(build_message(args(&["--bogus"])).is_err());
        assert!(build_message(args(&["nonsense"])).is_err());
    }

    #[test]
    fn place_fd_only_at_the_next_number() {
        let (_p, w) = ReadyPipe::new().unwrap();
        let mut extra = Vec::new();
        let e = place_fd(&mut extra, 5, w).unwrap_err();
        assert!(e.contains("must be fd 3"), "{e}");
        let (_p, w) = ReadyPipe::new().unwrap();
        place_fd(&mut extra, 3, w).unwrap();
        assert_eq!(extra.len(), 1);
    }
}
