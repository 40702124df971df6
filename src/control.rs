//! control: the control socket's server side. It owns the listening socket and one small state
//! machine per client; the reactor owns the loop and drives it through an fd-level API.
//!
//! No client can stall the loop or grow memory without bound: every fd is non-blocking, a request
//! line is at most `Limits::max_request` bytes (longer: `ERR 413` and close), no further request is
//! read while a reply is queued beyond `reply_high`, a `logs -f` or `events` follower whose queue is
//! full skips lines (and is told how many, `SKIP n`), idle clients are closed after `idle`, and at
//! most `max_clients` are served at once. The only OS calls made here are on the server's own fds.
//!
//! How the reactor drives it:
//! - watch `listener_fd()` for input; on input call `accept(now)`;
//! - after every call, apply `take_fd_changes()` (add/modify/remove client fds in epoll; a
//!   removed fd is handed over so EPOLL_CTL_DEL happens before it is closed by dropping it);
//! - on any event on a client fd (in, out, hup, err) call `on_io(id, host, now)`;
//! - after the supervisor acted, call `observe(host, now)` (feeds `events` and `wait`);
//! - for each captured log line, `push_log(name, line)` (cheap when nobody follows);
//! - include `next_deadline()` in the epoll timeout and call `tick(host, now)` when it passes.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

use crate::proto::{self, ErrCode, Failure, Health, Request, ServiceView};
use crate::sorted;
use crate::supervisor::State;

/// Identifies a client for the life of the server; never reused (so it can serve as an epoll token
/// generation on its own).
pub type ClientId = u64;

/// What a client fd should be watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
}

/// A change the reactor applies to its epoll set.
#[derive(Debug)]
pub enum FdChange {
    /// Register `client_fd(client)` with this interest (skip if it is already gone).
    Add { client: ClientId, interest: Interest },
    /// Change the interest of a registered client fd.
    Modify { client: ClientId, interest: Interest },
    /// EPOLL_CTL_DEL this fd (it may never have been added), then drop it: that closes it.
    Remove { client: ClientId, fd: OwnedFd },
    /// Stop (`false`) or resume (`true`) watching the listener (back-off after EMFILE).
    Listener { watch: bool },
}

/// Bounds on what one client may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line (newline excluded).
    pub max_request: usize,
    /// Clients served at once; more are answered `ERR 503` and closed.
    pub max_clients: usize,
    /// A client with nothing in progress, or whose reply makes no progress, is closed after this.
    pub idle: Duration,
    /// Requests are not read while more than this is queued for the client.
    pub reply_high: usize,
    /// A follower's queue (`logs -f`, `events`); beyond it, lines are skipped.
    pub stream_queue: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request: proto::MAX_REQUEST,
            max_clients: 2048,
            idle: Duration::from_secs(60),
            reply_high: 256 * 1024,
            stream_queue: 256 * 1024,
        }
    }
}

/// What the server needs from the rest of init. The reactor implements it over the supervisor,
/// the config and the log rings; tests implement it with a fake.
pub trait Host {
    /// Every service and target, sorted by name.
    fn services(&self) -> Vec<ServiceView>;

    /// One service by name.
    fn service(&self, name: &str) -> Option<ServiceView> {
        self.services().into_iter().find(|s| s.name == name)
    }

    /// Operator commands: start, stop, restart, kill, reload, add, remove, start-all, stop-all,
    /// shutdown, poweroff, reboot. `Ok` lines are sent as `MSG`; a `Failure` as `DIAG` + `ERR`.
    /// Must not block: reply once the action is requested, not when it is done (`wait` is there
    /// for that).
    fn command(&mut self, req: &Request) -> Result<Vec<String>, Failure>;

    /// The last `lines` buffered log lines (all when None) of `name` (every service when None),
    /// oldest first, handed to `line(service, bytes)`.
    fn logs(&self, name: Option<&str>, lines: Option<usize>, line: &mut dyn FnMut(&str, &[u8]));

    /// True once a shutdown has begun (`health --ready` then fails).
    fn shutting_down(&self) -> bool {
        false
    }
}

/// What a client is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Connected; the first line must be `HELLO <version>`.
    Hello,
    /// Reading requests, one at a time.
    Ready,
    /// Holding a `wait` until the service is in `state` or `deadline` passes.
    Waiting { name: String, state: State, deadline: Instant, timeout_ms: u64 },
    /// `logs -f`: receives `LOG` lines for `name` (every service when None).
    Logs { name: Option<String> },
    /// `events`: receives `EVENT` lines.
    Events,
    /// Sending what is queued, then closing.
    Closing,
}

