//! probe: one health-check round run inside the poll loop: file test, exec, TCP connect, HTTP GET.
//!
//! Nothing here blocks. A probe owns at most one fd at a time and tells the loop about it through
//! `Registry` (add / modify / remove, epoll-shaped, called before any close). The loop calls
//! `on_event` when that fd is ready and `on_exit` when the exec probe's pid is reaped (the loop's
//! one `waitpid(-1)` is the only reaper); the loop also owns the deadline (`crate::health`) and
//! calls `cancel` at timeout, which kills an exec probe's whole process group.
//!
//! A round runs every configured check in order (file, exec, TCP, HTTP) and stops at the first
//! failure: all of them must pass (Horust ANDs them the same way).
//!
//! HTTP is plain HTTP/1.1 without TLS: an `https` endpoint is rejected at validation (use an exec
//! probe with a TLS-capable client, or a plain-HTTP health port). Hosts are IP literals or
//! `localhost` (resolved at validation: name lookup would block the loop).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::health::{HealthCheck, HealthEvent, HealthStatus, fmt_duration};
use crate::spawn::{Io, Stdio};
use crate::spec::{Endpoint, Health, HttpEndpoint};
use crate::supervisor::ExitStatus;

/// The response head (status line and headers) must fit in this many bytes.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;
/// The last this-many bytes of an exec probe's output are kept for the error message.
const MAX_EXEC_OUTPUT: usize = 1024;
/// Longest excerpt of a reason phrase or output line put into a message.
const MAX_EXCERPT: usize = 200;

/// What the loop should wait for on a probe's fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

/// The loop's side of a probe's fd (an epoll set, or a test's poll loop). `remove` is always
/// called before the fd is closed.
pub trait Registry {
    fn add(&mut self, fd: BorrowedFd<'_>, interest: Interest);
    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest);
    fn remove(&mut self, fd: BorrowedFd<'_>);
}

/// Starts `argv` as a new process in its own process group (pgid = pid) with this stdio; returns
/// its pid. The reactor's implementation goes through `crate::spawn` with the service's user,
/// environment and working directory.
pub type Spawner<'a> = dyn FnMut(&[String], Stdio) -> Result<i32, String> + 'a;

/// One check of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    /// Healthy while the path exists.
    File(PathBuf),
    /// Healthy on exit 0.
    Exec(Vec<String>),
    /// Healthy when a connection is accepted.
    Tcp(Endpoint),
    /// Healthy on a 2xx status line and a complete response head.
    Http(HttpEndpoint),
}

impl ProbeKind {
    /// The checks of a `[healthiness]` table, in the order a round runs them. Empty when the
    /// table configures none (then the service is never probed).
    pub fn from_health(h: &Health) -> Vec<ProbeKind> {
        let mut kinds = Vec::new();
        if let Some(p) = &h.file {
            kinds.push(ProbeKind::File(p.clone()));
        }
        if let Some(c) = &h.command {
            kinds.push(ProbeKind::Exec(c.clone()));
        }
        if let Some(t) = &h.tcp {
            kinds.push(ProbeKind::Tcp(t.clone()));
        }
        if let Some(u) = &h.http {
            kinds.push(ProbeKind::Http(u.clone()));
        }
        kinds
    }
}

/// Horust deletes `file-path` before every start, so a file left by the previous run does not
/// make the new one ready. Call before each spawn. A missing file is fine.
pub fn prepare(h: &Health) -> Result<(), String> {
    let Some(path) = &h.file else { return Ok(()) };
    match rustix::fs::unlink(path) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(format!("remove {}: {}", path.display(), errno_text(e))),
    }
}

/// "Connection refused", without std's " (os error 111)".
pub fn errno_text(e: Errno) -> String {
    let s = std::io::Error::from(e).to_string();
    match s.find(" (os error") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}

/// The result of `Probe::start`: most probes wait for the loop, some finish at once.
#[derive(Debug)]
pub enum Started {
    Running(Probe),
    Done(Result<(), String>),
}

