//! Health probes and readiness channels against real sockets and processes: loopback listeners
//! run by a thread of the test, exec checks run as real process groups, sd_notify datagrams and
//! readiness pipes. Each probe is driven by a small epoll loop like the reactor's, whose
//! `Registry` checks the add/modify/remove protocol (and that nothing is left registered).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use ankh::notify::{self, Notification, NotifySocket, PipeState, ReadyPipe};
use ankh::probe::{self, Interest, Probe, ProbeKind, Registry, Started};
use ankh::spawn::{Io, Stdio};
use ankh::spec::{Endpoint, Health, HttpEndpoint, OnUnhealthy};
use ankh::supervisor::ExitStatus;
use rustix::event::epoll;

// ---------------------------------------------------------------- the loop

/// An epoll set that asserts the probe's registration protocol.
struct TestLoop {
    ep: OwnedFd,
    registered: HashMap<RawFd, Interest>,
}

fn flags(i: Interest) -> epoll::EventFlags {
    match i {
        Interest::Read => epoll::EventFlags::IN,
        Interest::Write => epoll::EventFlags::OUT,
    }
}

impl Registry for TestLoop {
    fn add(&mut self, fd: BorrowedFd<'_>, interest: Interest) {
        let raw = fd.as_raw_fd();
        assert!(
            self.registered.insert(raw, interest).is_none(),
            "fd {raw} added twice (closed without remove?)"
        );
        epoll::add(
            &self.ep,
            fd,
            epoll::EventData::new_u64(raw as u64),
            flags(interest),
        )
        .expect("epoll add");
    }
    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest) {
        let raw = fd.as_raw_fd();
        assert!(
            self.registered.contains_key(&raw),
            "modify of unregistered fd {raw}"
        );
        self.registered.insert(raw, interest);
        epoll::modify(
            &self.ep,
            fd,
            epoll::EventData::new_u64(raw as u64),
            flags(interest),
        )
        .expect("epoll modify");
    }
    fn remove(&mut self, fd: BorrowedFd<'_>) {
        let raw = fd.as_raw_fd();
        assert!(
            self.registered.remove(&raw).is_some(),
            "remove of unregistered fd {raw}"
        );
        epoll::delete(&self.ep, fd).expect("epoll delete (fd closed before remove?)");
    }
}

impl TestLoop {
    fn new() -> TestLoop {
        TestLoop {
            ep: epoll::create(epoll::CreateFlags::CLOEXEC).unwrap(),
            registered: HashMap::new(),
        }
    }

    /// Waits up to `max` for an event; true if one came.
    fn wait(&self, max: Duration) -> bool {
        let mut events = Vec::with_capacity(4);
        let ts = rustix::time::Timespec {
            tv_sec: max.as_secs() as i64,
            tv_nsec: max.subsec_nanos() as i64,
        };
        match epoll::wait(
            &self.ep,
            rustix::buffer::spare_capacity(&mut events),
            Some(&ts),
        ) {
            Ok(n) => n > 0,
            Err(rustix::io::Errno::INTR) => false,
            Err(e) => panic!("epoll_wait: {e}"),
        }
    }
}

/// Spawns like the reactor will: own process group, the given stdio.
fn test_spawner(pids: &mut Vec<i32>) -> impl FnMut(&[String], Stdio) -> Result<i32, String> + '_ {
    move |argv: &[String], stdio: Stdio| {
        let conv = |io: Io| match io {
            Io::Inherit => std::process::Stdio::inherit(),
            Io::Null => std::process::Stdio::null(),
            Io::Fd(fd) => std::process::Stdio::from(fd),
        };
        let child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .process_group(0)
            .stdin(conv(stdio.stdin))
            .stdout(conv(stdio.stdout))
            .stderr(conv(stdio.stderr))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", argv[0]))?;
        let pid = child.id() as i32;
        pids.push(pid);
        Ok(pid)
    }
}

/// Non-blocking reap of one pid, as the reactor's waitpid(-1) would deliver it.
fn try_reap(pid: i32) -> Option<ExitStatus> {
    let p = rustix::process::Pid::from_raw(pid).unwrap();
    match rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG) {
        Ok(Some((_, st))) => Some(match (st.exit_status(), st.terminating_signal()) {
            (Some(c), _) => ExitStatus::Code(c),
            (_, Some(s)) => ExitStatus::Signal(s),
            _ => return None,
        }),
        _ => None,
    }
}