struct Client {
    fd: OwnedFd,
    input: Vec<u8>,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    sent: usize,
    phase: Phase,
    /// The peer shut down its writing side.
    eof: bool,
    /// A write failed: close at once.
    dead: bool,
    /// Last read or write progress (for the idle timeout).
    active: Instant,
    /// Stream lines dropped since the last `SKIP`.
    skipped: u64,
    interest: Interest,
}

impl Client {
    fn pending(&self) -> usize {
        self.out.len().saturating_sub(self.sent)
    }

    fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn is_stream(&self) -> bool {
        matches!(self.phase, Phase::Logs { .. } | Phase::Events)
    }

    /// Writes what it can without blocking.
    fn flush(&mut self, now: Instant) {
        while self.pending() > 0 && !self.dead {
            let buf = self.out.get(self.sent..).unwrap_or(&[]);
            match rustix::net::send(&self.fd, buf, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
                Ok(n) => {
                    self.sent += n;
                    self.active = now;
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => break,
                Err(_) => self.dead = true,
            }
        }
        if self.sent >= self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > 64 * 1024 && self.sent * 2 > self.out.len() {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Appends one line of a stream, or counts it as skipped when the follower is behind.
    fn stream(&mut self, line: &[u8], limits: &Limits, now: Instant) {
        if self.pending() + line.len() > limits.stream_queue {
            self.skipped += 1;
            return;
        }
        if self.skipped > 0 {
            let skip = format!("SKIP {}\n", self.skipped);
            self.queue(skip.as_bytes());
            self.skipped = 0;
        }
        self.queue(line);
        self.flush(now);
    }

    fn wanted(&self, limits: &Limits) -> Interest {
        let read = !self.eof
            && match self.phase {
                Phase::Hello | Phase::Ready => {
                    self.input.len() <= limits.max_request && self.pending() < limits.reply_high
                }
                Phase::Waiting { .. } => self.input.len() <= limits.max_request,
                Phase::Logs { .. } | Phase::Events => true,
                Phase::Closing => false,
            };
        Interest { read, write: self.pending() > 0 }
    }

    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        match &self.phase {
            Phase::Waiting { deadline, .. } => Some(*deadline),
            Phase::Logs { .. } | Phase::Events => None,
            Phase::Hello | Phase::Ready | Phase::Closing => self.active.checked_add(limits.idle),
        }
    }
}

/// What `events` compares to notice a change.
type Seen = (State, Option<i32>, Option<String>, Health);

/// The clients, in id order. Ids only grow, so a new client is pushed at the end; `max_clients`
/// bounds the rest. A sorted Vec is far less code than a BTreeMap (the binary's size budget).
struct Clients(Vec<(ClientId, Client)>);

impl Clients {
    fn find(&self, id: ClientId) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(&id))
    }
    fn get(&self, id: &ClientId) -> Option<&Client> {
        self.find(*id).ok().and_then(|i| self.0.get(i)).map(|(_, c)| c)
    }
    fn get_mut(&mut self, id: &ClientId) -> Option<&mut Client> {
        self.find(*id).ok().and_then(|i| self.0.get_mut(i)).map(|(_, c)| c)
    }
    fn insert(&mut self, id: ClientId, c: Client) {
        match self.find(id) {
            Ok(i) => {
                if let Some(slot) = self.0.get_mut(i) {
                    slot.1 = c;
                }
            }
            Err(i) => self.0.insert(i, (id, c)),
        }
    }
    fn remove(&mut self, id: &ClientId) -> Option<Client> {
        self.find(*id).ok().map(|i| self.0.remove(i).1)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn values(&self) -> impl Iterator<Item = &Client> {
        self.0.iter().map(|(_, c)| c)
    }
    fn iter(&self) -> impl Iterator<Item = (&ClientId, &Client)> {
        self.0.iter().map(|(id, c)| (id, c))
    }
}

/// The control socket server.
pub struct Server {
    listener: OwnedFd,
    path: PathBuf,
    /// (dev, ino) of the socket file we bound, so `Drop` never unlinks a newer init's socket.
    file_id: Option<(u64, u64)>,
    limits: Limits,
    /// Peer uids let in: root and init's own.
    allowed: Vec<u32>,
    clients: Clients,
    next_id: ClientId,
    changes: Vec<FdChange>,
    accept_paused_until: Option<Instant>,
    /// Clients in `Logs`/`Events` and `Waiting`, sorted (`sorted`), so pushes cost nothing when
    /// there are none.
    followers: Vec<ClientId>,
    subscribers: Vec<ClientId>,
    waiters: Vec<ClientId>,
    /// Last state seen of every service, while anyone subscribes to `events`.
    seen: Option<HashMap<String, Seen>>,
}

impl Server {
    /// Binds the socket at `path` with the default limits. See `bind_with`.
    pub fn bind(path: &Path) -> Result<Server, String> {
        Server::bind_with(path, Limits::default())
    }

