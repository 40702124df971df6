//! Real Docker: `docker/Dockerfile` builds the `FROM scratch` image (legacy builder, no registry),
//! and one container goes through its whole life: `docker run -d`, `docker logs` (every service's
//! lines prefixed `name: `), the `HEALTHCHECK` status (when the binary has `init health`), and
//! `docker stop -t 5` (exit code 0, well within the grace: the time is printed as MEASURE).
//!
//! The engine: `$DOCKER_HOST` when it answers (`.ci/run` starts a private dockerd and exports it);
//! else, as root with `dockerd` installed, the test starts its own private engine (no bridge, no
//! iptables, everything under a temp dir) and stops it at the end. When neither works the test
//! says why (with the tail of dockerd's log) and passes, or fails under `INIT_E2E=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{QUICK, SLOW, TempDir, busybox, init_bin, is_root, poll_until, run_cmd, skip_or_fail, which};

const DOCKER_STOP_GRACE_S: u64 = 5;

/// A Docker engine to talk to: the `DOCKER_HOST` to pass, and the private dockerd we started (if
/// any), stopped on drop.
struct Engine {
    host: Option<String>,
    own: Option<(Child, TempDir)>,
}

impl Engine {
    fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        if let Some(h) = &self.host {
            c.env("DOCKER_HOST", h);
        }
        // The legacy builder: no buildx plugin needed (BuildKit works too, it is not required).
        c.env("DOCKER_BUILDKIT", "0");
        c
    }

    fn answers(host: Option<&str>) -> bool {
        let mut c = Command::new("docker");
        c.arg("version").stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(h) = host {
            c.env("DOCKER_HOST", h);
        }
        c.status().is_ok_and(|s| s.success())
    }

    /// `Err(reason)` when there is no engine and none can be started.
    fn get() -> Result<Engine, String> {
        if which("docker").is_none() {
            return Err("no `docker` client in PATH (apt-get install docker.io)".into());
        }
        let env_host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        if Self::answers(env_host.as_deref()) {
            return Ok(Engine { host: env_host, own: None });
        }
        let mut why = match &env_host {
            Some(h) => format!("DOCKER_HOST={h} does not answer `docker version`"),
            None => "no engine at the default socket".to_string(),
        };
        if let Some(log) = std::env::var_os("INIT_E2E_DOCKER_LOG").map(PathBuf::from) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            why.push_str(&format!("; {} says:\n{}", log.display(), tail.join("\n")));
        }
        if !is_root() || which("dockerd").is_none() {
            return Err(format!("{why}; cannot start a private dockerd (needs root and dockerd)"));
        }
        Self::start_private().map_err(|e| format!("{why}; a private dockerd did not start either: {e}"))
    }

    fn start_private() -> Result<Engine, String> {
        // A short path: the socket path must fit in sun_path (108 bytes).
        let dir = TempDir::new("dockerd");
        let d = dir.path();
        let host = format!("unix://{}/docker.sock", d.display());
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("-H")
            .arg(&host)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run dockerd: {e}"))?;
        let mut engine = Engine { host: Some(host.clone()), own: Some((child, dir)) };
        if poll_until(SLOW, || Self::answers(Some(&host)) || engine.own_exited())
            && Self::answers(Some(&host))
        {
            eprintln!("started a private dockerd: {host}");
            return Ok(engine);
        }
        let log = engine.own.as_ref().map(|(_, d)| std::fs::read_to_string(d.path().join("dockerd.log")));
        Err(format!("no answer within {SLOW:?}; its log:\n{}", log.and_then(Result::ok).unwrap_or_default()))
    }

    fn own_exited(&mut self) -> bool {
        self.own.as_mut().is_some_and(|(c, _)| c.try_wait().ok().flatten().is_some())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some((mut child, dir)) = self.own.take() {
            // Only the dockerd this test started, by its pid; it stops its own containerd.
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let stopped = poll_until(SLOW, || child.try_wait().ok().flatten().is_some());
            if !stopped {
                let _ = child.kill();
                let _ = child.wait();
            }
            // dockerd leaves mounts under its data root when killed: removal may fail, not fatal.
            drop(dir);
        }
    }
}

/// Output of a docker command that must succeed.
fn docker_ok(engine: &Engine, args: &[&str], timeout: Duration) -> String {
    let mut c = engine.docker();
    c.args(args);
    let r = run_cmd(c, timeout);
    assert_eq!(r.code, 0, "docker {args:?} failed: {r:?}");
    r.stdout.trim().to_string()
}