struct Outcome {
    result: Result<(), String>,
    took: Duration,
    /// The exec pid left to reap after a cancel.
    cancelled_pid: Option<i32>,
}

/// Runs one round of `kinds` with `timeout`, the way the reactor does.
fn run(kinds: Vec<ProbeKind>, timeout: Duration) -> Outcome {
    let t0 = Instant::now();
    let mut lp = TestLoop::new();
    let mut pids = Vec::new();
    let kinds: Rc<[ProbeKind]> = kinds.into();
    let started = {
        let mut spawner = test_spawner(&mut pids);
        Probe::start(kinds, &mut lp, &mut spawner)
    };
    let mut probe = match started {
        Started::Done(result) => {
            assert!(
                lp.registered.is_empty(),
                "finished at once but left {:?}",
                lp.registered
            );
            return Outcome {
                result,
                took: t0.elapsed(),
                cancelled_pid: None,
            };
        }
        Started::Running(p) => p,
    };
    let deadline = t0 + timeout;
    loop {
        if let Some((fd, interest)) = probe.watched() {
            assert_eq!(
                lp.registered.get(&fd.as_raw_fd()),
                Some(&interest),
                "watched fd not registered as such"
            );
        }
        let now = Instant::now();
        if now >= deadline {
            let msg = probe.timeout_error(timeout);
            let pid = probe.cancel(&mut lp);
            assert!(lp.registered.is_empty(), "cancel left {:?}", lp.registered);
            return Outcome {
                result: Err(msg),
                took: t0.elapsed(),
                cancelled_pid: pid,
            };
        }
        // Exits are not fd events here: look every 10 ms while an exec check runs.
        let slice = if probe.pid().is_some() {
            Duration::from_millis(10)
        } else {
            deadline - now
        };
        let step = if lp.wait(slice.min(deadline - now)) {
            probe.on_event(&mut lp)
        } else if let Some(st) = probe.pid().and_then(try_reap) {
            probe.on_exit(st, &mut lp)
        } else {
            Poll::Pending
        };
        if let Poll::Ready(result) = step {
            assert!(
                lp.registered.is_empty(),
                "finished but left {:?}",
                lp.registered
            );
            return Outcome {
                result,
                took: t0.elapsed(),
                cancelled_pid: None,
            };
        }
    }
}

// ---------------------------------------------------------------- servers

fn ep(addr: SocketAddr) -> Endpoint {
    Endpoint {
        addrs: vec![addr],
        host: addr.ip().to_string(),
        port: addr.port(),
    }
}

fn http(addr: SocketAddr, path: &str) -> ProbeKind {
    ProbeKind::Http(HttpEndpoint {
        endpoint: ep(addr),
        path: path.into(),
    })
}

/// Reads a request head (until the blank line or EOF).
fn read_request(s: &mut TcpStream) -> String {
    let mut req = Vec::new();
    let mut b = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&req).into_owned()
}

/// A server that accepts one connection, reads the request, and runs `answer` on the stream.
/// Returns its address and a handle yielding the request it read.
fn serve_once<F>(bind: &str, answer: F) -> (SocketAddr, thread::JoinHandle<String>)
where
    F: FnOnce(&mut TcpStream) + Send + 'static,
{
    let l = TcpListener::bind(bind).unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let req = read_request(&mut s);
        answer(&mut s);
        req
    });
    (addr, h)
}