    /// Creates the parent directory when missing (a `FROM scratch` image has no /run), replaces a
    /// stale socket file left by a dead init (but not a live one, nor a file that is not a socket),
    /// and binds a non-blocking socket with mode 0600. The error is one sentence for the warning.
    pub fn bind_with(path: &Path, limits: Limits) -> Result<Server, String> {
        let shown = path.display();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let addr = SocketAddrUnix::new(path).map_err(|e| format!("{shown}: bad socket path: {e}"))?;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(format!("{shown} exists and is not a socket"));
            }
            if is_live(&addr) {
                return Err(format!("another init is already listening on {shown}"));
            }
            std::fs::remove_file(path).map_err(|e| format!("cannot remove stale {shown}: {e}"))?;
        }
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| format!("socket: {e}"))?;
        // The umask makes the file 0600 from the start: no window where others could connect.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let bound = rustix::net::bind(&sock, &addr);
        rustix::process::umask(old);
        bound.map_err(|e| format!("cannot bind {shown}: {e}"))?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        rustix::net::listen(&sock, 4096).map_err(|e| format!("listen on {shown}: {e}"))?;
        let file_id = std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let me = rustix::process::geteuid().as_raw();
        let mut allowed = vec![0];
        if me != 0 {
            allowed.push(me);
        }
        Ok(Server {
            listener: sock,
            path: path.to_path_buf(),
            file_id,
            limits,
            allowed,
            clients: Clients(Vec::new()),
            next_id: 1,
            changes: Vec::new(),
            accept_paused_until: None,
            followers: Vec::new(),
            subscribers: Vec::new(),
            waiters: Vec::new(),
            seen: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    pub fn client_fd(&self, id: ClientId) -> Option<BorrowedFd<'_>> {
        self.clients.get(&id).map(|c| c.fd.as_fd())
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Bytes held for clients (unread input plus queued output): bounded by the limits.
    pub fn buffered_bytes(&self) -> usize {
        self.clients.values().map(|c| c.input.len() + c.pending()).sum()
    }

    /// The epoll changes to apply, in order.
    pub fn take_fd_changes(&mut self) -> Vec<FdChange> {
        std::mem::take(&mut self.changes)
    }

    /// True when some client follows logs: the reactor may skip `push_log` otherwise.
    pub fn wants_logs(&self) -> bool {
        !self.followers.is_empty()
    }

    /// The earliest idle, stall or `wait` deadline, and the end of an accept back-off.
    pub fn next_deadline(&self) -> Option<Instant> {
        let clients = self.clients.values().filter_map(|c| c.deadline(&self.limits));
        clients.chain(self.accept_paused_until).min()
    }

    /// Accepts every pending connection. Peers that are neither root nor init's user get
    /// `ERR 403` and are closed; beyond `max_clients`, `ERR 503`.
    pub fn accept(&mut self, now: Instant) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let fd = match rustix::net::accept_with(
                &self.listener,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            ) {
                Ok(fd) => fd,
                Err(Errno::INTR) | Err(Errno::CONNABORTED) => continue,
                Err(Errno::AGAIN) => return,
                Err(e @ (Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)) => {
                    // The listener stays readable: stop watching it for a moment instead of spinning.
                    log::warn!("control socket: accept: {e}; pausing new connections for 100 ms");
                    self.accept_paused_until = now.checked_add(Duration::from_millis(100));
                    self.changes.push(FdChange::Listener { watch: false });
                    return;
                }
                Err(e) => {
                    log::warn!("control socket: accept: {e}");
                    return;
                }
            };
            let uid = crate::sys::peer_uid(&fd);
            match uid {
                Ok(uid) if self.allowed.contains(&uid) => {}
                Ok(uid) => {
                    log::warn!("control socket: refused a client with uid {uid}");
                    refuse(
                        &fd,
                        ErrCode::Forbidden,
                        "permission denied: only root or init's own user may connect",
                    );
                    continue;
                }
                Err(e) => {
                    refuse(&fd, ErrCode::Forbidden, &format!("cannot check credentials: {e}"));
                    continue;
                }
            }
            if self.clients.len() >= self.limits.max_clients {
                refuse(&fd, ErrCode::Unavailable, "too many clients");
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let interest = Interest { read: true, write: false };
            self.clients.insert(
                id,
                Client {
                    fd,
                    input: Vec::new(),
                    out: Vec::new(),
                    sent: 0,
                    phase: Phase::Hello,
                    eof: false,
                    dead: false,
                    active: now,
                    skipped: 0,
                    interest,
                },
            );
            self.changes.push(FdChange::Add { client: id, interest });
        }
    }

    /// Something happened on a client's fd: write what is queued, read and answer requests.
    pub fn on_io(&mut self, id: ClientId, host: &mut dyn Host, now: Instant) {
        let limits = self.limits;
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        c.flush(now);
        let wanted = c.wanted(&limits);
        if !wanted.read && !wanted.write && !c.dead && hung_up(&c.fd) {
            // Nothing asked for, so this is EPOLLHUP/EPOLLERR: the peer is gone.
            c.dead = true;
        }
        self.serve(id, host, now);
    }

    /// Reads and answers as much as the client's state allows, then updates its interest.
    fn serve(&mut self, id: ClientId, host: &mut dyn Host, now: Instant) {
        let limits = self.limits;
        let mut chunk = [0u8; 8192];
        loop {
            self.pump(id, host, now);
            let Some(c) = self.clients.get_mut(&id) else {
                return;
            };
            if c.dead || c.eof || !c.wanted(&limits).read {
                break;
            }
            match rustix::io::read(&c.fd, &mut chunk) {
                Ok(0) => c.eof = true,
                Ok(n) => {
                    c.active = now;
                    // Followers send nothing meaningful: read only to notice when they leave.
                    if !c.is_stream() {
                        c.input.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => break,
                Err(_) => c.dead = true,
            }
        }
        if let Some(c) = self.clients.get_mut(&id) {
            c.flush(now);
        }
        self.update(id);
    }

    /// Answers the complete request lines in the client's input, while it is ready for them.
    fn pump(&mut self, id: ClientId, host: &mut dyn Host, now: Instant) {
        let limits = self.limits;
        loop {
            let Some(c) = self.clients.get_mut(&id) else {
                return;
            };
            if c.dead || !matches!(c.phase, Phase::Hello | Phase::Ready) || c.pending() >= limits.reply_high {
                return;
            }
            let line: Vec<u8> = match c.input.iter().position(|&b| b == b'\n') {
                Some(i) if i <= limits.max_request => {
                    let mut line: Vec<u8> = c.input.drain(..=i).collect();
                    line.pop();
                    line
                }
                None if c.input.len() <= limits.max_request && c.eof && !c.input.is_empty() => {
                    // The last line of a client that shut down its side without a newline.
                    std::mem::take(&mut c.input)
                }
                None if c.input.len() <= limits.max_request => return,
                _ => {
                    let msg = format!("request longer than {} bytes", limits.max_request);
                    c.queue(proto::encode_err(ErrCode::TooLarge, &msg).as_bytes());
                    c.input = Vec::new();
                    c.phase = Phase::Closing;
                    return;
                }
            };
            let req = proto::parse_request(&line);
            if c.phase == Phase::Hello {
                match req {
                    Ok(Request::Hello { version }) if version == proto::VERSION => {
                        c.queue(hello().as_bytes());
                        c.phase = Phase::Ready;
                    }
                    Ok(Request::Hello { version }) => {
                        let msg = format!(
                            "protocol version {version} is not spoken here (this init speaks {})",
                            proto::VERSION
                        );
                        c.queue(proto::encode_err(ErrCode::Version, &msg).as_bytes());
                        c.phase = Phase::Closing;
                    }
                    _ => {
                        let msg = format!("expected HELLO {} first", proto::VERSION);
                        c.queue(proto::encode_err(ErrCode::BadRequest, &msg).as_bytes());
                        c.phase = Phase::Closing;
                    }
                }
                continue;
            }
            match req {
                Ok(req) => self.answer(id, req, host, now),
                Err(f) => write_failure(c, &f),
            }
        }
    }

    /// Answers one request from a ready client.
    fn answer(&mut self, id: ClientId, req: Request, host: &mut dyn Host, now: Instant) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        match req {
            Request::Hello { .. } => c.queue(hello().as_bytes()),
            Request::List | Request::Status { name: None } => {
                let mut out = String::new();
                for s in host.services() {
                    out.push_str(&proto::encode_service(proto::tag::SVC, &s));
                }
                out.push_str("OK\n");
                c.queue(out.as_bytes());
            }
            Request::Status { name: Some(name) } => match host.service(&name) {
                Some(s) => {
                    let out = format!("{}{}OK\n", proto::encode_service("SVC", &s), proto::encode_deps(&s));
                    c.queue(out.as_bytes());
                }
                None => write_failure(c, &not_found(&name)),
            },
            Request::Why { name } => {
                let all = host.services();
                match all.iter().find(|s| s.name == name) {
                    Some(s) => {
                        let mut out = proto::encode_service("SVC", s);
                        out.push_str(&proto::encode_deps(s));
                        for (_, dep) in &s.deps {
                            if let Some(d) = all.iter().find(|x| &x.name == dep) {
                                out.push_str(&proto::encode_service("SVC", d));
                            }
                        }
                        out.push_str("OK\n");
                        c.queue(out.as_bytes());
                    }
                    None => write_failure(c, &not_found(&name)),
                }
            }
            Request::Tree => {
                let mut out = String::new();
                for s in host.services() {
                    out.push_str(&proto::encode_service("SVC", &s));
                    out.push_str(&proto::encode_deps(&s));
                }
                out.push_str("OK\n");
                c.queue(out.as_bytes());
            }
            Request::Logs { name, lines, follow } => {
                if let Some(n) = &name
                    && host.service(n).is_none()
                {
                    write_failure(c, &not_found(n));
                    return;
                }
                if follow {
                    c.queue(b"STREAM logs\n");
                }
                let mut out = Vec::new();
                host.logs(name.as_deref(), lines, &mut |svc, line| out.extend(proto::encode_log(svc, line)));
                c.queue(&out);
                if follow {
                    c.phase = Phase::Logs { name };
                } else {
                    c.queue(b"OK\n");
                }
            }
            Request::Events => {
                c.queue(b"STREAM events\n");
                c.phase = Phase::Events;
                if self.seen.is_none() {
                    self.seen = Some(snapshot(&host.services()));
                }
            }
            Request::Wait { name, state, timeout_ms } => match host.service(&name) {
                None => write_failure(c, &not_found(&name)),
                Some(s) if s.state == state => {
                    c.queue(format!("{}OK\n", proto::encode_service("SVC", &s)).as_bytes());
                }
                Some(s) if timeout_ms == 0 => write_failure(c, &wait_timeout(&s, state, 0)),
                Some(_) => {
                    let deadline = now.checked_add(Duration::from_millis(timeout_ms)).unwrap_or(now);
                    c.phase = Phase::Waiting { name, state, deadline, timeout_ms };
                }
            },
            Request::Health { name, ready } => {
                match health(&host.services(), name.as_deref(), ready, host.shutting_down()) {
                    Ok(msg) => c.queue(format!("{}OK\n", proto::encode_text("MSG", &msg)).as_bytes()),
                    Err(f) => write_failure(c, &f),
                }
            }
            other => match host.command(&other) {
                Ok(lines) => {
                    let mut out = String::new();
                    for l in lines {
                        out.push_str(&proto::encode_text("MSG", &l));
                    }
                    out.push_str("OK\n");
                    c.queue(out.as_bytes());
                }
                Err(f) => write_failure(c, &f),
            },
        }
        self.index(id);
    }

    /// Keeps the follower/subscriber/waiter sets in step with the client's phase.
    fn index(&mut self, id: ClientId) {
        let phase = self.clients.get(&id).map(|c| c.phase.clone());
        sorted::remove(&mut self.followers, &id);
        sorted::remove(&mut self.subscribers, &id);
        sorted::remove(&mut self.waiters, &id);
        match phase {
            Some(Phase::Logs { .. }) => {
                sorted::insert(&mut self.followers, id);
            }
            Some(Phase::Events) => {
                sorted::insert(&mut self.subscribers, id);
            }
            Some(Phase::Waiting { .. }) => {
                sorted::insert(&mut self.waiters, id);
            }
            _ => {}
        }
        if self.subscribers.is_empty() {
            self.seen = None;
        }
    }

    /// Closes the client when it is done, or records a change of interest.
    fn update(&mut self, id: ClientId) {
        let limits = self.limits;
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let done = c.dead
            || (c.phase == Phase::Closing && c.pending() == 0)
            || (c.eof && c.is_stream())
            || (c.eof
                && matches!(c.phase, Phase::Hello | Phase::Ready)
                && c.input.is_empty()
                && c.pending() == 0);
        if done {
            self.close(id);
            return;
        }
        let wanted = c.wanted(&limits);
        if wanted != c.interest {
            c.interest = wanted;
            self.changes.push(FdChange::Modify { client: id, interest: wanted });
        }
        self.index(id);
    }

    fn close(&mut self, id: ClientId) {
        if let Some(c) = self.clients.remove(&id) {
            self.changes.push(FdChange::Remove { client: id, fd: c.fd });
        }
        self.index(id);
    }

    /// Expires deadlines: `wait` timeouts are answered `ERR 408`; idle and stalled clients closed.
    /// Also ends an accept back-off.
    pub fn tick(&mut self, host: &mut dyn Host, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            self.changes.push(FdChange::Listener { watch: true });
        }
        let limits = self.limits;
        let expired: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.deadline(&limits).is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            match &c.phase {
                Phase::Waiting { name, state, timeout_ms, .. } => {
                    let (name, state, timeout_ms) = (name.clone(), *state, *timeout_ms);
                    let f = match host.service(&name) {
                        Some(s) => wait_timeout(&s, state, timeout_ms),
                        None => not_found(&name),
                    };
                    write_failure(c, &f);
                    c.phase = Phase::Ready;
                    c.active = now;
                    c.flush(now);
                    self.index(id);
                    self.serve(id, host, now);
                }
                Phase::Hello | Phase::Ready if c.pending() == 0 => {
                    let msg = format!(
                        "idle for {}",
                        show_ms(u64::try_from(limits.idle.as_millis()).unwrap_or(u64::MAX))
                    );
                    c.queue(proto::encode_err(ErrCode::Timeout, &msg).as_bytes());
                    c.flush(now);
                    self.close(id);
                }
                _ => self.close(id),
            }
        }
    }

    /// Looks at the services again: sends `EVENT` lines for every change to `events` subscribers
    /// and answers the `wait`s that are satisfied. Costs nothing when there are none.
    pub fn observe(&mut self, host: &mut dyn Host, now: Instant) {
        if self.subscribers.is_empty() && self.waiters.is_empty() {
            return;
        }
        let services = host.services();
        if !self.subscribers.is_empty() {
            let seen = self.seen.get_or_insert_with(HashMap::new);
            let mut lines = Vec::new();
            for s in &services {
                let now_state = (s.state, s.pid, s.reason.clone(), s.health);
                if seen.get(&s.name) != Some(&now_state) {
                    lines.push(proto::encode_service(proto::tag::EVENT, s));
                    seen.insert(s.name.clone(), now_state);
                }
            }
            let ids = self.subscribers.clone();
            for id in ids {
                if let Some(c) = self.clients.get_mut(&id) {
                    for l in &lines {
                        c.stream(l.as_bytes(), &self.limits, now);
                    }
                }
                self.update(id);
            }
        }
        let ids = self.waiters.clone();
        for id in ids {
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            let Phase::Waiting { name, state, .. } = &c.phase else {
                continue;
            };
            let reply = match services.iter().find(|s| &s.name == name) {
                Some(s) if s.state == *state => format!("{}OK\n", proto::encode_service("SVC", s)),
                Some(_) => continue,
                None => proto::encode_err(ErrCode::NotFound, &format!("{name} was removed")),
            };
            c.queue(reply.as_bytes());
            c.phase = Phase::Ready;
            c.active = now;
            self.index(id);
            self.serve(id, host, now);
        }
    }

    /// One line of a service's output, for `logs -f` followers of it (or of everything).
    pub fn push_log(&mut self, name: &str, line: &[u8], now: Instant) {
        if self.followers.is_empty() {
            return;
        }
        let encoded = proto::encode_log(name, line);
        let ids = self.followers.clone();
        for id in ids {
            if let Some(c) = self.clients.get_mut(&id)
                && let Phase::Logs { name: filter } = &c.phase
                && filter.as_deref().is_none_or(|f| f == name)
            {
                c.stream(&encoded, &self.limits, now);
            }
            self.update(id);
        }
    }
}

