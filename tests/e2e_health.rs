//! End-to-end tests of health checks and readiness (issue 5) against a real running init
//! (standalone, `init --config DIR --socket TMP/init.sock`): readiness gating of a dependent by each
//! readiness kind (healthy over HTTP, notify with `init notify --ready`, `fd:3`, started), liveness
//! restart after `max-failed` failures, `on-unhealthy = "stop"`, `start-timeout`, and a hanging exec
//! probe killed with its children. The endpoints are a `TcpListener` thread of the test and busybox
//! `httpd`. States are waited for with `init wait`, never with fixed sleeps. See docs/health.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::thread;

use common::{
    ConfigDir, QUICK, Run, SLOW, Standalone, TempDir, alive, busybox, init_bin, init_command, poll_until,
    run_cmd, skip_or_fail,
};

// ------------------------------------------------------------------------------------------ harness

/// A running init (standalone) with its control socket.
struct Init {
    proc: Standalone,
    sock: PathBuf,
    _cfg: ConfigDir,
    _work: TempDir,
}

impl Init {
    fn start(cfg: ConfigDir, work: TempDir) -> Init {
        let sock = work.path().join("init.sock");
        let mut cmd = init_command(&["--config"]);
        cmd.arg(cfg.path()).arg("--socket").arg(&sock);
        let init = Init { proc: Standalone::start_cmd(cmd), sock, _cfg: cfg, _work: work };
        let up = poll_until(QUICK, || init.sock.exists() && init.ctl(&["list"]).code == 0);
        assert!(up, "init never answered; output:\n{}", init.proc.output());
        init
    }

    fn ctl(&self, args: &[&str]) -> Run {
        let mut c = init_command(&["--socket"]);
        c.arg(&self.sock).args(args);
        run_cmd(c, SLOW)
    }

    fn wait(&self, name: &str, state: &str) {
        let r = self.ctl(&["wait", name, state, "--timeout", "30s"]);
        assert_eq!(
            r.code,
            0,
            "{name} never {state}: {r:?}\nstatus: {}\noutput:\n{}",
            self.status(),
            self.proc.output()
        );
    }

    fn status(&self) -> String {
        self.ctl(&["status"]).stdout
    }

    /// `status --json NAME` field `key` (unquoted; None for null).
    fn field(&self, name: &str, key: &str) -> Option<String> {
        let r = self.ctl(&["--json", "status", name]);
        assert_eq!(r.code, 0, "{r:?}");
        let json = r.stdout;
        let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
        let rest = &json[at..];
        let end = if let Some(quoted) = rest.strip_prefix('"') {
            quoted.find('"').map_or(rest.len(), |i| i + 2)
        } else {
            rest.find([',', '}']).unwrap_or(rest.len())
        };
        let v = rest[..end].trim().trim_matches('"');
        if v == "null" { None } else { Some(v.to_string()) }
    }

    fn pid(&self, name: &str) -> Option<i32> {
        self.field(name, "pid").and_then(|p| p.parse().ok())
    }

    fn state(&self, name: &str) -> String {
        self.field(name, "state").unwrap_or_default()
    }
}

/// A loopback HTTP server run by a thread of the test: answers every request with `status`
/// (0: closes the connection without answering) and counts the requests it has seen.
struct Endpoint {
    port: u16,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
}

impl Endpoint {
    fn new(status: u16) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let st = Arc::new(AtomicU16::new(status));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (st.clone(), hits.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(QUICK));
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let code = s.load(Ordering::SeqCst);
                if code != 0 {
                    let reply =
                        format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    let _ = conn.write_all(reply.as_bytes());
                }
            }
        });
        Endpoint { port, status: st, hits }
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/healthz", self.port)
    }
}

/// busybox httpd serving `/healthz` on a free loopback port; killed (by pid) on drop.
struct Httpd {
    child: Child,
    port: u16,
    _www: TempDir,
}

