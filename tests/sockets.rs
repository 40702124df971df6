//! Socket activation (`[socket]`), on-demand start and idle stop, and the cgroup v2 fallback on
//! this cgroup v1 host: init as an ordinary process, services in python3 (the host's; a scratch
//! rootfs has no helper that serves on fd 3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::{ConfigDir, QUICK, SLOW, Standalone, free_port, poll_until, python, skip_or_fail};

fn start(dir: &ConfigDir) -> Standalone {
    common::start_in(dir)
}

/// Sends `msg`, half-closes, reads the answer to EOF.
fn ask(port: u16, msg: &str) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(SLOW)).unwrap();
    c.write_all(msg.as_bytes()).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// A service that prints its activation environment, then answers every connection on its
/// first passed fd with "hello <request>" and, when `once`, exits after one.
const SERVE: &str = r#"
import os, socket, sys
fds = int(os.environ.get("LISTEN_FDS", "0"))
print("env pid=%d LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s" % (os.getpid(), os.environ.get("LISTEN_PID"), fds, os.environ.get("LISTEN_FDNAMES")), flush=True)
for fd in range(3, 3 + fds):
    s = socket.socket(fileno=fd)
    print("fd %d type=%d family=%d" % (fd, s.type, s.family), flush=True)
    s.detach()
s = socket.socket(fileno=3)
once = len(sys.argv) > 1 and sys.argv[1] == "once"
while True:
    c, _ = s.accept()
    data = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        data += d
    c.sendall(b"hello " + data)
    c.close()
    if once:
        sys.exit(0)
"#;

#[test]
fn socket_activation_passes_fds_names_and_listen_pid() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    dir.file("serve.py", SERVE);
    let port = free_port();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unix = dir.path().join("run/web.sock");
    let v6 = Path::new("/proc/net/if_inet6").exists();
    let mut listen = vec![
        format!("tcp:127.0.0.1:{port}"),
        format!("unix:{}", unix.display()),
        format!("udp:127.0.0.1:{udp}"),
    ];
    let mut names = vec!["http".to_string(), "admin".to_string(), "dns".to_string()];
    if v6 {
        // Beside a 0.0.0.0 listener on one port: IPV6_V6ONLY makes that possible.
        let shared = free_port();
        listen.push(format!("tcp:0.0.0.0:{shared}"));
        listen.push(format!("tcp:[::]:{shared}"));
        names.push("v4".into());
        names.push("v6".into());
    }
    let q = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    dir.service(
        "web",
        &format!(
            "command = [\"python3\", \"{}\"]\n[socket]\nlisten = [{}]\nnames = [{}]\nmode = \"0600\"\n",
            dir.path().join("serve.py").display(),
            q(&listen),
            q(&names)
        ),
    );
    let init = start(&dir);
    init.expect_output("web: env pid=", QUICK);
    let out = init.output();
    let line = out.lines().find(|l| l.contains("web: env pid=")).unwrap();
    let pid = line.split("pid=").nth(1).unwrap().split(' ').next().unwrap();
    assert!(line.contains(&format!("LISTEN_PID={pid} ")), "LISTEN_PID is the service's own pid: {line}");
    assert!(line.contains(&format!("LISTEN_FDS={}", listen.len())), "{line}");
    assert!(line.contains(&format!("LISTEN_FDNAMES={}", names.join(":"))), "{line}");
    // fd 3 tcp (SOCK_STREAM=1, AF_INET=2), 4 unix (AF_UNIX=1), 5 udp (SOCK_DGRAM=2).
    init.expect_output("fd 3 type=1 family=2", QUICK);
    init.expect_output("fd 4 type=1 family=1", QUICK);
    init.expect_output("fd 5 type=2 family=2", QUICK);
    if v6 {
        init.expect_output("fd 7 type=1 family=10", QUICK);
    }
    assert_eq!(ask(port, "you"), "hello you");
    let mode = std::fs::metadata(&unix).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "unix socket mode");
    // init's copy of the unix socket accepts connections into the service's backlog.
    UnixStream::connect(&unix).unwrap();
}

#[test]
fn on_demand_connection_made_before_the_start_is_answered() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    dir.file("serve.py", SERVE);
    let port = free_port();
    dir.service(
        "web",
        &format!(
            "command = [\"python3\", \"{}\"]\nstart = \"on-demand\"\n[socket]\nlisten = [\"tcp:127.0.0.1:{port}\"]\n",
            dir.path().join("serve.py").display()
        ),
    );
    let init = start(&dir);
    let sock = dir.path().join("init.sock");
    let status = || common::run_init(&["status", "web", "--socket", sock.to_str().unwrap()]).stdout;
    assert!(poll_until(QUICK, || status().contains("Inactive")), "{}", init.output());
    // The listener exists before the service: this connection waits in its backlog.
    assert_eq!(ask(port, "early"), "hello early");
    init.expect_output("web: connection waiting, starting it", QUICK);
    init.expect_output("web: env pid=", QUICK);
    assert_eq!(init.output().matches("web: env pid=").count(), 1, "{}", init.output());
}