impl Drop for Server {
    /// Removes the socket file, if it is still the one we bound.
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.file_id {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The view of one service for the control plane, from its spec and the supervisor's status.
/// Health is `Unknown` here: the reactor sets it from its probes.
pub fn service_view(spec: &crate::spec::ServiceSpec, st: &crate::supervisor::ServiceStatus) -> ServiceView {
    use proto::DepKind;
    let d = &spec.deps;
    let deps = [
        (DepKind::Requires, &d.requires),
        (DepKind::StartAfter, &d.start_after),
        (DepKind::After, &d.after),
        (DepKind::Wants, &d.wants),
        (DepKind::Conflicts, &d.conflicts),
    ]
    .into_iter()
    .flat_map(|(kind, names)| names.iter().map(move |n| (kind, n.clone())))
    .collect();
    ServiceView {
        name: spec.name.clone(),
        state: st.state,
        pid: st.pid,
        reason: st.reason.clone(),
        restarts: st.restarts,
        autostart: spec.autostart,
        target: spec.kind == crate::spec::Kind::Target,
        health: Health::Unknown,
        since_ms: None,
        deps,
    }
}

/// Where the socket is when neither `--socket` nor `$INIT_SOCKET`/`$ZINIT_SOCKET` says: root uses
/// `/run/init.sock`; another user `$XDG_RUNTIME_DIR/init.sock`, or `/tmp/init-UID.sock` without it.
pub fn default_socket_path(env: &dyn Fn(&str) -> Option<String>, euid: u32) -> PathBuf {
    if euid == 0 {
        return PathBuf::from("/run/init.sock");
    }
    match env("XDG_RUNTIME_DIR").filter(|d| d.starts_with('/')) {
        Some(dir) => Path::new(&dir).join("init.sock"),
        None => PathBuf::from(format!("/tmp/init-{euid}.sock")),
    }
}

/// The socket path: `explicit` (`--socket`), else `$INIT_SOCKET`, `$ZINIT_SOCKET`, the default.
pub fn socket_path(explicit: Option<&Path>, env: &dyn Fn(&str) -> Option<String>, euid: u32) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None => env("INIT_SOCKET")
            .or_else(|| env("ZINIT_SOCKET"))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| default_socket_path(env, euid)),
    }
}

