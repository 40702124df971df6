//! Level 2, OCI: the static binary as PID 1 of a real OCI container run by `runc`, in a bundle whose
//! rootfs holds only /init, /bin/busybox (+ applet links), empty mount points and /etc/init.
//! Container mode is detected on its own (pid 1, `reboot(CAD_OFF)` refused): no flag is passed.
//!
//! - `runc kill ID TERM` → services stop in reverse dependency order, `runc run` exits 0;
//! - a service that fails with `[failure] strategy = "shutdown"` → the container exits with its code;
//! - tini mode (`/init -- CMD`): CMD's exit code, and 128+15 when CMD dies of the forwarded TERM.
//!
//! Each test has its own container id and its own runc state directory (`runc --root`), and
//! `runc delete -f` runs in cleanup whatever happened. Needs root and runc (Debian `runc`);
//! skipped with a reason otherwise, failed under `INIT_E2E=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{
    QUICK, Rootfs, SLOW, Standalone, TempDir, busybox, init_bin, is_root, run_cmd, skip_or_fail, which,
};

/// Root, runc, a static busybox and a static init; `None` after [`skip_or_fail`] said why.
fn runc_prereqs() -> Option<PathBuf> {
    if !is_root() {
        skip_or_fail("not root: runc needs root here (rootless runc fails on this host)");
        return None;
    }
    let Some(runc) = which("runc") else {
        skip_or_fail("runc not in PATH (apt-get install runc)");
        return None;
    };
    if busybox().is_none() || init_bin().is_none() {
        skip_or_fail("no static busybox or no static init binary (cargo build --release)");
        return None;
    }
    Some(runc)
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Replace exactly one occurrence of `from` (panics otherwise: `runc spec` changed its output).
fn edit(json: &mut String, from: &str, to: &str) {
    assert_eq!(json.matches(from).count(), 1, "`runc spec` output has no single {from:?}:\n{json}");
    *json = json.replacen(from, to, 1);
}

/// An OCI container: `runc spec` in a bundle dir, edited (no terminal, our args, an absolute
/// writable rootfs), run with `runc --root STATE run --bundle B ID` in the foreground, output
/// captured. Drop: `runc delete -f ID` (kills what is left), then the captured `runc run`.
struct Container {
    // Dropped in this order after `Drop::drop` ran `runc delete -f`: the captured `runc run`
    // first, then the directories.
    run: Option<Standalone>,
    _rootfs: Rootfs,
    bundle: TempDir,
    state: TempDir,
    runc: PathBuf,
    id: String,
}

impl Container {
    fn new(runc: &Path, tag: &str, rootfs: Rootfs, args: &[&str]) -> Container {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let id = format!("ankh-{tag}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let bundle = TempDir::new("bundle");
        let state = TempDir::new("runc-state");
        let spec = run_cmd(
            {
                let mut c = Command::new(runc);
                c.arg("spec").current_dir(bundle.path());
                c
            },
            QUICK,
        );
        assert_eq!(spec.code, 0, "runc spec: {spec:?}");
        let path = bundle.path().join("config.json");
        let mut json = std::fs::read_to_string(&path).unwrap();
        edit(&mut json, "\"terminal\": true", "\"terminal\": false");
        let argv: Vec<String> = args.iter().map(|a| json_str(a)).collect();
        edit(&mut json, "\"args\": [\n\t\t\t\"sh\"\n\t\t]", &format!("\"args\": [{}]", argv.join(", ")));
        edit(
            &mut json,
            "\"path\": \"rootfs\"",
            &format!("\"path\": {}", json_str(&rootfs.path().to_string_lossy())),
        );
        edit(&mut json, "\"readonly\": true", "\"readonly\": false");
        std::fs::write(&path, json).unwrap();
        Container { run: None, _rootfs: rootfs, bundle, state, runc: runc.to_path_buf(), id }
    }

    fn runc(&self) -> Command {
        let mut c = Command::new(&self.runc);
        c.arg("--root").arg(self.state.path());
        c
    }

    /// `runc run` in the foreground (as `docker run` without `-d`), output captured.
    fn start(&mut self) -> &Standalone {
        let mut c = self.runc();
        c.arg("run").arg("--bundle").arg(self.bundle.path()).arg(&self.id);
        self.run = Some(Standalone::start_cmd(c));
        self.run.as_ref().unwrap()
    }

    fn proc(&self) -> &Standalone {
        self.run.as_ref().expect("start() first")
    }

    fn expect_output(&self, needle: &str) {
        self.proc().expect_output(needle, SLOW);
    }

    /// `runc kill ID SIG`: the runtime delivers SIG to the container's PID 1.
    fn kill(&self, sig: &str) {
        let mut c = self.runc();
        c.arg("kill").arg(&self.id).arg(sig);
        let r = run_cmd(c, QUICK);
        assert_eq!(r.code, 0, "runc kill {} {sig}: {r:?}\ncontainer output:\n{}", self.id, self.output());
    }

    /// `runc run`'s exit code (the container's PID 1's), panicking with the output on timeout.
    fn wait_exit(&mut self) -> i32 {
        let out = self.output();
        let run = self.run.as_mut().expect("start() first");
        run.wait_exit(SLOW).unwrap_or_else(|| panic!("the container did not exit within {SLOW:?}:\n{out}"))
    }

    fn output(&self) -> String {
        self.run.as_ref().map(|r| r.output()).unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let mut c = self.runc();
        c.args(["delete", "-f"]).arg(&self.id);
        let _ = c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status();
        if std::thread::panicking() {
            eprintln!("--- container {} output:\n{}", self.id, self.output());
        }
    }
}

/// A long-running busybox service that announces itself and says when it gets SIGTERM.
fn talker(name: &str) -> String {
    format!(
        "command = [\"/bin/sh\", \"-c\", \"trap 'echo {name} stopping; exit 0' TERM; echo {name} up; \
         while :; do sleep 1 & wait $!; done\"]\n"
    )
}

/// Index of `needle` in `hay`, panicking with `hay` when absent.
fn pos(hay: &str, needle: &str) -> usize {
    hay.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the output:\n{hay}"))
}

#[test]
fn runc_kill_term_stops_services_in_reverse_dependency_order_and_exits_0() {
    let Some(runc) = runc_prereqs() else { return };
    let rootfs = Rootfs::new();
    rootfs.service("db", &talker("db"));
    rootfs.service("api", &format!("{}requires = [\"db\"]\n", talker("api")));
    rootfs.service("web", &format!("{}requires = [\"api\"]\n", talker("web")));
    let mut c = Container::new(&runc, "order", rootfs, &["/init"]);
    c.start();
    // Each service's lines are prefixed with its name on init's stdout. (Their order says nothing:
    // a dependent may start as soon as its dependency's exec succeeded, before it printed.)
    for name in ["db", "api", "web"] {
        c.expect_output(&format!("{name}: {name} up"));
    }

    c.kill("TERM");
    assert_eq!(c.wait_exit(), 0, "a requested shutdown exits 0:\n{}", c.output());
    let out = c.output();
    let (web, api, db) =
        (pos(&out, "web: web stopping"), pos(&out, "api: api stopping"), pos(&out, "db: db stopping"));
    assert!(web < api && api < db, "stop order must be web, api, db:\n{out}");
}

#[test]
fn runc_term_sent_to_the_runc_process_is_forwarded_like_docker_run() {
    let Some(runc) = runc_prereqs() else { return };
    let rootfs = Rootfs::new();
    rootfs.service("db", &talker("db"));
    rootfs.service("web", &format!("{}requires = [\"db\"]\n", talker("web")));
    let mut c = Container::new(&runc, "fwd", rootfs, &["/init"]);
    c.start();
    c.expect_output("web: web up");
    c.proc().signal(common::Signal::TERM);
    assert_eq!(c.wait_exit(), 0, "{}", c.output());
    let out = c.output();
    assert!(pos(&out, "web: web stopping") < pos(&out, "db: db stopping"), "{out}");
}

#[test]
fn runc_service_failing_with_strategy_shutdown_exits_with_its_code() {
    let Some(runc) = runc_prereqs() else { return };
    let rootfs = Rootfs::new();
    rootfs.service("keeper", &talker("keeper"));
    rootfs.service(
        "bad",
        "command = [\"/bin/sh\", \"-c\", \"echo bad giving up; exit 7\"]\n\
         start-after = [\"keeper\"]\n\
         [failure]\nstrategy = \"shutdown\"\n",
    );
    let mut c = Container::new(&runc, "fail", rootfs, &["/init"]);
    c.start();
    let code = c.wait_exit();
    let out = c.output();
    assert!(out.contains("bad: bad giving up"), "{out}");
    assert_eq!(code, 7, "the exit code of the service whose failure shut everything down:\n{out}");
    assert!(out.contains("keeper: keeper stopping"), "the other service is stopped with its signal:\n{out}");
}

#[test]
fn runc_tini_mode_exit_code_is_the_childs() {
    let Some(runc) = runc_prereqs() else { return };
    let mut c = Container::new(
        &runc,
        "tini-rc",
        Rootfs::new(),
        &["/init", "--", "/bin/busybox", "sh", "-c", "exit 7"],
    );
    c.start();
    assert_eq!(c.wait_exit(), 7, "{}", c.output());
}

#[test]
fn runc_tini_mode_child_killed_by_forwarded_term_gives_143() {
    let Some(runc) = runc_prereqs() else { return };
    let argv = ["/init", "--", "/bin/busybox", "sh", "-c", "echo tini-child ready; exec sleep 1000"];
    let mut c = Container::new(&runc, "tini-term", Rootfs::new(), &argv);
    c.start();
    c.expect_output("tini-child ready");
    c.kill("TERM");
    assert_eq!(c.wait_exit(), 128 + 15, "{}", c.output());
}
