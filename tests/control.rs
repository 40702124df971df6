//! The control server against real unix sockets, driven by a small epoll loop like the reactor's,
//! with a fake host (no supervisor, no reactor).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, clippy::print_stderr)]

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ankh::control::{FdChange, Host, Interest, Limits, Server};
use ankh::proto::{ErrCode, Failure, Request, ServiceView};
use ankh::supervisor::State;
use rustix::event::epoll;

// ---------------------------------------------------------------------------------------------
// A fake host and a loop that drives the server

#[derive(Default)]
struct Fake {
    services: Vec<ServiceView>,
    logs: Vec<(String, Vec<u8>)>,
    commands: Vec<Request>,
}

impl Fake {
    fn with(names: &[&str]) -> Fake {
        let services = names.iter().map(|n| ServiceView::new(n, State::Running)).collect();
        Fake { services, ..Fake::default() }
    }
    fn set_state(&mut self, name: &str, state: State) {
        self.services.iter_mut().find(|s| s.name == name).unwrap().state = state;
    }
}

impl Host for Fake {
    fn services(&self) -> Vec<ServiceView> {
        self.services.clone()
    }
    fn command(&mut self, req: &Request) -> Result<Vec<String>, Failure> {
        self.commands.push(req.clone());
        match req {
            Request::Start { name } if name == "broken" => Err(Failure {
                code: ErrCode::Invalid,
                message: "broken.toml is invalid".into(),
                details: vec!["broken.toml:1:1: command: missing".into(), "second".into()],
            }),
            Request::Start { name } => Ok(vec![format!("starting {name}")]),
            _ => Ok(Vec::new()),
        }
    }
    fn logs(&self, name: Option<&str>, lines: Option<usize>, line: &mut dyn FnMut(&str, &[u8])) {
        let mine: Vec<_> = self.logs.iter().filter(|(n, _)| name.is_none_or(|x| x == n)).collect();
        let skip = lines.map_or(0, |n| mine.len().saturating_sub(n));
        for (n, l) in mine.into_iter().skip(skip) {
            line(n, l);
        }
    }
}

struct Rig {
    server: Server,
    epoll: OwnedFd,
    host: Fake,
    dir: PathBuf,
}

const LISTENER: u64 = u64::MAX;

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ankh-control-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn flags(i: Interest) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if i.read {
        f |= epoll::EventFlags::IN;
    }
    if i.write {
        f |= epoll::EventFlags::OUT;
    }
    f
}

impl Rig {
    fn new(host: Fake) -> Rig {
        Rig::with_limits(host, Limits::default())
    }

    fn with_limits(host: Fake, limits: Limits) -> Rig {
        let dir = temp_dir();
        let server = Server::bind_with(&dir.join("init.sock"), limits).unwrap();
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        epoll::add(&ep, server.listener_fd(), epoll::EventData::new_u64(LISTENER), epoll::EventFlags::IN)
            .unwrap();
        Rig { server, epoll: ep, host, dir }
    }

    fn path(&self) -> PathBuf {
        self.server.path().to_path_buf()
    }

    fn apply(&mut self) {
        for ch in self.server.take_fd_changes() {
            match ch {
                FdChange::Add { client, interest } => {
                    if let Some(fd) = self.server.client_fd(client) {
                        epoll::add(&self.epoll, fd, epoll::EventData::new_u64(client), flags(interest))
                            .unwrap();
                    }
                }
                FdChange::Modify { client, interest } => {
                    if let Some(fd) = self.server.client_fd(client) {
                        epoll::modify(&self.epoll, fd, epoll::EventData::new_u64(client), flags(interest))
                            .unwrap();
                    }
                }
                FdChange::Remove { fd, .. } => {
                    let _ = epoll::delete(&self.epoll, fd.as_fd());
                    drop(fd);
                }
                FdChange::Listener { watch } => {
                    let f = if watch { epoll::EventFlags::IN } else { epoll::EventFlags::empty() };
                    epoll::modify(
                        &self.epoll,
                        self.server.listener_fd(),
                        epoll::EventData::new_u64(LISTENER),
                        f,
                    )
                    .unwrap();
                }
            }
        }
    }