fn hello() -> String {
    format!("HELLO {} ankh {}\nOK\n", proto::VERSION, env!("CARGO_PKG_VERSION"))
}

fn not_found(name: &str) -> Failure {
    Failure::new(ErrCode::NotFound, format!("no service named {name:?}"))
}

fn wait_timeout(s: &ServiceView, want: State, timeout_ms: u64) -> Failure {
    let mut msg = format!(
        "timed out after {}: {} is {}, not {}",
        show_ms(timeout_ms),
        s.name,
        proto::state_name(s.state),
        proto::state_name(want)
    );
    if let Some(r) = &s.reason {
        msg.push_str(&format!(" ({r})"));
    }
    Failure::new(ErrCode::Timeout, msg)
}

fn show_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

fn write_failure(c: &mut Client, f: &Failure) {
    let mut out = String::new();
    for d in &f.details {
        out.push_str(&proto::encode_text("DIAG", d));
    }
    out.push_str(&proto::encode_err(f.code, &f.message));
    c.queue(out.as_bytes());
}

fn snapshot(services: &[ServiceView]) -> HashMap<String, Seen> {
    services.iter().map(|s| (s.name.clone(), (s.state, s.pid, s.reason.clone(), s.health))).collect()
}

/// Best effort: one error line to a client we will not serve, then it is closed (dropped).
fn refuse(fd: &OwnedFd, code: ErrCode, message: &str) {
    let line = proto::encode_err(code, message);
    let _ = rustix::net::send(fd, line.as_bytes(), SendFlags::NOSIGNAL | SendFlags::DONTWAIT);
}