/// What `fast_path` found right after connect.
enum Fast {
    Passed,
    Receiving(OwnedFd),
    Sending(OwnedFd, Vec<u8>, usize),
    Connecting(OwnedFd),
    Failed(Errno),
}

/// A health-check round in progress.
#[derive(Debug)]
pub struct Probe {
    kinds: Rc<[ProbeKind]>,
    /// Index in `kinds` of the check running now.
    at: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Non-blocking connect in progress to `addrs[idx]`.
    Connecting {
        sock: OwnedFd,
        idx: usize,
        /// Errors of the addresses tried before, joined into the final message.
        errors: Vec<String>,
    },
    /// Writing the request; `sent` bytes are out.
    Sending { sock: OwnedFd, request: Vec<u8>, sent: usize },
    /// Reading the response head.
    Receiving { sock: OwnedFd, head: Vec<u8> },
    /// An exec probe: waiting for its exit (and reading its output until EOF).
    Running { pid: i32, out: Option<OwnedFd>, output: Vec<u8> },
    /// Between checks or finished; owns nothing.
    Idle,
}

impl Probe {
    /// Starts a round of `kinds` (from `ProbeKind::from_health`). The spawner is used only here:
    /// exec checks run before the network ones.
    pub fn start(kinds: Rc<[ProbeKind]>, reg: &mut dyn Registry, spawn: &mut Spawner) -> Started {
        let mut probe = Probe { kinds, at: 0, state: State::Idle };
        match probe.run_from(0, reg, Some(spawn)) {
            Poll::Pending => Started::Running(probe),
            Poll::Ready(r) => Started::Done(r),
        }
    }