    /// One loop iteration: wait at most `max` (or until the server's deadline), dispatch, tick.
    fn turn(&mut self, max: Duration) {
        let now = Instant::now();
        let mut wait = max;
        if let Some(d) = self.server.next_deadline() {
            wait = wait.min(d.saturating_duration_since(now));
        }
        let ts =
            rustix::time::Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: i64::from(wait.subsec_nanos()) };
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        match epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut events), Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("epoll_wait: {e}"),
        }
        for ev in events.iter() {
            let now = Instant::now();
            match ev.data.u64() {
                LISTENER => self.server.accept(now),
                id => self.server.on_io(id, &mut self.host, now),
            }
            self.apply();
        }
        let now = Instant::now();
        if self.server.next_deadline().is_some_and(|d| d <= now) {
            self.server.tick(&mut self.host, now);
        }
        self.server.observe(&mut self.host, now);
        self.apply();
    }

    /// Turns the loop until `done` holds; fails after `limit`.
    fn until(&mut self, limit: Duration, what: &str, mut done: impl FnMut(&mut Rig) -> bool) {
        let end = Instant::now() + limit;
        while !done(self) {
            assert!(Instant::now() < end, "timed out waiting for: {what}");
            self.turn(Duration::from_millis(20));
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A non-blocking client whose replies are collected as the rig turns.
struct Conn {
    s: UnixStream,
    got: Vec<u8>,
    eof: bool,
}

impl Conn {
    fn open(rig: &Rig) -> Conn {
        let s = UnixStream::connect(rig.path()).unwrap();
        s.set_nonblocking(true).unwrap();
        Conn { s, got: Vec::new(), eof: false }
    }
    fn hello(rig: &mut Rig) -> Conn {
        let mut c = Conn::open(rig);
        c.send("HELLO 1\n");
        c.reply(rig);
        c.got.clear();
        c
    }
    fn send(&mut self, s: &str) {
        self.s.write_all(s.as_bytes()).unwrap();
    }
    fn pull(&mut self) {
        let mut buf = [0u8; 65536];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    self.eof = true;
                    return;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.got).into_owned()
    }
    fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_string).collect()
    }
    /// Turns the rig until a complete reply (a line starting with OK or ERR) arrived.
    fn reply(&mut self, rig: &mut Rig) -> Vec<String> {
        rig.until(Duration::from_secs(10), "a reply", |_| {
            self.pull();
            self.lines().iter().any(|l| l == "OK" || l.starts_with("ERR "))
        });
        self.lines()
    }
    fn closed(&mut self, rig: &mut Rig) {
        rig.until(Duration::from_secs(10), "the server to close the connection", |_| {
            self.pull();
            self.eof
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The socket file

#[test]
fn socket_is_created_0600_and_removed_on_drop() {
    let rig = Rig::new(Fake::default());
    let path = rig.path();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    drop(rig);
    assert!(!path.exists());
}

#[test]
fn missing_parent_directory_is_created() {
    let dir = temp_dir();
    let path = dir.join("run/deeper/init.sock");
    let server = Server::bind(&path).unwrap();
    assert!(path.exists());
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stale_socket_is_replaced_but_a_live_one_is_not() {
    let dir = temp_dir();
    let path = dir.join("init.sock");
    // A socket file whose listener is gone: stale.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = Server::bind(&path).unwrap();
    // A second init must not steal the live socket.
    let err = Server::bind(&path).err().unwrap();
    assert!(err.contains("already listening"), "{err}");
    drop(server);
    std::fs::write(&path, b"not a socket").unwrap();
    let err = Server::bind(&path).err().unwrap();
    assert!(err.contains("not a socket"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unusable_directory_is_an_error_not_a_panic() {
    let err = Server::bind(Path::new("/proc/self/nonexistent-dir/init.sock")).err().unwrap();
    assert!(err.contains("cannot create"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Handshake and requests

#[test]
fn handshake_then_list() {
    let mut rig = Rig::new(Fake::with(&["db", "web"]));
    let mut c = Conn::open(&rig);
    c.send("HELLO 1\n");
    let l = c.reply(&mut rig);
    assert!(l[0].starts_with("HELLO 1 ankh "), "{l:?}");
    assert_eq!(l[1], "OK");
    c.got.clear();
    c.send("list\n");
    let l = c.reply(&mut rig);
    assert_eq!(l.len(), 3, "{l:?}");
    assert!(l[0].starts_with("SVC name=db state=Running"), "{l:?}");
    assert!(l[1].starts_with("SVC name=web state=Running"), "{l:?}");
    assert_eq!(l[2], "OK");
}

#[test]
fn a_request_before_hello_is_refused_and_closed() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    let mut c = Conn::open(&rig);
    c.send("list\n");
    let l = c.reply(&mut rig);
    assert_eq!(l, vec!["ERR 400 expected HELLO 1 first"]);
    c.closed(&mut rig);
}

#[test]
fn an_unknown_protocol_version_is_refused() {
    let mut rig = Rig::new(Fake::default());
    let mut c = Conn::open(&rig);
    c.send("HELLO 7\n");
    let l = c.reply(&mut rig);
    assert!(l[0].starts_with("ERR 505 "), "{l:?}");
    c.closed(&mut rig);
}

#[test]
fn invalid_utf8_is_a_bad_request_and_the_connection_goes_on() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    let mut c = Conn::hello(&mut rig);
    c.s.write_all(b"status \xff\xfe\n").unwrap();
    assert_eq!(c.reply(&mut rig), vec!["ERR 400 request is not UTF-8"]);
    c.got.clear();
    c.send("status web\n");
    let l = c.reply(&mut rig);
    assert!(l[0].starts_with("SVC name=web"), "{l:?}");
}

#[test]
fn unknown_service_is_404() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    let mut c = Conn::hello(&mut rig);
    c.send("status nope\n");
    assert_eq!(c.reply(&mut rig), vec!["ERR 404 no service named \"nope\""]);
}

#[test]
fn commands_go_to_the_host_and_failures_carry_their_details() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    let mut c = Conn::hello(&mut rig);
    c.send("start web\n");
    assert_eq!(c.reply(&mut rig), vec!["MSG starting web", "OK"]);
    c.got.clear();
    c.send("start broken\n");
    assert_eq!(
        c.reply(&mut rig),
        vec!["DIAG broken.toml:1:1: command: missing", "DIAG second", "ERR 422 broken.toml is invalid"]
    );
    assert_eq!(
        rig.host.commands,
        vec![Request::Start { name: "web".into() }, Request::Start { name: "broken".into() }]
    );
}

#[test]
fn pipelined_requests_are_answered_in_order_even_after_half_close() {
    let mut rig = Rig::new(Fake::with(&["a", "b"]));
    let mut c = Conn::open(&rig);
    c.send("HELLO 1\nstatus a\nstatus b\nlist");
    c.s.shutdown(std::net::Shutdown::Write).unwrap();
    c.closed(&mut rig);
    let l = c.lines();
    let tags: Vec<&str> = l.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(tags, vec!["HELLO", "OK", "SVC", "OK", "SVC", "OK", "SVC", "SVC", "OK"], "{l:?}");
    assert!(l[2].contains("name=a") && l[4].contains("name=b"));
}

#[test]
fn why_sends_the_service_its_dependencies_and_their_states() {
    let mut host = Fake::with(&["db", "web"]);
    host.set_state("db", State::Starting);
    host.services[1].state = State::Blocked;
    host.services[1].reason = Some("waiting for db".into());
    host.services[1].deps = vec![(ankh::proto::DepKind::Requires, "db".into())];
    let mut rig = Rig::new(host);
    let mut c = Conn::hello(&mut rig);
    c.send("why web\n");
    let l = c.reply(&mut rig);
    assert_eq!(l.len(), 4, "{l:?}");
    assert!(l[0].starts_with("SVC name=web state=Blocked") && l[0].ends_with("reason=waiting\\sfor\\sdb"));
    assert_eq!(l[1], "DEP kind=requires name=db");
    assert!(l[2].starts_with("SVC name=db state=Starting"));
}

#[test]
fn health_is_ok_only_when_everything_is_up() {
    let mut rig = Rig::new(Fake::with(&["a", "b"]));
    let mut c = Conn::hello(&mut rig);
    c.send("health -\n");
    assert_eq!(c.reply(&mut rig), vec!["MSG healthy: 2 service(s) up", "OK"]);
    rig.host.set_state("b", State::Failed);
    c.got.clear();
    c.send("health -\n");
    assert_eq!(c.reply(&mut rig), vec!["DIAG b is Failed", "ERR 503 unhealthy: b is Failed"]);
}

// ---------------------------------------------------------------------------------------------
// wait, events, logs

#[test]
fn wait_answers_when_the_state_is_reached() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    rig.host.set_state("web", State::Starting);
    let mut c = Conn::hello(&mut rig);
    c.send("wait web Running 10000\nstatus web\n");
    for _ in 0..5 {
        rig.turn(Duration::from_millis(5));
    }
    c.pull();
    assert!(c.got.is_empty(), "answered too early: {}", c.text());
    rig.host.set_state("web", State::Running);
    let l = c.reply(&mut rig);
    assert!(l[0].starts_with("SVC name=web state=Running"), "{l:?}");
    // The pipelined request after the wait is answered next.
    rig.until(Duration::from_secs(5), "the pipelined status", |_| {
        c.pull();
        c.lines().len() == 4
    });
}

#[test]
fn wait_times_out_with_the_current_state() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    rig.host.set_state("web", State::Failed);
    rig.host.services[0].reason = Some("exit 3".into());
    let mut c = Conn::hello(&mut rig);
    let t0 = Instant::now();
    c.send("wait web Running 150\n");
    let l = c.reply(&mut rig);
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_eq!(l, vec!["ERR 408 timed out after 150ms: web is Failed, not Running (exit 3)"]);
}

#[test]
fn events_stream_state_changes() {
    let mut rig = Rig::new(Fake::with(&["a", "b"]));
    let mut c = Conn::hello(&mut rig);
    c.send("events\n");
    rig.until(Duration::from_secs(5), "the stream to start", |_| {
        c.pull();
        c.text() == "STREAM events\n"
    });
    rig.host.set_state("b", State::Stopping);
    rig.until(Duration::from_secs(5), "an event", |_| {
        c.pull();
        c.lines().len() == 2
    });
    assert!(c.lines()[1].starts_with("EVENT name=b state=Stopping"), "{:?}", c.lines());
}

#[test]
fn logs_returns_the_last_lines_and_follow_streams_new_ones() {
    let mut host = Fake::with(&["web", "db"]);
    for i in 0..5 {
        host.logs.push(("web".into(), format!("line {i}").into_bytes()));
        host.logs.push(("db".into(), b"other".to_vec()));
    }
    let mut rig = Rig::new(host);
    let mut c = Conn::hello(&mut rig);
    c.send("logs web 2 once\n");
    assert_eq!(c.reply(&mut rig), vec!["LOG web line 3", "LOG web line 4", "OK"]);
    let mut f = Conn::hello(&mut rig);
    f.send("logs web 0 follow\n");
    rig.until(Duration::from_secs(5), "the stream to start", |_| {
        f.pull();
        f.text() == "STREAM logs\n"
    });
    assert!(rig.server.wants_logs());
    rig.server.push_log("db", b"not for this follower", Instant::now());
    rig.server.push_log("web", b"\xffraw bytes", Instant::now());
    rig.until(Duration::from_secs(5), "the live line", |_| {
        f.pull();
        f.got.ends_with(b"\n") && f.got.len() > 12
    });
    assert_eq!(f.got, b"STREAM logs\nLOG web \xffraw bytes\n");
    drop(f);
    rig.until(Duration::from_secs(5), "the follower to be dropped", |r| !r.server.wants_logs());
}

// ---------------------------------------------------------------------------------------------
// Abuse: nothing may stall the loop or grow without bound

#[test]
fn a_client_that_never_reads_logs_f_costs_bounded_memory() {
    let limits = Limits::default();
    let mut rig = Rig::new(Fake::with(&["web"]));
    let mut f = Conn::hello(&mut rig);
    f.send("logs web 0 follow\n");
    rig.until(Duration::from_secs(5), "the follower", |r| r.server.wants_logs());
    let line = vec![b'x'; 1000];
    // 50 MB of output; the socket buffer fills, then lines are skipped.
    for i in 0..50_000 {
        rig.server.push_log("web", &line, Instant::now());
        if i % 1000 == 0 {
            rig.turn(Duration::ZERO);
        }
        assert!(rig.server.buffered_bytes() <= limits.stream_queue + 64, "{}", rig.server.buffered_bytes());
    }
    // The follower finally reads: it learns how much it missed, then gets new lines.
    let mut seen = Vec::new();
    let mut sink = [0u8; 65536];
    rig.until(Duration::from_secs(10), "the backlog to drain", |r| {
        loop {
            match f.s.read(&mut sink) {
                Ok(n) if n > 0 => seen.extend_from_slice(&sink[..n]),
                _ => break,
            }
        }
        r.server.buffered_bytes() == 0
    });
    rig.server.push_log("web", b"after", Instant::now());
    rig.until(Duration::from_secs(5), "the line after the gap", |_| {
        while let Ok(n) = f.s.read(&mut sink) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&sink[..n]);
        }
        seen.ends_with(b"LOG web after\n")
    });
    let text = String::from_utf8_lossy(&seen);
    let skip = text.lines().find(|l| l.starts_with("SKIP ")).expect("a SKIP line");
    let n: u64 = skip[5..].parse().unwrap();
    let logged = text.lines().filter(|l| l.starts_with("LOG ")).count() as u64;
    assert_eq!(n + logged, 50_001, "every line is either delivered or counted as skipped");
}

#[test]
fn ten_megabytes_without_a_newline_is_refused_and_closed() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    let mut c = Conn::hello(&mut rig);
    let chunk = vec![b'a'; 65536];
    let mut written = 0usize;
    let mut refused = false;
    while written < 10 * 1024 * 1024 && !refused {
        match c.s.write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => refused = true, // EPIPE/ECONNRESET: the server hung up, as it should
        }
        rig.turn(Duration::from_millis(1));
        assert!(rig.server.buffered_bytes() <= 2 * 8192 + 4096, "{}", rig.server.buffered_bytes());
    }
    c.closed(&mut rig);
    assert!(c.text().starts_with("ERR 413 request longer than 4096 bytes"), "{}", c.text());
    assert_eq!(rig.server.clients(), 0);
}