/// True when a live server answers on `addr` (then the socket file is not stale).
fn is_live(addr: &SocketAddrUnix) -> bool {
    let Ok(sock) = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    ) else {
        return false;
    };
    // A full backlog (EAGAIN) still means somebody listens.
    matches!(rustix::net::connect(&sock, addr), Ok(()) | Err(Errno::AGAIN))
}

/// A zero-timeout poll: did the peer hang up (or the socket fail)?
fn hung_up(fd: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags};
    let mut fds = [PollFd::new(fd, PollFlags::empty())];
    let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
    match rustix::event::poll(&mut fds, Some(&zero)) {
        Ok(_) => fds.iter().any(|p| p.revents().intersects(PollFlags::HUP | PollFlags::ERR)),
        Err(_) => false,
    }
}

/// The `health` verdict (design §7). With a name: that service is Running (or an Exited oneshot)
/// and not unhealthy. Without: every autostart service is Running or Exited and none is unhealthy.
/// `ready` (readiness probe) also fails once a shutdown has begun.
pub fn health(
    services: &[ServiceView],
    name: Option<&str>,
    ready: bool,
    shutting_down: bool,
) -> Result<String, Failure> {
    let ok_state = |s: &ServiceView| matches!(s.state, State::Running | State::Exited);
    let mut bad = Vec::new();
    let count;
    match name {
        Some(n) => {
            let s = services.iter().find(|s| s.name == n).ok_or_else(|| not_found(n))?;
            count = 1;
            if !ok_state(s) || s.health == Health::Unhealthy {
                bad.push(s);
            }
        }
        None => {
            count = services.iter().filter(|s| s.autostart).count();
            bad.extend(
                services.iter().filter(|s| (s.autostart && !ok_state(s)) || s.health == Health::Unhealthy),
            );
        }
    }
    let mut details: Vec<String> = bad.iter().map(|s| describe(s)).collect();
    if ready && shutting_down {
        details.push("init is shutting down".to_string());
    }
    if details.is_empty() {
        return Ok(match name {
            Some(n) => format!("{n} is healthy"),
            None => format!("healthy: {count} service(s) up"),
        });
    }
    let message = format!("unhealthy: {}", details.join("; "));
    Err(Failure { code: ErrCode::Unavailable, message, details })
}