fn respond(bytes: &'static [u8]) -> impl FnOnce(&mut TcpStream) + Send + 'static {
    move |s| {
        let _ = s.write_all(bytes);
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------- HTTP

#[test]
fn http_200_is_healthy_and_request_is_well_formed() {
    let (addr, h) = serve_once(
        "127.0.0.1:0",
        respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    );
    let out = run(vec![http(addr, "/healthz?full=1")], secs(5));
    assert_eq!(out.result, Ok(()));
    let req = h.join().unwrap();
    assert!(req.starts_with("GET /healthz?full=1 HTTP/1.1\r\n"), "{req}");
    assert!(
        req.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", addr.port())),
        "{req}"
    );
    assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
    assert!(req.contains("\r\nUser-Agent: ankh/"), "{req}");
}

#[test]
fn http_500_is_unhealthy_with_the_status_line() {
    let (addr, h) = serve_once(
        "127.0.0.1:0",
        respond(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
    );
    let out = run(vec![http(addr, "/healthz")], secs(5));
    assert_eq!(
        out.result,
        Err("GET /healthz: 500 Internal Server Error".into())
    );
    h.join().unwrap();
}

#[test]
fn http_503_without_reason() {
    let (addr, h) = serve_once("127.0.0.1:0", respond(b"HTTP/1.0 503\r\n\r\n"));
    assert_eq!(
        run(vec![http(addr, "/")], secs(5)).result,
        Err("GET /: 503".into())
    );
    h.join().unwrap();
}

fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

#[test]
fn refused_connection_names_the_address() {
    let addr = closed_port();
    let out = run(vec![http(addr, "/healthz")], secs(5));
    assert_eq!(
        out.result,
        Err(format!("connect {addr}: Connection refused"))
    );
    let out = run(vec![ProbeKind::Tcp(ep(addr))], secs(5));
    assert_eq!(
        out.result,
        Err(format!("connect {addr}: Connection refused"))
    );
}

#[test]
fn silent_server_times_out_without_blocking() {
    let (addr, h) = serve_once("127.0.0.1:0", |s| {
        // Hold the connection open, answer nothing, until the client goes away.
        let mut b = [0u8; 16];
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    });
    let out = run(vec![http(addr, "/healthz")], Duration::from_millis(300));
    assert_eq!(
        out.result,
        Err("GET /healthz: no response within 300ms".into())
    );
    assert!(out.took < secs(2), "took {:?}", out.took);
    // The cancel closed the socket: the server sees EOF and ends.
    h.join().unwrap();
}

#[test]
fn slow_trickle_within_timeout_is_read_in_pieces() {
    let (addr, h) = serve_once("127.0.0.1:0", |s| {
        s.set_nodelay(true).unwrap();
        for b in b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n" {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    });
    assert_eq!(run(vec![http(addr, "/")], secs(10)).result, Ok(()));
    h.join().unwrap();
}

#[test]
fn slow_trickle_past_timeout_is_incomplete() {
    let (addr, h) = serve_once("127.0.0.1:0", |s| {
        s.set_nodelay(true).unwrap();
        for b in b"HTTP/1.1 200 OK\r\nX-Long-Header: aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(30));
        }
    });
    let out = run(vec![http(addr, "/")], Duration::from_millis(400));
    assert_eq!(
        out.result,
        Err("GET /: response incomplete after 400ms".into())
    );
    h.join().unwrap();
}

#[test]
fn close_mid_response_is_a_failure() {
    let (addr, h) = serve_once("127.0.0.1:0", respond(b"HTTP/1.1 200 OK\r\nContent-Le"));
    assert_eq!(
        run(vec![http(addr, "/healthz")], secs(5)).result,
        Err("GET /healthz: connection closed mid-response".into())
    );
    h.join().unwrap();
}

#[test]
fn close_without_response_is_a_failure() {
    let (addr, h) = serve_once("127.0.0.1:0", |_| {});
    assert_eq!(
        run(vec![http(addr, "/healthz")], secs(5)).result,
        Err("GET /healthz: connection closed without a response".into())
    );
    h.join().unwrap();
}

#[test]
fn one_megabyte_header_is_refused_with_a_bounded_read() {
    let (addr, h) = serve_once("127.0.0.1:0", |s| {
        let mut resp = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        resp.extend(std::iter::repeat_n(b'a', 1 << 20));
        resp.extend(b"\r\n\r\n");
        let _ = s.write_all(&resp); // the probe hangs up early: EPIPE/ECONNRESET expected
    });
    let out = run(vec![http(addr, "/")], secs(5));
    assert_eq!(
        out.result,
        Err(format!(
            "GET /: bad response: head longer than {} bytes",
            probe::MAX_RESPONSE_HEAD
        ))
    );
    h.join().unwrap();
}

#[test]
fn garbage_is_a_bad_response() {
    let (addr, h) = serve_once("127.0.0.1:0", respond(b"SSH-2.0-OpenSSH_9.2\r\n"));
    assert_eq!(
        run(vec![http(addr, "/")], secs(5)).result,
        Err("GET /: bad response".into())
    );
    h.join().unwrap();
}

fn ipv6_listener() -> Option<TcpListener> {
    match TcpListener::bind("[::1]:0") {
        Ok(l) => Some(l),
        Err(e) => {
            println!("skipped: no IPv6 loopback ({e})");
            None
        }
    }
}

#[test]
fn ipv6_literal_and_host_header_in_brackets() {
    let Some(l) = ipv6_listener() else { return };
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let req = read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
        req
    });
    assert_eq!(run(vec![http(addr, "/h")], secs(5)).result, Ok(()));
    let req = h.join().unwrap();
    assert!(
        req.contains(&format!("\r\nHost: [::1]:{}\r\n", addr.port())),
        "{req}"
    );
}

#[test]
fn localhost_tries_each_address_in_order() {
    // 127.0.0.1 refuses; the second address (::1, or another IPv4 port without IPv6) answers.
    let refused = closed_port();
    let (second, h) = match ipv6_listener() {
        Some(l) => {
            let a = l.local_addr().unwrap();
            drop(l);
            serve_once(&a.to_string(), respond(b"HTTP/1.1 200 OK\r\n\r\n"))
        }
        None => serve_once("127.0.0.1:0", respond(b"HTTP/1.1 200 OK\r\n\r\n")),
    };
    let endpoint = Endpoint {
        addrs: vec![refused, second],
        host: "localhost".into(),
        port: second.port(),
    };
    let kind = ProbeKind::Http(HttpEndpoint {
        endpoint: endpoint.clone(),
        path: "/".into(),
    });
    assert_eq!(run(vec![kind], secs(5)).result, Ok(()));
    h.join().unwrap();
    // Both refusing: both errors are reported.
    let endpoint = Endpoint {
        addrs: vec![refused, refused],
        ..endpoint
    };
    let Err(e) = run(vec![ProbeKind::Tcp(endpoint)], secs(5)).result else {
        panic!()
    };
    assert_eq!(e.matches("Connection refused").count(), 2, "{e}");
}

#[test]
fn tcp_connect_is_healthy() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    assert_eq!(run(vec![ProbeKind::Tcp(ep(addr))], secs(5)).result, Ok(()));
}

#[test]
fn many_probes_in_one_loop_do_not_delay_each_other() {
    // Ten silent servers and one healthy one: the healthy probe is answered at once even though
    // the silent ones are still pending in the same epoll set.
    let mut lp = TestLoop::new();
    let mut silent = Vec::new();
    let mut probes = Vec::new();
    let mut none = |_: &[String], _: Stdio| -> Result<i32, String> { Err("no exec".into()) };
    for _ in 0..10 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let kinds: Rc<[ProbeKind]> = vec![http(l.local_addr().unwrap(), "/")].into();
        silent.push(l);
        match Probe::start(kinds, &mut lp, &mut none) {
            Started::Running(p) => probes.push(p),
            Started::Done(r) => panic!("silent server finished: {r:?}"),
        }
    }
    let (addr, h) = serve_once("127.0.0.1:0", respond(b"HTTP/1.1 200 OK\r\n\r\n"));
    let kinds: Rc<[ProbeKind]> = vec![http(addr, "/")].into();
    let mut fast = match Probe::start(kinds, &mut lp, &mut none) {
        Started::Running(p) => p,
        Started::Done(r) => panic!("{r:?}"),
    };
    let t0 = Instant::now();
    let result = loop {
        assert!(t0.elapsed() < secs(5), "healthy probe starved");
        lp.wait(Duration::from_millis(50));
        // Like the reactor: dispatch to every probe (a real loop routes by token).
        for p in &mut probes {
            assert_eq!(p.on_event(&mut lp), Poll::Pending);
        }
        if let Poll::Ready(r) = fast.on_event(&mut lp) {
            break r;
        }
    };
    assert_eq!(result, Ok(()));
    h.join().unwrap();
    for p in probes {
        p.cancel(&mut lp);
    }
    assert!(lp.registered.is_empty());
}

// ---------------------------------------------------------------- exec

fn sh(script: &str) -> ProbeKind {
    ProbeKind::Exec(vec!["/bin/sh".into(), "-c".into(), script.into()])
}

#[test]
fn exec_exit_0_is_healthy() {
    assert_eq!(run(vec![sh("exit 0")], secs(5)).result, Ok(()));
}

#[test]
fn exec_failure_reports_code_and_last_output_line() {
    let out = run(vec![sh("echo checking; echo db down >&2; exit 3")], secs(5));
    assert_eq!(out.result, Err("/bin/sh: exit 3: db down".into()));
}

#[test]
fn exec_that_cannot_spawn_fails() {
    let out = run(
        vec![ProbeKind::Exec(vec!["/nonexistent/check".into()])],
        secs(5),
    );
    let Err(e) = out.result else { panic!() };
    assert!(e.starts_with("spawn /nonexistent/check"), "{e}");
}

#[test]
fn exec_exit_decides_even_if_a_grandchild_keeps_the_pipe() {
    let dir = tmpdir("grandchild-pipe");
    let pidfile = dir.join("pid");
    let out = run(
        vec![sh(&format!(
            "sleep 30 & echo $! > {}; exit 0",
            pidfile.display()
        ))],
        secs(5),
    );
    assert_eq!(out.result, Ok(()));
    assert!(out.took < secs(3), "waited for the pipe: {:?}", out.took);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill_pid(pid);
}

fn kill_pid(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Gone or a zombie (someone else's to reap).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn hanging_exec_is_killed_with_its_children_at_timeout() {
    let dir = tmpdir("hang");
    let pidfile = dir.join("pid");
    let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
    let out = run(vec![sh(&script)], Duration::from_millis(700));
    assert_eq!(
        out.result,
        Err("/bin/sh: timed out after 700ms, killed".into())
    );
    let pid = out.cancelled_pid.expect("the exec pid to reap");
    // Its exit comes through the reaper like any other.
    let deadline = Instant::now() + secs(5);
    let status = loop {
        if let Some(st) = try_reap(pid) {
            break st;
        }
        assert!(Instant::now() < deadline, "probe process not killed");
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status, ExitStatus::Signal(9));
    let grandchild: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    while !is_dead(grandchild) {
        if Instant::now() > deadline {
            kill_pid(grandchild);
            panic!("grandchild {grandchild} survived the group kill");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------- file and rounds

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ankh-health-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn health_with_file(path: PathBuf) -> Health {
    Health {
        http: None,
        tcp: None,
        command: None,
        file: Some(path),
        interval: secs(1),
        timeout: secs(1),
        start_period: Duration::ZERO,
        max_failed: 3,
        on_unhealthy: OnUnhealthy::Restart,
    }
}

#[test]
fn file_probe_and_prepare_deletes_the_file() {
    let dir = tmpdir("file");
    let f = dir.join("web.up");
    let h = health_with_file(f.clone());
    let kinds = ProbeKind::from_health(&h);
    let Err(e) = run(kinds.clone(), secs(1)).result else {
        panic!()
    };
    assert_eq!(e, format!("{}: does not exist", f.display()));
    std::fs::write(&f, "").unwrap();
    assert_eq!(run(kinds.clone(), secs(1)).result, Ok(()));
    probe::prepare(&h).unwrap();
    assert!(!f.exists());
    probe::prepare(&h).unwrap(); // missing is fine
}

#[test]
fn a_round_runs_every_check_and_stops_at_the_first_failure() {
    let dir = tmpdir("round");
    let f = dir.join("up");
    std::fs::write(&f, "").unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = l.local_addr().unwrap();
    let (addr, h) = serve_once("127.0.0.1:0", respond(b"HTTP/1.1 200 OK\r\n\r\n"));
    let all = vec![
        ProbeKind::File(f.clone()),
        sh("exit 0"),
        ProbeKind::Tcp(ep(tcp)),
        http(addr, "/"),
    ];
    assert_eq!(run(all.clone(), secs(5)).result, Ok(()));
    h.join().unwrap();
    // The exec check fails: the round stops there (the TCP and HTTP checks would fail
    // differently: the one-shot HTTP server is gone).
    let failing = vec![
        ProbeKind::File(f),
        sh("exit 1"),
        ProbeKind::Tcp(ep(tcp)),
        http(addr, "/"),
    ];
    assert_eq!(run(failing, secs(5)).result, Err("/bin/sh: exit 1".into()));
}

// ---------------------------------------------------------------- readiness channels

fn wait_readable(fd: BorrowedFd<'_>, max: Duration) -> bool {
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::time::Timespec {
        tv_sec: max.as_secs() as i64,
        tv_nsec: max.subsec_nanos() as i64,
    };
    matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
}

/// Receives until `want` notifications arrived (or 5 s passed).
fn receive(sock: &NotifySocket, want: usize) -> Vec<Notification> {
    let deadline = Instant::now() + secs(5);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        if wait_readable(sock.as_fd(), Duration::from_millis(100)) {
            got.extend(sock.receive());
        }
    }
    got
}

#[test]
fn notify_ready_and_status_from_init_notify() {
    let me = rustix::process::getuid().as_raw();
    let sock = NotifySocket::bind("web", me).unwrap();
    assert!(
        sock.env_value().starts_with("@ankh/"),
        "{}",
        sock.env_value()
    );
    let target = std::ffi::OsString::from(sock.env_value());
    let args = ["--ready", "--status=listening on :8080"].map(std::ffi::OsString::from);
    assert_eq!(notify::notify_to(Some(&target), args), 0);
    let got = receive(&sock, 2);
    assert_eq!(
        got,
        vec![
            Notification::Ready,
            Notification::Status("listening on :8080".into())
        ]
    );
    let args = ["--stopping", "MAINPID=4242"].map(std::ffi::OsString::from);
    assert_eq!(notify::notify_to(Some(&target), args), 0);
    assert_eq!(
        receive(&sock, 2),
        vec![Notification::Stopping, Notification::MainPid(4242)]
    );
    // Nothing queued: receive does not block.
    assert_eq!(sock.receive(), vec![]);
}

#[test]
fn notify_without_socket_fails_with_code_1() {
    assert_eq!(
        notify::notify_to(None, ["--ready"].map(std::ffi::OsString::from)),
        1
    );
    assert_eq!(
        notify::notify_to(None, ["--bogus"].map(std::ffi::OsString::from)),
        2
    );
}

#[test]
fn notify_sockets_are_distinct_per_service_and_stale_datagrams_are_discarded() {
    let me = rustix::process::getuid().as_raw();
    let a = NotifySocket::bind("a", me).unwrap();
    let b = NotifySocket::bind("a", me).unwrap();
    assert_ne!(a.env_value(), b.env_value());
    let ta = std::ffi::OsString::from(a.env_value());
    assert_eq!(
        notify::notify_to(Some(&ta), ["--ready"].map(std::ffi::OsString::from)),
        0
    );
    assert!(wait_readable(a.as_fd(), secs(5)));
    a.discard_pending();
    assert_eq!(a.receive(), vec![]);
    assert_eq!(b.receive(), vec![]);
}

#[test]
fn notify_from_another_user_is_rejected() {
    if !rustix::process::getuid().is_root() {
        println!("skipped: needs root to send as another user");
        return;
    }
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("1")
        .output()
        .is_err()
    {
        println!("skipped: python3 not found");
        return;
    }
    // The service's user is 4321; a datagram from uid 65534 is not believed, root's is.
    let sock = NotifySocket::bind("web", 4321).unwrap();
    let name = sock.env_value().trim_start_matches('@').to_string();
    let send = format!(
        "import socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); \
         s.sendto(b'READY=1', '\\0{name}')"
    );
    let st = std::process::Command::new("python3")
        .arg("-c")
        .arg(&send)
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(st.success());
    let got = receive(&sock, 1);
    assert!(
        matches!(got.as_slice(), [Notification::Rejected(r)] if r.contains("uid 65534")),
        "{got:?}"
    );
    let st = std::process::Command::new("python3")
        .arg("-c")
        .arg(&send)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(receive(&sock, 1), vec![Notification::Ready]);
}

#[test]
fn ready_fd_newline_from_a_process() {
    let (mut pipe, w) = ReadyPipe::new().unwrap();
    assert_eq!(pipe.on_readable(), PipeState::Pending);
    // A service that writes a partial line, waits, then the newline (as fd 1 here: std's
    // Command cannot place an fd at 3 without unsafe; the spawn path does that via Stdio.extra).
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("printf ok; sleep 0.2; echo; sleep 30")
        .process_group(0)
        .stdout(std::process::Stdio::from(w))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + secs(5);
    let mut states = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "never ready: {states:?}");
        if wait_readable(pipe.as_fd(), Duration::from_millis(100)) {
            let s = pipe.on_readable();
            states.push(s);
            if s != PipeState::Pending {
                break;
            }
        }
    }
    assert_eq!(states.last(), Some(&PipeState::Ready), "{states:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn ready_fd_closed_without_newline() {
    let (mut pipe, w) = ReadyPipe::new().unwrap();
    let mut w = std::fs::File::from(w);
    w.write_all(b"no newline").unwrap();
    drop(w);
    assert!(wait_readable(pipe.as_fd(), secs(5)));
    assert_eq!(pipe.on_readable(), PipeState::Closed);
}