#[test]
fn idle_clients_are_closed() {
    let limits = Limits { idle: Duration::from_millis(100), ..Limits::default() };
    let mut rig = Rig::with_limits(Fake::default(), limits);
    let mut c = Conn::open(&rig);
    c.closed(&mut rig);
    assert_eq!(c.text(), "ERR 408 idle for 100ms\n");
    assert_eq!(rig.server.clients(), 0);
}

#[test]
fn too_many_clients_are_told_so() {
    let limits = Limits { max_clients: 2, ..Limits::default() };
    let mut rig = Rig::with_limits(Fake::default(), limits);
    let _a = Conn::hello(&mut rig);
    let _b = Conn::hello(&mut rig);
    let mut c = Conn::open(&rig);
    c.closed(&mut rig);
    assert_eq!(c.text(), "ERR 503 too many clients\n");
}

#[test]
fn a_thousand_concurrent_clients() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    let mut conns: Vec<Conn> = (0..1000).map(|_| Conn::open(&rig)).collect();
    for c in &mut conns {
        c.send("HELLO 1\nstatus web\n");
    }
    rig.until(Duration::from_secs(60), "1,000 replies", |_| {
        let mut done = 0;
        for c in &mut conns {
            c.pull();
            if c.got.ends_with(b"OK\n") && c.lines().len() == 4 {
                done += 1;
            }
        }
        done == 1000
    });
    assert_eq!(rig.server.clients(), 1000);
    drop(conns);
    rig.until(Duration::from_secs(10), "every client gone", |r| r.server.clients() == 0);
}