fn describe(s: &ServiceView) -> String {
    let mut d = format!("{} is {}", s.name, proto::state_name(s.state));
    if s.health == Health::Unhealthy {
        d.push_str(" and unhealthy");
    }
    if let Some(r) = &s.reason {
        d.push_str(&format!(" ({r})"));
    }
    d
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn view(name: &str, state: State) -> ServiceView {
        ServiceView::new(name, state)
    }

    #[test]
    fn health_of_everything_needs_every_autostart_service_up() {
        let mut manual = view("manual", State::Inactive);
        manual.autostart = false;
        let all = vec![view("a", State::Running), view("b", State::Exited), manual];
        assert!(health(&all, None, false, false).is_ok());
        let mut all2 = all.clone();
        all2.push(view("c", State::Starting));
        let e = health(&all2, None, false, false).unwrap_err();
        assert_eq!(e.code, ErrCode::Unavailable);
        assert!(e.message.contains("c is Starting"), "{}", e.message);
    }

    #[test]
    fn an_unhealthy_service_fails_health_even_when_running() {
        let mut a = view("a", State::Running);
        a.health = Health::Unhealthy;
        let e = health(&[a.clone()], None, false, false).unwrap_err();
        assert!(e.message.contains("a is Running and unhealthy"), "{}", e.message);
        assert!(health(&[a], Some("a"), false, false).is_err());
    }

    #[test]
    fn health_by_name() {
        let all = vec![view("a", State::Running), view("b", State::Failed)];
        assert!(health(&all, Some("a"), false, false).is_ok());
        assert_eq!(health(&all, Some("b"), false, false).unwrap_err().code, ErrCode::Unavailable);
        assert_eq!(health(&all, Some("zz"), false, false).unwrap_err().code, ErrCode::NotFound);
    }

    #[test]
    fn a_view_carries_the_dependencies_of_the_spec() {
        let mut spec = crate::spec::ServiceSpec::new("web", vec!["/bin/web".into()]);
        spec.deps.requires = vec!["db".into()];
        spec.deps.after = vec!["log".into()];
        let st = crate::supervisor::ServiceStatus {
            state: State::Blocked,
            pid: None,
            reason: Some("waiting for db".into()),
            restarts: 2,
        };
        let v = service_view(&spec, &st);
        assert_eq!(
            v.deps,
            vec![(proto::DepKind::Requires, "db".into()), (proto::DepKind::After, "log".into())]
        );
        assert_eq!((v.state, v.restarts, v.reason.as_deref()), (State::Blocked, 2, Some("waiting for db")));
    }

    #[test]
    fn socket_path_precedence() {
        let env = |k: &str| match k {
            "ZINIT_SOCKET" => Some("/z.sock".to_string()),
            "XDG_RUNTIME_DIR" => Some("/run/user/1000".to_string()),
            _ => None,
        };
        let none = |_: &str| None;
        assert_eq!(socket_path(Some(Path::new("/x")), &env, 0), PathBuf::from("/x"));
        assert_eq!(socket_path(None, &env, 0), PathBuf::from("/z.sock"));
        assert_eq!(socket_path(None, &none, 0), PathBuf::from("/run/init.sock"));
        assert_eq!(default_socket_path(&env, 1000), PathBuf::from("/run/user/1000/init.sock"));
        assert_eq!(default_socket_path(&none, 1000), PathBuf::from("/tmp/init-1000.sock"));
    }

    #[test]
    fn readiness_fails_during_shutdown() {
        let all = vec![view("a", State::Running)];
        assert!(health(&all, None, false, true).is_ok());
        assert!(health(&all, None, true, true).is_err());
    }
}