    /// The pid of the exec check running now, so the loop can route its exit to `on_exit`.
    pub fn pid(&self) -> Option<i32> {
        match &self.state {
            State::Running { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// The fd the probe waits on and for what (also told to the `Registry`).
    pub fn watched(&self) -> Option<(BorrowedFd<'_>, Interest)> {
        match &self.state {
            State::Connecting { sock, .. } | State::Sending { sock, .. } => {
                Some((sock.as_fd(), Interest::Write))
            }
            State::Receiving { sock, .. } => Some((sock.as_fd(), Interest::Read)),
            State::Running { out: Some(fd), .. } => Some((fd.as_fd(), Interest::Read)),
            State::Running { out: None, .. } | State::Idle => None,
        }
    }

    /// The watched fd is ready (or in error): make progress without blocking.
    pub fn on_event(&mut self, reg: &mut dyn Registry) -> Poll<Result<(), String>> {
        let kinds = Rc::clone(&self.kinds);
        let path = http_path(&kinds, self.at);
        let step = match &mut self.state {
            State::Connecting { .. } => self.connect_done(reg),
            State::Sending { .. } => self.send_more(reg),
            State::Receiving { sock, head } => receive(sock, head, path),
            State::Running { out, output, .. } => {
                if drain_output(out, output, reg) {
                    // EOF: the output is complete; the exit still decides.
                    if let Some(fd) = out.take() {
                        reg.remove(fd.as_fd());
                    }
                }
                Poll::Pending
            }
            State::Idle => Poll::Pending,
        };
        self.after_step(step, reg)
    }

    /// The exec check's process was reaped with `status`.
    pub fn on_exit(&mut self, status: ExitStatus, reg: &mut dyn Registry) -> Poll<Result<(), String>> {
        let kinds = Rc::clone(&self.kinds);
        let argv0 = exec_argv0(&kinds, self.at);
        let State::Running { out, output, .. } = &mut self.state else {
            return Poll::Pending;
        };
        // Take what the check wrote before it died; a grandchild may hold the pipe open.
        drain_output(out, output, reg);
        let result = match status {
            ExitStatus::Code(0) => Ok(()),
            other => Err(exec_failure(argv0, other, output)),
        };
        self.after_step(Poll::Ready(result), reg)
    }

    /// Stops the round (timeout, or the service stopped): removes the fd from the loop, closes
    /// it, and kills an exec check's process group. Returns the exec pid: its exit still comes
    /// through the loop's reaper and is to be ignored.
    pub fn cancel(mut self, reg: &mut dyn Registry) -> Option<i32> {
        let pid = self.pid();
        if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
            // Not yet reaped, so the pid (= pgid) cannot have been reused: kill(2), setsid(2).
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        self.release(reg);
        pid
    }

    /// What a timeout means at this point, for the log: "GET /healthz: no response within 2s".
    pub fn timeout_error(&self, timeout: Duration) -> String {
        let after = fmt_duration(timeout);
        match (&self.state, self.kinds.get(self.at)) {
            (State::Connecting { idx, .. }, Some(ProbeKind::Tcp(ep)))
            | (State::Connecting { idx, .. }, Some(ProbeKind::Http(HttpEndpoint { endpoint: ep, .. }))) => {
                match ep.addrs.get(*idx) {
                    Some(a) => format!("connect {a}: timed out after {after}"),
                    None => format!("connect {}: timed out after {after}", ep.host),
                }
            }
            (State::Sending { .. }, _) => {
                format!("GET {}: request not sent within {after}", self.current_http_path())
            }
            (State::Receiving { head, .. }, _) if head.is_empty() => {
                format!("GET {}: no response within {after}", self.current_http_path())
            }
            (State::Receiving { .. }, _) => {
                format!("GET {}: response incomplete after {after}", self.current_http_path())
            }
            (State::Running { .. }, _) => {
                format!("{}: timed out after {after}, killed", self.current_argv0())
            }
            _ => format!("timed out after {after}"),
        }
    }

    // ---- internals ----

    /// Closes the current fd (after telling the registry) and leaves the probe idle.
    fn release(&mut self, reg: &mut dyn Registry) {
        if let Some((fd, _)) = self.watched() {
            reg.remove(fd);
        }
        self.state = State::Idle;
    }

    /// After a check made progress: on success go on to the next check, else report.
    fn after_step(
        &mut self,
        step: Poll<Result<(), String>>,
        reg: &mut dyn Registry,
    ) -> Poll<Result<(), String>> {
        match step {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => {
                self.release(reg);
                let next = self.at.saturating_add(1);
                self.run_from(next, reg, None)
            }
            Poll::Ready(Err(e)) => {
                self.release(reg);
                Poll::Ready(Err(e))
            }
        }
    }

    /// Runs checks from index `from` until one has to wait or fails, or all pass.
    fn run_from(
        &mut self,
        from: usize,
        reg: &mut dyn Registry,
        mut spawn: Option<&mut Spawner>,
    ) -> Poll<Result<(), String>> {
        let kinds = Rc::clone(&self.kinds);
        let mut at = from;
        while let Some(kind) = kinds.get(at) {
            self.at = at;
            let step = match kind {
                ProbeKind::File(path) => file_exists(path),
                ProbeKind::Exec(argv) => match spawn.as_deref_mut() {
                    Some(spawn) => self.start_exec(argv, reg, spawn),
                    None => Poll::Ready(Err("exec check after a network check".into())),
                },
                ProbeKind::Tcp(ep) | ProbeKind::Http(HttpEndpoint { endpoint: ep, .. }) => {
                    self.connect_from(ep, 0, Vec::new(), reg)
                }
            };
            match step {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {
                    self.release(reg);
                    at = at.saturating_add(1);
                }
                Poll::Ready(Err(e)) => {
                    self.release(reg);
                    return Poll::Ready(Err(e));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn start_exec(
        &mut self,
        argv: &[String],
        reg: &mut dyn Registry,
        spawn: &mut Spawner,
    ) -> Poll<Result<(), String>> {
        let argv0 = argv.first().map_or("", String::as_str);
        let pipe = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| format!("{argv0}: pipe: {}", errno_text(e)));
        let (r, w) = match pipe {
            Ok(p) => p,
            Err(e) => return Poll::Ready(Err(e)),
        };
        // Only our end is non-blocking: the flag lives on the open file, not the fd.
        let _ = rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK);
        let stderr = match rustix::io::dup(&w) {
            Ok(fd) => Io::Fd(fd),
            Err(_) => Io::Null,
        };
        let stdio = Stdio { stdin: Io::Null, stdout: Io::Fd(w), stderr, extra: Vec::new() };
        match spawn(argv, stdio) {
            Ok(pid) => {
                reg.add(r.as_fd(), Interest::Read);
                self.state = State::Running { pid, out: Some(r), output: Vec::new() };
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Tries `ep.addrs[idx..]` in order until a connect is in progress or done.
    fn connect_from(
        &mut self,
        ep: &Endpoint,
        mut idx: usize,
        mut errors: Vec<String>,
        reg: &mut dyn Registry,
    ) -> Poll<Result<(), String>> {
        while let Some(addr) = ep.addrs.get(idx) {
            let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
            let sock = rustix::net::socket_with(
                family,
                SocketType::STREAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            );
            let attempt = sock.and_then(|s| match rustix::net::connect(&s, addr) {
                Ok(()) => Ok((s, true)),
                Err(Errno::INPROGRESS) | Err(Errno::INTR) => Ok((s, false)),
                Err(e) => Err(e),
            });
            let fast = match attempt {
                Ok((sock, connected)) => self.fast_path(sock, connected),
                Err(e) => Fast::Failed(e),
            };
            match fast {
                Fast::Passed => return Poll::Ready(Ok(())),
                Fast::Receiving(sock) => {
                    reg.add(sock.as_fd(), Interest::Read);
                    let head = Vec::new();
                    self.state = State::Receiving { sock, head };
                    return Poll::Pending;
                }
                Fast::Sending(sock, request, sent) => {
                    reg.add(sock.as_fd(), Interest::Write);
                    self.state = State::Sending { sock, request, sent };
                    return Poll::Pending;
                }
                Fast::Connecting(sock) => {
                    reg.add(sock.as_fd(), Interest::Write);
                    self.state = State::Connecting { sock, idx, errors };
                    return Poll::Pending;
                }
                Fast::Failed(e) => errors.push(format!("connect {addr}: {}", errno_text(e))),
            }
            idx = idx.saturating_add(1);
        }
        if errors.is_empty() {
            errors.push(format!("connect {}: no address", ep.host));
        }
        Poll::Ready(Err(errors.join("; ")))
    }

    /// Right after connect(2): on loopback the handshake is usually complete by the time
    /// connect returns EINPROGRESS, so try to finish the TCP check or send the HTTP request at
    /// once, saving a wake-up and two epoll_ctl calls per probe (measured: bench in tests/).
    fn fast_path(&self, sock: OwnedFd, connected: bool) -> Fast {
        let Some(ProbeKind::Http(http)) = self.kinds.get(self.at) else {
            if connected || rustix::net::getpeername(&sock).is_ok() {
                return Fast::Passed;
            }
            return match rustix::net::sockopt::socket_error(&sock) {
                Ok(Err(e)) | Err(e) => Fast::Failed(e),
                Ok(Ok(())) => Fast::Connecting(sock),
            };
        };
        let request = http_request(http);
        let mut sent = 0usize;
        loop {
            let rest = request.get(sent..).unwrap_or(&[]);
            if rest.is_empty() {
                return Fast::Receiving(sock);
            }
            // While the handshake is in progress send(2) gives EAGAIN; a refused connection
            // gives its error (tcp_sendmsg -> sk_stream_wait_connect).
            match rustix::net::send(&sock, rest, SendFlags::NOSIGNAL) {
                Ok(n) => sent = sent.saturating_add(n),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if sent > 0 || connected => {
                    return Fast::Sending(sock, request, sent);
                }
                Err(Errno::AGAIN) => return Fast::Connecting(sock),
                Err(e) => return Fast::Failed(e),
            }
        }
    }

    fn connect_done(&mut self, reg: &mut dyn Registry) -> Poll<Result<(), String>> {
        let State::Connecting { sock, idx, errors } = std::mem::replace(&mut self.state, State::Idle) else {
            return Poll::Pending;
        };
        let outcome = match rustix::net::sockopt::socket_error(&sock) {
            Ok(r) => r,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => self.connected(sock, reg),
            Err(e) => {
                let kinds = Rc::clone(&self.kinds);
                let ep = match kinds.get(self.at) {
                    Some(ProbeKind::Tcp(ep)) | Some(ProbeKind::Http(HttpEndpoint { endpoint: ep, .. })) => ep,
                    _ => return Poll::Ready(Err("connect: no endpoint".into())),
                };
                let mut errors = errors;
                if let Some(addr) = ep.addrs.get(idx) {
                    errors.push(format!("connect {addr}: {}", errno_text(e)));
                }
                reg.remove(sock.as_fd());
                drop(sock);
                self.connect_from(ep, idx.saturating_add(1), errors, reg)
            }
        }
    }

    /// The connection is up (its socket registered for Write): TCP has passed; HTTP sends.
    fn connected(&mut self, sock: OwnedFd, reg: &mut dyn Registry) -> Poll<Result<(), String>> {
        match self.kinds.get(self.at) {
            Some(ProbeKind::Http(http)) => {
                let request = http_request(http);
                self.state = State::Sending { sock, request, sent: 0 };
                self.send_more(reg)
            }
            _ => {
                reg.remove(sock.as_fd());
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Writes what the socket takes; when all is out, waits for the response.
    fn send_more(&mut self, reg: &mut dyn Registry) -> Poll<Result<(), String>> {
        let path = self.current_http_path().to_string();
        let State::Sending { sock, request, sent } = &mut self.state else {
            return Poll::Pending;
        };
        loop {
            let rest = request.get(*sent..).unwrap_or(&[]);
            if rest.is_empty() {
                break;
            }
            // MSG_NOSIGNAL: a peer that closed must give EPIPE, not SIGPIPE (send(2)).
            match rustix::net::send(&*sock, rest, SendFlags::NOSIGNAL) {
                Ok(n) => *sent = sent.saturating_add(n),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(format!("GET {path}: send: {}", errno_text(e)))),
            }
        }
        let State::Sending { sock, .. } = std::mem::replace(&mut self.state, State::Idle) else {
            return Poll::Pending;
        };
        reg.modify(sock.as_fd(), Interest::Read);
        self.state = State::Receiving { sock, head: Vec::new() };
        // The server has yet to be scheduled: a recv now would almost always be EAGAIN.
        Poll::Pending
    }

    fn current_http_path(&self) -> &str {
        http_path(&self.kinds, self.at)
    }

    fn current_argv0(&self) -> &str {
        exec_argv0(&self.kinds, self.at)
    }
}

fn http_path(kinds: &[ProbeKind], at: usize) -> &str {
    match kinds.get(at) {
        Some(ProbeKind::Http(h)) => &h.path,
        _ => "/",
    }
}

fn exec_argv0(kinds: &[ProbeKind], at: usize) -> &str {
    match kinds.get(at) {
        Some(ProbeKind::Exec(argv)) => argv.first().map_or("", String::as_str),
        _ => "",
    }
}

fn file_exists(path: &Path) -> Poll<Result<(), String>> {
    match rustix::fs::stat(path) {
        Ok(_) => Poll::Ready(Ok(())),
        Err(Errno::NOENT) => Poll::Ready(Err(format!("{}: does not exist", path.display()))),
        Err(e) => Poll::Ready(Err(format!("{}: {}", path.display(), errno_text(e)))),
    }
}

fn http_request(h: &HttpEndpoint) -> Vec<u8> {
    let host = &h.endpoint.host;
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.clone() };
    format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: ankh/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        h.path,
        host,
        h.endpoint.port,
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// Reads what is there of the response head; decides as soon as it can.
fn receive(sock: &OwnedFd, head: &mut Vec<u8>, path: &str) -> Poll<Result<(), String>> {
    let mut buf = [0u8; 2048];
    loop {
        match rustix::net::recv(sock, &mut buf, RecvFlags::empty()) {
            Ok((0, _)) => {
                return Poll::Ready(Err(if head.is_empty() {
                    format!("GET {path}: connection closed without a response")
                } else {
                    match judge_head(head, path) {
                        Some(Err(e)) => e,
                        _ => format!("GET {path}: connection closed mid-response"),
                    }
                }));
            }
            Ok((n, _)) => {
                let room = MAX_RESPONSE_HEAD.saturating_sub(head.len());
                head.extend_from_slice(buf.get(..n.min(room)).unwrap_or(&[]));
                if let Some(verdict) = judge_head(head, path) {
                    return Poll::Ready(verdict);
                }
                if n > room || head.len() >= MAX_RESPONSE_HEAD {
                    return Poll::Ready(Err(format!(
                        "GET {path}: bad response: head longer than {MAX_RESPONSE_HEAD} bytes"
                    )));
                }
            }
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(format!("GET {path}: recv: {}", errno_text(e)))),
        }
    }
}

/// Judges a partial response head: None = need more bytes. A non-2xx status or a malformed
/// status line is final at once; a 2xx needs the whole head (up to the blank line).
pub fn judge_head(head: &[u8], path: &str) -> Option<Result<(), String>> {
    let bad = || Some(Err(format!("GET {path}: bad response")));
    let line_end = head.iter().position(|&b| b == b'\n');
    let line = head.get(..line_end.unwrap_or(head.len())).unwrap_or(&[]);
    // Check the prefix even before the line is complete, so garbage fails fast.
    let proto = b"HTTP/1.";
    let n = line.len().min(proto.len());
    if line.get(..n) != proto.get(..n) {
        return bad();
    }
    let end = line_end?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // "HTTP/1.1 200 OK": version, space, three digits, then space + reason or nothing.
    let code = line.get(9..12)?;
    if line.get(7).is_none_or(|b| !b.is_ascii_digit())
        || line.get(8) != Some(&b' ')
        || !code.iter().all(u8::is_ascii_digit)
        || line.get(12).is_some_and(|&b| b != b' ')
    {
        return bad();
    }
    let code_text = String::from_utf8_lossy(code);
    if code.first() != Some(&b'2') {
        let reason = excerpt(line.get(13..).unwrap_or(&[]));
        return Some(Err(if reason.is_empty() {
            format!("GET {path}: {code_text}")
        } else {
            format!("GET {path}: {code_text} {reason}")
        }));
    }
    // 2xx: wait for the end of the head, so a server that dies mid-response is not healthy.
    let rest = head.get(end..).unwrap_or(&[]);
    let complete = rest.windows(3).any(|w| w == b"\n\r\n") || rest.windows(2).any(|w| w == b"\n\n");
    complete.then_some(Ok(()))
}

/// Printable, bounded text from untrusted bytes.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_EXCERPT)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Reads the exec probe's output until WouldBlock, keeping the last bytes. True at EOF.
fn drain_output(out: &mut Option<OwnedFd>, output: &mut Vec<u8>, reg: &mut dyn Registry) -> bool {
    let Some(fd) = out.as_ref() else { return true };
    let mut buf = [0u8; 1024];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => {
                if let Some(fd) = out.take() {
                    reg.remove(fd.as_fd());
                }
                return true;
            }
            Ok(n) => {
                output.extend_from_slice(buf.get(..n).unwrap_or(&[]));
                if output.len() > MAX_EXEC_OUTPUT {
                    let cut = output.len().saturating_sub(MAX_EXEC_OUTPUT);
                    output.drain(..cut);
                }
            }
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

fn exec_failure(argv0: &str, status: ExitStatus, output: &[u8]) -> String {
    let how = match status {
        ExitStatus::Code(c) => format!("exit {c}"),
        ExitStatus::Signal(s) => format!("killed by signal {s}"),
    };
    let text = String::from_utf8_lossy(output);
    let last = text.lines().rev().map(str::trim).find(|l| !l.is_empty());
    match last {
        Some(line) => format!("{argv0}: {how}: {}", excerpt(line.as_bytes())),
        None => format!("{argv0}: {how}"),
    }
}

/// One service's health checking, ready for the loop: the schedule (`crate::health`) plus the
/// round in flight. The reactor keeps one per service with checks and calls:
/// `on_start` after each spawn (after `prepare`), `on_stop` when the process is gone or stopping,
/// `on_timer` for every monitor whose `next_deadline` is within `health::MAX_SLACK` of now (so
/// probes due about the same time share one wake-up: 100 checks/s cost ~350 wake-ups/s instead
/// of 2,000), `on_event` when the probe's fd (token) is ready, and `on_exit` for a reaped pid
/// that `owns_pid`.
#[derive(Debug)]
pub struct Monitor {
    check: HealthCheck,
    kinds: Rc<[ProbeKind]>,
    probe: Option<Probe>,
}

impl Monitor {
    /// None when the table configures no check.
    pub fn new(h: &Health, now: Instant) -> Option<Monitor> {
        let kinds = ProbeKind::from_health(h);
        if kinds.is_empty() {
            return None;
        }
        Some(Monitor { check: HealthCheck::new(h, now), kinds: kinds.into(), probe: None })
    }

    pub fn on_start(&mut self, now: Instant, reg: &mut dyn Registry) {
        self.cancel(reg);
        self.check.on_start(now);
    }

    /// Stops probing; returns an exec probe's pid whose exit is to be ignored.
    pub fn on_stop(&mut self, reg: &mut dyn Registry) -> Option<i32> {
        self.check.on_stop();
        self.cancel(reg)
    }

    fn cancel(&mut self, reg: &mut dyn Registry) -> Option<i32> {
        self.probe.take().and_then(|p| p.cancel(reg))
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.check.next_deadline()
    }

    /// The pid of the exec check in flight.
    pub fn owns_pid(&self, pid: i32) -> bool {
        self.probe.as_ref().and_then(Probe::pid) == Some(pid)
    }

    pub fn status(&self) -> HealthStatus<'_> {
        self.check.status()
    }

    /// Deadlines: times out the probe in flight, or starts the next one.
    pub fn on_timer(
        &mut self,
        now: Instant,
        reg: &mut dyn Registry,
        spawn: &mut Spawner,
    ) -> Option<HealthEvent> {
        if self.check.timed_out(now) {
            let msg = match self.probe.take() {
                Some(p) => {
                    let msg = p.timeout_error(self.check.timeout());
                    p.cancel(reg);
                    msg
                }
                None => format!("timed out after {}", fmt_duration(self.check.timeout())),
            };
            return self.check.on_timeout(now, msg);
        }
        if !self.check.due(now) {
            return None;
        }
        self.check.probe_started(now);
        match Probe::start(Rc::clone(&self.kinds), reg, spawn) {
            Started::Running(p) => {
                self.probe = Some(p);
                None
            }
            Started::Done(r) => self.finish(now, r),
        }
    }

    /// The probe's fd is ready.
    pub fn on_event(&mut self, now: Instant, reg: &mut dyn Registry) -> Option<HealthEvent> {
        let step = self.probe.as_mut()?.on_event(reg);
        self.settle(now, step)
    }

    /// The exec check's pid was reaped.
    pub fn on_exit(
        &mut self,
        now: Instant,
        status: ExitStatus,
        reg: &mut dyn Registry,
    ) -> Option<HealthEvent> {
        let step = self.probe.as_mut()?.on_exit(status, reg);
        self.settle(now, step)
    }

    fn settle(&mut self, now: Instant, step: Poll<Result<(), String>>) -> Option<HealthEvent> {
        match step {
            Poll::Pending => None,
            Poll::Ready(r) => {
                self.probe = None;
                self.finish(now, r)
            }
        }
    }

    fn finish(&mut self, now: Instant, r: Result<(), String>) -> Option<HealthEvent> {
        match r {
            Ok(()) => self.check.on_result(now, true, String::new()),
            Err(e) => self.check.on_result(now, false, e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn judge_head_cases() {
        let p = "/healthz";
        assert_eq!(judge_head(b"HTTP/1.1 200 OK\r\n\r\n", p), Some(Ok(())));
        assert_eq!(judge_head(b"HTTP/1.0 204\r\n\r\n", p), Some(Ok(())));
        assert_eq!(judge_head(b"HTTP/1.1 200 OK\n\n", p), Some(Ok(())));
        assert_eq!(judge_head(b"HTTP/1.1 200 OK\r\nA: b\r\n", p), None);
        assert_eq!(judge_head(b"HTTP/1.1 200 OK\r\n", p), None);
        assert_eq!(judge_head(b"HTTP/1.1 20", p), None);
        assert_eq!(judge_head(b"HTT", p), None);
        assert_eq!(
            judge_head(b"HTTP/1.1 503 Service Unavailable\r\n", p),
            Some(Err("GET /healthz: 503 Service Unavailable".into()))
        );
        assert_eq!(judge_head(b"HTTP/1.1 404\r\n", p), Some(Err("GET /healthz: 404".into())));
        for garbage in [
            &b"SSH-2.0-OpenSSH\r\n"[..],
            b"xyz",
            b"HTTP/1.1 2x0 OK\r\n",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/2 200\r\n",
            b"\r\n",
        ] {
            assert_eq!(
                judge_head(garbage, p),
                Some(Err("GET /healthz: bad response".into())),
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
        }
    }

    #[test]
    fn reason_phrase_is_sanitised_and_bounded() {
        let mut resp = b"HTTP/1.1 500 Bad\x1b[31m".to_vec();
        resp.extend(std::iter::repeat_n(b'x', 5000));
        resp.extend(b"\r\n");
        let Some(Err(e)) = judge_head(&resp, "/") else { panic!("expected an error") };
        assert!(e.starts_with("GET /: 500 Bad?[31m"), "{e}");
        assert!(e.len() < 300, "{}", e.len());
    }

    #[test]
    fn request_has_host_agent_and_close() {
        let h = HttpEndpoint {
            endpoint: Endpoint { addrs: vec!["[::1]:8080".parse().unwrap()], host: "::1".into(), port: 8080 },
            path: "/healthz".into(),
        };
        let r = String::from_utf8(http_request(&h)).unwrap();
        assert!(r.starts_with("GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n"), "{r}");
        assert!(r.contains("\r\nConnection: close\r\n"));
        assert!(r.contains("\r\nUser-Agent: ankh/"));
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn exec_failure_message_uses_last_output_line() {
        assert_eq!(
            exec_failure("/bin/check", ExitStatus::Code(1), b"starting\ndb down\n\n"),
            "/bin/check: exit 1: db down"
        );
        assert_eq!(exec_failure("/bin/check", ExitStatus::Signal(9), b""), "/bin/check: killed by signal 9");
    }

    #[test]
    fn errno_text_has_no_os_error_suffix() {
        assert_eq!(errno_text(Errno::CONNREFUSED), "Connection refused");
    }

    #[test]
    fn order_of_checks_in_a_round() {
        let h = Health {
            http: Some(HttpEndpoint {
                endpoint: Endpoint { addrs: vec![], host: "h".into(), port: 1 },
                path: "/".into(),
            }),
            tcp: Some(Endpoint { addrs: vec![], host: "h".into(), port: 1 }),
            command: Some(vec!["c".into()]),
            file: Some("/f".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period: Duration::ZERO,
            max_failed: 3,
            on_unhealthy: crate::spec::OnUnhealthy::Restart,
        };
        let k = ProbeKind::from_health(&h);
        assert!(matches!(
            k.as_slice(),
            [ProbeKind::File(_), ProbeKind::Exec(_), ProbeKind::Tcp(_), ProbeKind::Http(_)]
        ));
    }
}