/// Removes the container and the image whatever happened (only the ones this test created).
struct Cleanup<'a> {
    engine: &'a Engine,
    image: String,
    container: Option<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.container {
            if std::thread::panicking() {
                let mut c = self.engine.docker();
                c.args(["logs", id]);
                if let Ok(o) = c.output() {
                    eprintln!(
                        "--- docker logs {id}:\n{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
            let _ = self
                .engine
                .docker()
                .args(["rm", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self
            .engine
            .docker()
            .args(["rmi", "-f", &self.image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The build context `docker build -f docker/Dockerfile .` would send from the repository root,
/// staged in a temp dir with the binary under test and a static busybox (their paths are
/// build arguments).
fn stage_context(init: &Path, busybox: &Path) -> TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ctx = TempDir::new("docker-ctx");
    std::fs::create_dir_all(ctx.path().join("docker")).unwrap();
    // cp -a: the applet links in docker/rootfs/bin must stay symlinks.
    for dir in ["rootfs", "services"] {
        let st = Command::new("cp")
            .arg("-a")
            .arg(repo.join("docker").join(dir))
            .arg(ctx.path().join("docker"))
            .status()
            .unwrap();
        assert!(st.success(), "cp -a docker/{dir}");
    }
    std::fs::copy(init, ctx.path().join("init")).unwrap();
    std::fs::copy(busybox, ctx.path().join("busybox")).unwrap();
    ctx
}

fn logs(engine: &Engine, id: &str) -> String {
    let mut c = engine.docker();
    c.args(["logs", id]);
    let r = run_cmd(c, QUICK);
    r.output
}

#[test]
fn docker_scratch_image_runs_logs_reports_health_and_stops_cleanly() {
    if !is_root() {
        return skip_or_fail("not root: the Docker engine needs root here");
    }
    let (Some(init), Some(bb)) = (init_bin(), busybox()) else {
        return skip_or_fail("no static init binary or no static busybox");
    };
    let engine = match Engine::get() {
        Ok(e) => e,
        Err(why) => return skip_or_fail(&format!("no Docker engine: {why}")),
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let image = format!("ankh-e2e:{}", std::process::id());
    let mut cleanup = Cleanup { engine: &engine, image: image.clone(), container: None };

    // Build: FROM scratch, only COPY, so no network and no registry.
    let ctx = stage_context(&init, &bb);
    let dockerfile = repo.join("docker/Dockerfile");
    let t = Instant::now();
    docker_ok(
        &engine,
        &[
            "build",
            "-q",
            "-f",
            &dockerfile.to_string_lossy(),
            "--build-arg",
            "INIT=init",
            "--build-arg",
            "BUSYBOX=busybox",
            "-t",
            &image,
            &ctx.path().to_string_lossy(),
        ],
        Duration::from_secs(120),
    );
    eprintln!("MEASURE docker build (legacy builder): {} ms", t.elapsed().as_millis());
    let entry = docker_ok(&engine, &["image", "inspect", "-f", "{{json .Config.Entrypoint}}", &image], QUICK);
    assert_eq!(entry, "[\"/init\"]");

    // Run detached, no network but lo; health probes every second so the test is quick.
    let id = docker_ok(
        &engine,
        &["run", "-d", "--network", "none", "--health-interval", "1s", "--health-start-period", "1s", &image],
        SLOW,
    );
    cleanup.container = Some(id.clone());

    // Every service's output, prefixed with its name: web's banner and its request log (httpd -v
    // on stderr: `web: [::ffff:127.0.0.1]:PORT: response:200`), worker's fetch of web's page (it
    // starts only once web is ready, i.e. healthy).
    let wanted =
        ["web: serving /srv/www on :8080", "worker: started: web is up", "worker: web says: hello from ankh"];
    let complete = |l: &str| {
        wanted.iter().all(|w| l.contains(w))
            && l.lines().any(|line| line.starts_with("web: ") && line.contains("response:200"))
    };
    let all_there = poll_until(SLOW, || complete(&logs(&engine, &id)));
    assert!(all_there, "docker logs lacks some of {wanted:?} or web's request log:\n{}", logs(&engine, &id));

    // Health: `HEALTHCHECK CMD ["/init", "health"]` asks the running init over its socket.
    let status = || docker_ok(&engine, &["inspect", "-f", "{{.State.Health.Status}}", &id], QUICK);
    let healthy = poll_until(SLOW, || status() == "healthy");
    let last = docker_ok(&engine, &["inspect", "-f", "{{json .State.Health}}", &id], QUICK);
    assert!(healthy, "health status {:?}, last probes: {last}", status());

    // docker stop: SIGTERM, then SIGKILL after the grace. A clean, ordered stop exits 0 before it.
    let t = Instant::now();
    docker_ok(&engine, &["stop", "-t", &DOCKER_STOP_GRACE_S.to_string(), &id], SLOW);
    let took = t.elapsed();
    eprintln!("MEASURE docker stop -t {DOCKER_STOP_GRACE_S}: {} ms", took.as_millis());
    let code = docker_ok(&engine, &["inspect", "-f", "{{.State.ExitCode}}", &id], QUICK);
    let l = logs(&engine, &id);
    assert_eq!(
        code, "0",
        "docker stop must end in exit code 0 (137 = SIGKILLed at the end of the grace):\n{l}"
    );
    assert!(
        took < Duration::from_secs(DOCKER_STOP_GRACE_S),
        "docker stop took {took:?}, the grace is {DOCKER_STOP_GRACE_S} s"
    );
    assert!(l.contains("worker: stopping"), "worker gets its stop signal (it stops before web):\n{l}");
    drop(cleanup);
}