#[test]
fn a_restart_loses_no_connection_waiting_in_the_backlog() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    dir.file("serve.py", SERVE);
    let port = free_port();
    // Answers one connection per run, then exits and is restarted: every other connection waits
    // in the backlog of init's socket across the restart.
    dir.service(
        "web",
        &format!(
            "command = [\"python3\", \"{}\", \"once\"]\n[restart]\nstrategy = \"always\"\nbackoff = \"100ms\"\nmax-backoff = \"100ms\"\n[socket]\nlisten = [\"tcp:127.0.0.1:{port}\"]\n",
            dir.path().join("serve.py").display()
        ),
    );
    let init = start(&dir);
    init.expect_output("web: env pid=", QUICK);
    let clients: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.set_read_timeout(Some(SLOW)).unwrap();
                c.write_all(format!("n{i}").as_bytes()).unwrap();
                c.shutdown(std::net::Shutdown::Write).unwrap();
                let mut out = String::new();
                c.read_to_string(&mut out).unwrap();
                out
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        assert_eq!(c.join().unwrap(), format!("hello n{i}"));
    }
    // One run per connection (its line reaches init's log a moment after its answer).
    assert!(poll_until(QUICK, || init.output().matches("web: env pid=").count() >= 8), "{}", init.output());
}

#[test]
fn idle_timeout_stops_an_activated_service_and_the_next_connection_starts_it() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    dir.file("serve.py", SERVE);
    let port = free_port();
    dir.service(
        "web",
        &format!(
            "command = [\"python3\", \"{}\"]\nstart = \"on-demand\"\nidle-timeout = \"1s\"\n[socket]\nlisten = [\"tcp:127.0.0.1:{port}\"]\n",
            dir.path().join("serve.py").display()
        ),
    );
    let init = start(&dir);
    assert!(poll_until(QUICK, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    assert_eq!(ask(port, "1"), "hello 1");
    init.expect_output("web: idle for 1s, stopping", QUICK);
    init.expect_output("web: stopped", QUICK);
    assert_eq!(ask(port, "2"), "hello 2");
    assert!(poll_until(QUICK, || init.output().matches("web: env pid=").count() == 2), "{}", init.output());
}

#[test]
fn reload_keeps_an_unchanged_socket_and_rebinds_a_changed_one() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    dir.file("serve.py", SERVE);
    let (p1, p2) = (free_port(), free_port());
    let web = |arg: &str, port: u16| {
        format!(
            "command = [\"python3\", \"{}\", \"{arg}\"]\n[socket]\nlisten = [\"tcp:127.0.0.1:{port}\"]\n",
            dir.path().join("serve.py").display()
        )
    };
    dir.service("web", &web("a", p1));
    let init = start(&dir);
    init.expect_output("web: env pid=", QUICK);
    assert_eq!(ask(p1, "1"), "hello 1");
    let sock = dir.path().join("init.sock");
    let reload = || common::run_init(&["reload", "--socket", sock.to_str().unwrap()]);
    // The command changes, the [socket] table does not: same socket, the service restarts.
    dir.service("web", &web("b", p1));
    assert_eq!(reload().code, 0);
    assert!(poll_until(QUICK, || init.output().matches("web: env pid=").count() == 2), "{}", init.output());
    assert_eq!(ask(p1, "2"), "hello 2");
    // Another port: the old socket is closed, the new one bound.
    dir.service("web", &web("b", p2));
    assert_eq!(reload().code, 0);
    assert!(poll_until(QUICK, || init.output().matches("web: env pid=").count() == 3), "{}", init.output());
    assert_eq!(ask(p2, "3"), "hello 3");
    assert!(poll_until(QUICK, || TcpStream::connect(("127.0.0.1", p1)).is_err()));
}

#[test]
fn a_listener_that_cannot_be_created_fails_its_service_with_the_reason() {
    let dir = ConfigDir::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    dir.service(
        "web",
        &format!("command = [\"sleep\", \"100\"]\n[socket]\nlisten = [\"tcp:127.0.0.1:{port}\"]\n"),
    );
    dir.service("other", "command = [\"sleep\", \"100\"]\n");
    let init = start(&dir);
    init.expect_output(&format!("web: cannot listen on tcp:127.0.0.1:{port}: Address in use"), QUICK);
    init.expect_output("other: running", QUICK);
}

#[test]
fn cgroup_limits_on_a_host_without_cgroup2_controllers_warn_once_or_refuse() {
    if std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| c.contains("memory"))
    {
        skip_or_fail("this test needs a host without the cgroup v2 memory controller (it has one)");
        return;
    }
    let dir = ConfigDir::new();
    dir.service(
        "soft",
        "command = [\"sleep\", \"100\"]\n[resource-limit]\nmemory = \"64 MiB\"\npids-max = 10\n",
    );
    dir.service(
        "hard",
        "command = [\"sleep\", \"100\"]\n[resource-limit]\nmemory = \"64 MiB\"\nrequired = true\n",
    );
    let init = start(&dir);
    init.expect_output("soft: [resource-limit] memory, pids-max not applied:", QUICK);
    init.expect_output("soft: running", QUICK);
    init.expect_output(
        "hard: not started: [resource-limit] memory cannot be applied and required = true: ",
        QUICK,
    );
    init.expect_output("hard: failed", QUICK);
    assert_eq!(init.output().matches("soft: [resource-limit]").count(), 1, "{}", init.output());
}