#[test]
fn list_of_a_thousand_services() {
    let names: Vec<String> = (0..1000).map(|i| format!("service-{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut rig = Rig::new(Fake::with(&refs));
    let mut c = Conn::hello(&mut rig);
    c.send("list\n");
    let l = c.reply(&mut rig);
    assert_eq!(l.len(), 1001);
    assert!(l[999].starts_with("SVC name=service-0999 "));
}

// ---------------------------------------------------------------------------------------------
// Peer credentials: a client running as uid 65534

/// Runs this test binary's `peer_helper` as uid 65534 and returns what it printed.
fn as_nobody(socket: &Path, rig: &mut Rig) -> Option<String> {
    if rustix::process::geteuid().as_raw() != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv");
        return None;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(exe)
        .args(["--exact", "peer_helper", "--nocapture", "--test-threads=1"])
        .env("ANKH_PEER_SOCKET", socket)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    rig.until(Duration::from_secs(20), "the helper to finish", |_| child.try_wait().unwrap().is_some());
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    Some(out)
}

/// Not a test on its own: run by `as_nobody` with `ANKH_PEER_SOCKET` set.
#[test]
fn peer_helper() {
    let Some(path) = std::env::var_os("ANKH_PEER_SOCKET") else {
        return;
    };
    match UnixStream::connect(&path) {
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = s.write_all(b"HELLO 1\nlist\n");
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            println!("REPLY:{}", got.trim_end());
        }
        Err(e) => println!("CONNECT:{:?}", e.kind()),
    }
}

#[test]
fn a_peer_that_is_not_root_cannot_connect_through_the_0600_file() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    std::fs::set_permissions(&rig.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = rig.path();
    let Some(out) = as_nobody(&path, &mut rig) else {
        return;
    };
    assert!(out.contains("CONNECT:PermissionDenied"), "{out}");
}

#[test]
fn a_peer_that_is_not_root_is_refused_by_its_credentials() {
    let mut rig = Rig::new(Fake::with(&["web"]));
    std::fs::set_permissions(&rig.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = rig.path();
    // Open the file up: SO_PEERCRED must still keep the stranger out.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let Some(out) = as_nobody(&path, &mut rig) else {
        return;
    };
    assert!(out.contains("REPLY:ERR 403 permission denied"), "{out}");
    assert!(!out.contains("SVC"), "{out}");
    assert_eq!(rig.server.clients(), 0);
}

// ---------------------------------------------------------------------------------------------
// The command-line client against the server

use ankh::ctl::{self, Term};
use std::ffi::OsString;

fn run_cli(socket: &Path, args: &[&str]) -> std::thread::JoinHandle<(i32, String, String)> {
    let mut full: Vec<OsString> = vec!["--socket".into(), socket.as_os_str().to_owned()];
    full.extend(args.iter().map(OsString::from));
    std::thread::spawn(move || {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let code = ctl::run_with(full, &|_| None, &mut Term { out: &mut o, err: &mut e });
        (code, String::from_utf8_lossy(&o).into_owned(), String::from_utf8_lossy(&e).into_owned())
    })
}

/// Runs `init ARGS` as a client of the rig's server; (exit code, stdout, stderr).
fn cli(rig: &mut Rig, args: &[&str]) -> (i32, String, String) {
    let h = run_cli(&rig.path(), args);
    rig.until(Duration::from_secs(30), "the client to finish", |_| h.is_finished());
    h.join().unwrap()
}

#[test]
fn cli_status_prints_aligned_columns() {
    let mut host = Fake::with(&["db", "web-frontend"]);
    host.services[0].pid = Some(42);
    host.set_state("web-frontend", State::Blocked);
    host.services[1].reason = Some("waiting for db".into());
    let mut rig = Rig::new(host);
    let (code, out, err) = cli(&mut rig, &["status"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "NAME          STATE    PID  RESTARTS  HEALTH  REASON\n\
         db            Running  42   0         -\n\
         web-frontend  Blocked  -    0         -       waiting for db\n"
    );
    let (code, out, _) = cli(&mut rig, &["list", "--json"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("[{\"name\":\"db\",\"kind\":\"service\",\"state\":\"Running\",\"pid\":42,"),
        "{out}"
    );
}

#[test]
fn cli_list_of_a_thousand_services() {
    let names: Vec<String> = (0..1000).map(|i| format!("s{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut rig = Rig::new(Fake::with(&refs));
    let (code, out, _) = cli(&mut rig, &["list"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1001);
    assert_eq!(out.lines().last(), Some("s0999  Running  -"));
}

#[test]
fn cli_errors_and_exit_codes() {
    let mut rig = Rig::new(Fake::with(&["web", "bad"]));
    rig.host.set_state("bad", State::Failed);
    let (code, _, err) = cli(&mut rig, &["start", "broken"]);
    assert_eq!(code, 1);
    assert_eq!(err, "broken.toml:1:1: command: missing\nsecond\ninit: broken.toml is invalid\n");
    let (code, _, err) = cli(&mut rig, &["status", "nope"]);
    assert_eq!((code, err.as_str()), (1, "init: no service named \"nope\"\n"));
    let (code, out, _) = cli(&mut rig, &["health"]);
    assert_eq!((code, out.as_str()), (1, "unhealthy: bad is Failed\n"));
    let (code, out, _) = cli(&mut rig, &["health", "web"]);
    assert_eq!((code, out.as_str()), (0, "web is healthy\n"));
    let (code, _, err) = cli(&mut rig, &["wait", "bad", "Running", "--timeout", "100ms"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("timed out after 100ms: bad is Failed, not Running"), "{err}");
    let (code, _, err) = cli(&mut rig, &["frobnicate"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn cli_when_init_is_not_running() {
    let dir = temp_dir();
    let missing = dir.join("none.sock");
    let (code, _, err) = run_cli(&missing, &["status"]).join().unwrap();
    assert_eq!(code, 3);
    assert!(err.contains("init is not running (no control socket at"), "{err}");
    // A socket file nobody listens on any more.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (code, _, err) = run_cli(&stale, &["status"]).join().unwrap();
    assert_eq!(code, 3);
    assert!(err.contains("refuses connections"), "{err}");
    // Somebody listens but never answers: the client gives up after --timeout.
    let mute = dir.join("mute.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&mute).unwrap();
    let t0 = Instant::now();
    let (code, _, err) = run_cli(&mute, &["--timeout", "200ms", "status"]).join().unwrap();
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no reply from init within 200ms"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_logs_and_follow() {
    let mut host = Fake::with(&["web", "db"]);
    host.logs.push(("web".into(), b"hello".to_vec()));
    host.logs.push(("db".into(), b"ready".to_vec()));
    let mut rig = Rig::new(host);
    let (code, out, _) = cli(&mut rig, &["logs"]);
    assert_eq!((code, out.as_str()), (0, "web: hello\ndb: ready\n"));
    let (code, out, _) = cli(&mut rig, &["logs", "web"]);
    assert_eq!((code, out.as_str()), (0, "hello\n"));
    // Follow: the client ends when init closes the stream (here: the server goes away).
    let h = run_cli(&rig.path(), &["logs", "-f", "-n", "0", "web"]);
    rig.until(Duration::from_secs(10), "the follower", |r| r.server.wants_logs());
    rig.server.push_log("web", b"live line", Instant::now());
    rig.turn(Duration::from_millis(10));
    drop(rig);
    let (code, out, _) = h.join().unwrap();
    assert_eq!((code, out.as_str()), (0, "live line\n"));
}