impl Httpd {
    fn start() -> Option<Httpd> {
        let Some(bb) = busybox() else {
            skip_or_fail("no busybox for httpd");
            return None;
        };
        let www = TempDir::new("www");
        www.write("healthz", "ok\n");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(bb)
            .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
            .arg(www.path())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let h = Httpd { child, port, _www: www };
        assert!(
            poll_until(QUICK, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "httpd never listened"
        );
        Some(h)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/healthz", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sh(script: &str) -> String {
    format!("command = [\"/bin/sh\", \"-c\", {script:?}]\n")
}

/// A shell loop waiting for `file` to exist.
fn until(file: &Path) -> String {
    format!("while [ ! -e {} ]; do sleep 0.02; done", file.display())
}

// ------------------------------------------------------------------------------------------ readiness

/// `a` (configured with `a_toml`) must become ready before `b` (which requires it) starts. The
/// test waits until `a` is Starting and `b` Blocked, checks that `b` never ran, makes `a` ready
/// with `trigger`, then waits for `b` to run.
fn assert_gates(work: TempDir, a_toml: &str, trigger: impl FnOnce()) -> Init {
    let marker = work.path().join("b-ran");
    let cfg = ConfigDir::new();
    cfg.service("a", a_toml);
    cfg.service(
        "b",
        &format!("{}requires = [\"a\"]\n", sh(&format!("touch {}; exec sleep 100000", marker.display()))),
    );
    let init = Init::start(cfg, work);
    init.wait("a", "starting");
    init.wait("b", "blocked");
    assert!(!marker.exists(), "b ran before a was ready");
    assert_eq!(init.pid("b"), None);
    let r = init.ctl(&["health", "a"]);
    assert_eq!(r.code, 1, "a is not ready yet: {r:?}");
    trigger();
    init.wait("a", "running");
    init.wait("b", "running");
    assert!(poll_until(QUICK, || marker.exists()));
    init
}

#[test]
fn ready_healthy_gates_the_dependent_until_the_first_passing_http_probe() {
    let ep = Endpoint::new(503);
    let a = format!(
        "command = [\"/bin/sleep\", \"100000\"]\nready = \"healthy\"\n[healthiness]\n\
         http-endpoint = \"{}\"\ninterval = \"100ms\"\n",
        ep.url()
    );
    let init = assert_gates(TempDir::new("health"), &a, || {
        // Several failing probes have been made by now, and b stayed blocked.
        assert!(poll_until(QUICK, || ep.hits() >= 3), "probes: {}", ep.hits());
        ep.set(200);
    });
    assert_eq!(init.field("a", "health").as_deref(), Some("healthy"));
    assert_eq!(init.ctl(&["health"]).code, 0);
}

#[test]
fn ready_auto_with_a_check_is_healthy() {
    let ep = Endpoint::new(500);
    let a = format!(
        "command = [\"/bin/sleep\", \"100000\"]\n[healthiness]\nhttp-endpoint = \"{}\"\ninterval = \"100ms\"\n",
        ep.url()
    );
    assert_gates(TempDir::new("health"), &a, || {
        assert!(poll_until(QUICK, || ep.hits() >= 2), "probes: {}", ep.hits());
        ep.set(204);
    });
}

#[test]
fn ready_notify_with_init_notify_from_a_shell_service() {
    let work = TempDir::new("health");
    let go = work.path().join("go");
    let init_path = init_bin().unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_init")));
    let a = format!(
        "{}ready = \"notify\"\n",
        sh(&format!(
            "{init} notify --status='warming up'; {until}; {init} notify --ready --status=serving; \
             exec sleep 100000",
            init = init_path.display(),
            until = until(&go)
        ))
    );
    let init = assert_gates(work, &a, || std::fs::write(&go, "").unwrap());
    // STATUS= is shown by status.
    assert!(poll_until(QUICK, || init.status().contains("serving")), "{}", init.status());
}

#[test]
fn notify_status_is_shown_while_starting() {
    let work = TempDir::new("health");
    let go = work.path().join("go");
    let init_path = init_bin().unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_init")));
    let cfg = ConfigDir::new();
    cfg.service(
        "a",
        &format!(
            "{}ready = \"notify\"\n",
            sh(&format!(
                "{init} notify --status='warming up'; {until}; {init} notify --ready; exec sleep 100000",
                init = init_path.display(),
                until = until(&go)
            ))
        ),
    );
    let init = Init::start(cfg, work);
    assert!(poll_until(QUICK, || init.status().contains("warming up")), "{}", init.status());
    assert_eq!(init.state("a"), "Starting");
    std::fs::write(&go, "").unwrap();
    init.wait("a", "running");
}

#[test]
fn ready_fd3_gates_the_dependent_until_a_newline_on_fd_3() {
    let work = TempDir::new("health");
    let go = work.path().join("go");
    let a = format!("{}ready = \"fd:3\"\n", sh(&format!("{}; echo >&3; exec sleep 100000", until(&go))));
    assert_gates(work, &a, || std::fs::write(&go, "").unwrap());
}

#[test]
fn ready_started_does_not_wait_for_a_failing_check() {
    let ep = Endpoint::new(503);
    let work = TempDir::new("health");
    let marker = work.path().join("b-ran");
    let cfg = ConfigDir::new();
    cfg.service(
        "a",
        &format!(
            "command = [\"/bin/sleep\", \"100000\"]\nready = \"started\"\n[healthiness]\n\
             http-endpoint = \"{}\"\ninterval = \"100ms\"\n",
            ep.url()
        ),
    );
    cfg.service(
        "b",
        &format!("{}requires = [\"a\"]\n", sh(&format!("touch {}; exec sleep 100000", marker.display()))),
    );
    let init = Init::start(cfg, work);
    init.wait("a", "running");
    init.wait("b", "running");
    assert!(poll_until(QUICK, || marker.exists()));
    assert!(poll_until(QUICK, || ep.hits() >= 1), "a's check still runs (liveness)");
    assert_ne!(init.field("a", "health").as_deref(), Some("healthy"));
}

// ------------------------------------------------------------------------------------------ liveness

/// A check against busybox httpd, `max-failed = 3`, 200 ms apart.
fn checked(url: &str, on_unhealthy: &str) -> String {
    format!(
        "command = [\"/bin/sleep\", \"100000\"]\n[restart]\nbackoff = \"100ms\"\n[healthiness]\n\
         http-endpoint = \"{url}\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nmax-failed = 3\n\
         on-unhealthy = \"{on_unhealthy}\"\n"
    )
}

#[test]
fn liveness_restarts_the_service_after_max_failed_failures() {
    let Some(mut httpd) = Httpd::start() else { return };
    let cfg = ConfigDir::new();
    cfg.service("web", &checked(&httpd.url(), "restart"));
    let init = Init::start(cfg, TempDir::new("health"));
    init.wait("web", "running");
    assert!(poll_until(QUICK, || init.field("web", "health").as_deref() == Some("healthy")));
    let first = init.pid("web").unwrap();
    let events = Standalone::start_cmd({
        let mut c = init_command(&["--socket"]);
        c.arg(&init.sock).arg("events");
        c
    });

    httpd.stop(); // kill the endpoint
    init.proc.expect_output("web: unhealthy: connect 127.0.0.1", SLOW);
    assert!(init.proc.output().contains("Connection refused"), "{}", init.proc.output());
    assert!(poll_until(SLOW, || !alive(first)), "the unhealthy process is stopped");
    assert!(
        poll_until(SLOW, || init.pid("web").is_some_and(|p| p != first)),
        "web was not started again: {}",
        init.status()
    );
    let restarts: u32 = init.field("web", "restarts").unwrap().parse().unwrap();
    assert!(restarts >= 1, "{}", init.status());
    events.expect_output("web Failed unhealthy (unhealthy: connect 127.0.0.1", QUICK);
    events.expect_output("web Starting pid", QUICK);
    // The new run is not ready while the endpoint is dead.
    assert_eq!(init.ctl(&["health", "web"]).code, 1, "{}", init.status());
}

#[test]
fn liveness_counts_consecutive_failures_before_acting() {
    let ep = Endpoint::new(200);
    let cfg = ConfigDir::new();
    cfg.service("web", &checked(&ep.url(), "restart"));
    let init = Init::start(cfg, TempDir::new("health"));
    init.wait("web", "running");
    let first = init.pid("web").unwrap();
    let before = ep.hits();
    ep.set(503);
    assert!(poll_until(SLOW, || !alive(first)), "{}", init.proc.output());
    let failed = ep.hits() - before;
    assert!(failed >= 3, "restarted after {failed} failed probes; max-failed is 3");
    init.proc.expect_output("web: unhealthy: GET /healthz: 503", QUICK);
    ep.set(200);
    assert!(poll_until(SLOW, || init.pid("web").is_some_and(|p| p != first)));
    init.wait("web", "running");
    assert!(poll_until(SLOW, || init.ctl(&["health", "web"]).code == 0), "{}", init.status());
}

#[test]
fn on_unhealthy_stop_stops_the_service_for_good() {
    let ep = Endpoint::new(200);
    // keep's probes, against their own endpoint, show that time passes in init's loop.
    let clock = Endpoint::new(200);
    let cfg = ConfigDir::new();
    cfg.service("keep", &checked(&clock.url(), "ignore"));
    cfg.service("web", &checked(&ep.url(), "stop"));
    let init = Init::start(cfg, TempDir::new("health"));
    init.wait("web", "running");
    let first = init.pid("web").unwrap();
    ep.set(503);
    assert!(poll_until(SLOW, || !alive(first)), "{}", init.proc.output());
    init.proc.expect_output("web: unhealthy: GET /healthz: 503", QUICK);
    // A failed run that is not retried: Failed, with the probe's error as the reason.
    init.wait("web", "failed");
    let reason = init.field("web", "reason").unwrap_or_default();
    assert!(reason.contains("unhealthy: GET /healthz: 503"), "{reason:?}");
    ep.set(200);
    // Given every chance to come back (five more probe rounds of keep), it stays down.
    let hits = ep.hits();
    let tick = clock.hits();
    assert!(poll_until(SLOW, || clock.hits() >= tick + 5));
    assert_eq!(init.pid("web"), None, "{}", init.status());
    assert_eq!(ep.hits(), hits, "no probes for a stopped service");
    assert_eq!(init.field("web", "restarts").as_deref(), Some("0"));
    assert_eq!(init.ctl(&["health", "web"]).code, 1);
}

#[test]
fn start_timeout_fails_a_service_that_never_becomes_ready() {
    let work = TempDir::new("health");
    let marker = work.path().join("b-ran");
    let cfg = ConfigDir::new();
    cfg.service("keep", "command = [\"/bin/sleep\", \"100000\"]\n");
    cfg.service(
        "slow",
        "command = [\"/bin/sleep\", \"100000\"]\nready = \"fd:3\"\nstart-timeout = \"500ms\"\n",
    );
    cfg.service(
        "b",
        &format!("{}requires = [\"slow\"]\n", sh(&format!("touch {}; exec sleep 100000", marker.display()))),
    );
    let init = Init::start(cfg, work);
    init.wait("slow", "starting");
    let pid = init.pid("slow").unwrap();
    init.wait("slow", "failed");
    let reason = init.field("slow", "reason").unwrap_or_default();
    assert!(reason.contains("start timeout"), "reason: {reason:?}; {}", init.status());
    assert!(poll_until(QUICK, || !alive(pid)), "the process that timed out is killed");
    assert!(!marker.exists(), "its dependent never ran");
    assert_ne!(init.state("b"), "Running");
    let r = init.ctl(&["why", "b"]);
    assert!(r.stdout.contains("slow") && r.stdout.contains("Failed"), "{r:?}");
}

#[test]
fn a_hanging_exec_probe_is_killed_with_its_children() {
    let work = TempDir::new("health");
    let probe_pid = work.path().join("probe.pid");
    let child_pid = work.path().join("child.pid");
    let cfg = ConfigDir::new();
    // `$$$$`: a literal `$$` after Horust's `${VAR}` expansion of service files.
    let check = format!(
        "echo $$$$ > {p}.tmp; mv {p}.tmp {p}; sleep 1000 & echo $! > {c}.tmp; mv {c}.tmp {c}; wait",
        p = probe_pid.display(),
        c = child_pid.display()
    );
    cfg.service(
        "web",
        &format!(
            "command = [\"/bin/sleep\", \"100000\"]\n[healthiness]\ncommand = [\"/bin/sh\", \"-c\", {check:?}]\n\
             timeout = \"500ms\"\ninterval = \"1h\"\n"
        ),
    );
    let init = Init::start(cfg, work);
    assert!(poll_until(QUICK, || probe_pid.exists() && child_pid.exists()), "{}", init.proc.output());
    let read = |p: &Path| -> i32 { std::fs::read_to_string(p).unwrap().trim().parse().unwrap() };
    let (probe, child) = (read(&probe_pid), read(&child_pid));
    assert!(
        poll_until(QUICK, || !alive(probe) && !alive(child)),
        "probe {probe} or its child {child} lives on"
    );
    // ... and both are reaped, not left as zombies.
    assert!(
        poll_until(QUICK, || !Path::new(&format!("/proc/{probe}")).exists()
            && !Path::new(&format!("/proc/{child}")).exists()),
        "zombies left"
    );
    // Failing before the first pass only means "not ready": the service is still starting.
    assert_eq!(init.state("web"), "Starting", "{}", init.status());
    assert!(init.proc.pid() > 0);
}

/// As PID 1 of a PID namespace in a scratch rootfs, a shell service signals readiness with the
/// rootfs's own `/init notify --ready` once the test creates /tmp/go; its dependent starts only
/// after that.
#[test]
fn notify_as_pid1_with_the_rootfs_init() {
    let Some(_) = common::pidns_prereqs() else { return };
    let rootfs = common::Rootfs::new();
    rootfs.service(
        "a",
        "command = [\"/bin/sh\", \"-c\", \"while [ ! -e /tmp/go ]; do sleep 0.02; done; /init notify --ready; \
         exec sleep 100000\"]\nready = \"notify\"\n",
    );
    rootfs.service(
        "b",
        "command = [\"/bin/sh\", \"-c\", \"echo b-started; exec sleep 100000\"]\nrequires = [\"a\"]\n",
    );
    let go = rootfs.host_path("tmp/go");
    let mut p = common::Pid1::start(rootfs, &[]);
    p.expect_output("init: b: blocked: waiting for a", QUICK);
    // (Not a process count: a's waiting loop forks a short `sleep` now and then.)
    assert!(!p.output().contains("b-started") && !p.output().contains("init: b: running"), "{}", p.output());
    std::fs::write(&go, "").unwrap();
    p.expect_output("b: b-started", QUICK);
    p.expect_output("init: a: running", QUICK);
    p.signal(common::Signal::TERM);
    assert_eq!(p.wait_exit(SLOW), Some(0), "{}", p.output());
}
