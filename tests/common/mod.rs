//! Shared helpers for the end-to-end tests: find the static binary, build a scratch rootfs, run the
//! binary as PID 1 of a new PID namespace (`Pid1`) or as an ordinary process (`Standalone`), capture
//! its output, signal it, wait for output and exit, and clean up only what the test started.
//!
//! Use from a test file with `mod common;`. Every wait polls a state with a deadline; nothing here
//! sleeps a fixed time to wait for a state. See docs/testing.md.
//!
//! Gating: a test that lacks a tool (not root, no `unshare`, no busybox, no static binary) calls
//! [`skip_or_fail`], which prints `SKIP: reason` and lets the test return, or panics when
//! `INIT_E2E=1` (set by `.ci/run` / `.ci/test`), so a missing tool fails CI instead of hiding.
#![allow(dead_code)] // each test file uses a different part of this module
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use rustix::process::Signal;
use rustix::process::{Pid, kill_process, kill_process_group};

/// Default deadline for things that should happen at once (start-up, a `--version`).
pub const QUICK: Duration = Duration::from_secs(10);
/// Default deadline for a whole scenario (restarts with backoff, ordered shutdowns).
pub const SLOW: Duration = Duration::from_secs(30);
/// Poll interval of every wait helper.
const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------- gating

/// True when `INIT_E2E=1`: every e2e prerequisite is required, a missing one fails the test.
pub fn e2e_required() -> bool {
    std::env::var_os("INIT_E2E").is_some_and(|v| v == "1")
}

/// A prerequisite is missing: print `SKIP: reason` (the caller then returns), or panic when
/// `INIT_E2E=1`. Usage: `let Some(bin) = init_bin() else { return skip_or_fail("...") };`
pub fn skip_or_fail(reason: &str) {
    if e2e_required() {
        panic!("INIT_E2E=1 but a prerequisite is missing: {reason}");
    }
    eprintln!("SKIP: {reason}");
}

/// True when we are root (needed for `unshare --pid` without a user namespace, and for runc).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `Some(path)` of a program found in PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Everything a PID-namespace test needs: root, `unshare`, a static busybox and a static `init`.
/// Returns the binary, or `None` after [`skip_or_fail`] said why.
pub fn pidns_prereqs() -> Option<PathBuf> {
    if !is_root() {
        skip_or_fail("not root: `unshare --pid --root` needs root");
        return None;
    }
    if which("unshare").is_none() {
        skip_or_fail("`unshare` (util-linux) not in PATH");
        return None;
    }
    if busybox().is_none() {
        skip_or_fail("no static busybox (apt-get install busybox-static, or set BUSYBOX=)");
        return None;
    }
    let Some(bin) = init_bin() else {
        skip_or_fail("no static init binary (cargo build --release, or set INIT_BIN=)");
        return None;
    };
    Some(bin)
}

// ---------------------------------------------------------------------------------------- binaries

/// The `init` binary to test, which must be statically linked to run inside a scratch rootfs:
/// 1. `$INIT_BIN` (what `.ci/test` sets: the release musl build);
/// 2. `CARGO_BIN_EXE_init`, the binary cargo built for this very test run, when it is static
///    (`.cargo/config.toml` makes every build the static musl target, so it normally is). It comes
///    before any other build because it is never stale;
/// 3. the release musl binary next to it (`<target>/x86_64-unknown-linux-musl/release/init`).
///
/// `None` when none of them exists and is static. `$INIT_BIN` naming a missing or dynamic file
/// panics: a wrong explicit setting must not silently test something else.
pub fn init_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("INIT_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(is_executable(&p), "INIT_BIN={} is not an executable file", p.display());
        assert!(
            is_static_elf(&p),
            "INIT_BIN={} is not a static binary (a scratch rootfs has no libc)",
            p.display()
        );
        return Some(p);
    }
    let cargo = PathBuf::from(env!("CARGO_BIN_EXE_init"));
    if is_executable(&cargo) && is_static_elf(&cargo) {
        return Some(cargo);
    }
    // <target>/<triple>/<profile>/init or <target>/<profile>/init: look for the musl release build.
    let mut dir = cargo.parent();
    while let Some(d) = dir {
        let musl = d.join("x86_64-unknown-linux-musl/release/init");
        if is_executable(&musl) && is_static_elf(&musl) {
            return Some(musl);
        }
        if d.file_name() == Some(OsStr::new("target")) {
            break;
        }
        dir = d.parent();
    }
    None
}

/// An ELF file with no `PT_INTERP` program header: no dynamic loader, so it runs in an empty
/// rootfs (static and static-pie binaries both qualify).
pub fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = fs::read(path) else { return false };
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as usize);
    let u32_at = |o: usize| b.get(o..o + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap()));
    let u64_at = |o: usize| b.get(o..o + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap()));
    // 64-bit little-endian ELF only (the project's one target).
    if b.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| u32_at(phoff as usize + i * phentsize) != Some(PT_INTERP))
}

/// A static busybox: `$BUSYBOX`, else /bin/busybox or /usr/bin/busybox (Debian: busybox-static).
pub fn busybox() -> Option<PathBuf> {
    let candidates = std::env::var_os("BUSYBOX")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/bin/busybox", "/usr/bin/busybox"].map(PathBuf::from));
    candidates.into_iter().find(|p| is_executable(p) && is_static_elf(p))
}

// ---------------------------------------------------------------------------------------- temp dirs

/// A fresh directory under `std::env::temp_dir()`, removed (with everything in it) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        loop {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("ankh-test-{tag}-{}-{n}-{nanos:x}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write `rel` (parents created) and return its full path.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A mount left inside (proc of a namespace that is still dying) makes this fail: not fatal.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A config directory of service files: `dir.service("web", "command = ...")` writes `web.toml`.
pub struct ConfigDir {
    pub dir: TempDir,
}

impl ConfigDir {
    pub fn new() -> ConfigDir {
        ConfigDir { dir: TempDir::new("config") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `NAME.toml` with `toml` as its text; returns `self` for chaining.
    pub fn service(&self, name: &str, toml: &str) -> &Self {
        self.dir.write(&format!("{name}.toml"), toml);
        self
    }

    /// Write any file (e.g. `notes.txt`, which init must ignore).
    pub fn file(&self, rel: &str, contents: &str) -> &Self {
        self.dir.write(rel, contents);
        self
    }
}

impl Default for ConfigDir {
    fn default() -> Self {
        ConfigDir::new()
    }
}

// ---------------------------------------------------------------------------------------- rootfs

/// Busybox applets linked into every rootfs's /bin when `busybox --list` is unavailable.
const APPLETS: &[&str] = &[
    "sh", "ash", "sleep", "echo", "cat", "true", "false", "kill", "ps", "ls", "mkdir", "rm", "touch", "test",
    "[", "printf", "env", "id", "date", "grep", "seq", "head", "tail", "wc", "pidof", "pgrep", "nc", "httpd",
    "wget", "yes", "exit", "trap", "mount", "dd", "stat",
];

/// A scratch root filesystem (what `FROM scratch` + `COPY` gives): /init (the static binary),
/// /bin/busybox with applet symlinks, empty /proc /dev /sys /tmp /run, and /etc/init/ for service
/// files. No /etc/passwd, nothing in /dev. Removed on drop.
pub struct Rootfs {
    pub dir: TempDir,
}

impl Rootfs {
    /// Needs [`init_bin`] and [`busybox`]; call [`pidns_prereqs`] first to skip cleanly.
    pub fn new() -> Rootfs {
        let bin = init_bin().expect("no static init binary (check pidns_prereqs() first)");
        let bb = busybox().expect("no static busybox (check pidns_prereqs() first)");
        Self::with_binary(&bin, &bb)
    }

    pub fn with_binary(init: &Path, busybox: &Path) -> Rootfs {
        let dir = TempDir::new("rootfs");
        let root = dir.path();
        for d in ["bin", "proc", "dev", "sys", "tmp", "run", "etc/init"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::copy(init, root.join("init")).unwrap();
        fs::copy(busybox, root.join("bin/busybox")).unwrap();
        let listed = Command::new(busybox).arg("--list").output().ok();
        let listed: Vec<String> = listed
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect())
            .unwrap_or_default();
        let names: Vec<&str> =
            if listed.is_empty() { APPLETS.to_vec() } else { listed.iter().map(String::as_str).collect() };
        for name in names {
            if name != "busybox" && !name.contains('/') {
                let _ = symlink("busybox", root.join("bin").join(name));
            }
        }
        Rootfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write /etc/init/NAME.toml.
    pub fn service(&self, name: &str, toml: &str) -> &Self {
        self.dir.write(&format!("etc/init/{name}.toml"), toml);
        self
    }

    /// Write any file, path relative to the root (`"etc/passwd"`).
    pub fn file(&self, rel: &str, contents: &str) -> &Self {
        self.dir.write(rel, contents);
        self
    }

    /// Fill /dev the way Docker does (null zero full random urandom tty: character devices made
    /// with mknod, so root only). Without it /dev is empty, as in an initramfs before devtmpfs.
    pub fn docker_dev(&self) -> &Self {
        use rustix::fs::{CWD, FileType, Mode, makedev, mknodat};
        let nodes = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8)];
        let more = [("urandom", 1, 9), ("tty", 5, 0)];
        for (name, major, minor) in nodes.into_iter().chain(more) {
            let p = self.path().join("dev").join(name);
            let mode = Mode::from_raw_mode(0o666);
            mknodat(CWD, &p, FileType::CharacterDevice, mode, makedev(major, minor))
                .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
            // mknod applies the umask: set the mode Docker has.
            fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        }
        self
    }

    /// Host path of a path inside the rootfs (`"tmp/out"` → `<root>/tmp/out`).
    pub fn host_path(&self, rel: &str) -> PathBuf {
        self.path().join(rel.trim_start_matches('/'))
    }
}

// ---------------------------------------------------------------------------------------- capture

/// What a child wrote, captured continuously by one reader thread per stream.
#[derive(Default)]
struct Captured {
    /// stdout and stderr interleaved in arrival order (as a terminal would show them).
    all: Vec<u8>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

fn reader(mut src: impl Read + Send + 'static, buf: Arc<Mutex<Captured>>, which: Stream) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match src.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    let mut c = buf.lock().unwrap();
                    c.all.extend_from_slice(&chunk[..n]);
                    match which {
                        Stream::Out => c.stdout.extend_from_slice(&chunk[..n]),
                        Stream::Err => c.stderr.extend_from_slice(&chunk[..n]),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    })
}

/// A running child with its output captured: the part `Pid1` and `Standalone` share (both deref
/// to it).
pub struct Proc {
    child: Child,
    buf: Arc<Mutex<Captured>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    /// What was run, for failure messages.
    what: String,
}

impl Proc {
    /// Spawn `cmd` in a new process group (its pgid = its pid), stdin /dev/null, output captured.
    fn spawn(mut cmd: Command) -> Proc {
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let buf = Arc::new(Mutex::new(Captured::default()));
        let readers = vec![
            reader(child.stdout.take().unwrap(), buf.clone(), Stream::Out),
            reader(child.stderr.take().unwrap(), buf.clone(), Stream::Err),
        ];
        Proc { child, buf, readers, status: None, what }
    }

    /// The spawned process's pid (for `Pid1`: unshare's).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What was run, for failure messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// stdout and stderr, interleaved as they arrived.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap().all).into_owned()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap().stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap().stderr).into_owned()
    }

    /// Poll the captured output until it contains `needle`; false after `timeout`.
    pub fn wait_output(&self, needle: &str, timeout: Duration) -> bool {
        poll_until(timeout, || self.output().contains(needle))
    }

    /// Like `wait_output`, but panics with the output so far when it does not appear.
    pub fn expect_output(&self, needle: &str, timeout: Duration) {
        if !self.wait_output(needle, timeout) {
            panic!("expected {needle:?} within {timeout:?}; output so far:\n{}", self.output());
        }
    }

    /// Exit code (128+N for signal N); `None` after `timeout`. For `Pid1` this is unshare's
    /// status, which is wrong when PID 1 was SIGKILLed (see `Pid1`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        self.wait_status(timeout).map(status_code)
    }

    /// Reap the child if it has exited (non-blocking); returns its status once known.
    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    fn wait_status(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                // The pipes may still hold the last lines: let the readers drain them (they end at
                // EOF, i.e. once every process holding the write ends has exited).
                let rest = deadline.saturating_duration_since(Instant::now()).min(QUICK);
                let until = Instant::now() + rest;
                while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < until {
                    thread::sleep(POLL);
                }
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// SIGKILL the process group we created, then reap the child. Used by `Drop`.
    fn kill_group_and_reap(&mut self) {
        if self.try_status().is_none() {
            if let Some(pg) = Pid::from_raw(self.pid()) {
                let _ = kill_process_group(pg, Signal::KILL);
            }
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        } else if let Some(pg) = Pid::from_raw(self.pid()) {
            // The leader is gone but members of its group may live on.
            let _ = kill_process_group(pg, Signal::KILL);
        }
    }
}

/// An exit status as a shell shows it: the code, or 128+N for death by signal N.
pub fn status_code(s: ExitStatus) -> i32 {
    s.code().or_else(|| s.signal().map(|n| 128 + n)).unwrap_or(-1)
}

/// Poll `cond` every 10 ms until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Host pids of every descendant of `pid` (children first), from /proc/PID/task/TID/children.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(s) = fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for c in s.split_whitespace().filter_map(|w| w.parse::<i32>().ok()) {
                if !out.contains(&c) {
                    out.push(c);
                    todo.push(c);
                }
            }
        }
    }
    out
}

/// True while `pid` exists and is not a zombie (`kill -0` is true for zombies: read State).
pub fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| s.lines().find(|l| l.starts_with("State:")).is_some_and(|l| !l.contains('Z')))
}

fn send(pid: i32, sig: Signal) -> std::io::Result<()> {
    let p = Pid::from_raw(pid).ok_or(std::io::ErrorKind::InvalidInput)?;
    kill_process(p, sig).map_err(std::io::Error::from)
}

// ---------------------------------------------------------------------------------------- Pid1

/// The environment `docker run` gives PID 1 of a `FROM scratch` image (minus HOSTNAME).
pub const DOCKER_ENV: &[(&str, &str)] =
    &[("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), ("HOME", "/")];

/// The binary as PID 1 of a new PID namespace, chrooted into a [`Rootfs`]:
/// `unshare --pid --fork --mount-proc --kill-child --root=ROOT /init ARGS`.
///
/// unshare does not forward signals: [`Pid1::signal`] sends to the namespace's PID 1 by its host
/// pid. unshare's own exit status is the child's exit code when it exits normally, but **wrong when
/// the child is SIGKILLed** (util-linux 2.38 prints `sigprocmask unblock failed` and exits 1, not
/// 137): judge by what init prints about its own exit, or by [`Pid1::wait_exit`] only for normal
/// exits. Drop SIGKILLs unshare's process group; `--kill-child` then kills PID 1, and with it the
/// whole namespace.
pub struct Pid1 {
    proc: Proc,
    host_pid: Option<i32>,
    pub rootfs: Rootfs,
}

impl Pid1 {
    /// Start it and find PID 1's host pid (waits up to 10 s for unshare to fork; `host_pid()` is
    /// `None` only when PID 1 already exited by then, e.g. after `--version`).
    /// init's environment is Docker's default for a `FROM scratch` image (PATH, HOME=/).
    pub fn start(rootfs: Rootfs, args: &[&str]) -> Pid1 {
        Self::start_env(rootfs, args, DOCKER_ENV)
    }

    /// As [`Pid1::start`] with exactly the environment `env` (`&[]`: empty, as the kernel gives
    /// an initramfs /init almost nothing).
    pub fn start_env(rootfs: Rootfs, args: &[&str], env: &[(&str, &str)]) -> Pid1 {
        let mut argv = vec!["/init"];
        argv.extend_from_slice(args);
        Self::start_argv(rootfs, &argv, env)
    }

    /// Run any program of the rootfs as PID 1 (`argv[0]` is its path inside the rootfs), e.g. a
    /// busybox shell that starts `/init` as its child, with exactly the environment `env`.
    pub fn start_argv(rootfs: Rootfs, argv: &[&str], env: &[(&str, &str)]) -> Pid1 {
        let unshare = which("unshare").unwrap_or_else(|| PathBuf::from("/usr/bin/unshare"));
        let mut cmd = Command::new(unshare);
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(format!("--root={}", rootfs.path().display()))
            .args(argv)
            .env_clear()
            .envs(env.iter().copied());
        let proc = Proc::spawn(cmd);
        let unshare = proc.pid();
        let mut p = Pid1 { proc, host_pid: None, rootfs };
        let children = format!("/proc/{unshare}/task/{unshare}/children");
        poll_until(QUICK, || {
            if let Some(c) = fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|w| w.parse().ok()))
            {
                p.host_pid = Some(c);
                return true;
            }
            p.proc.try_status().is_some()
        });
        if p.host_pid.is_none() && p.proc.try_status().is_none() {
            panic!("unshare ({unshare}) never forked PID 1; output:\n{}", p.output());
        }
        p
    }

    /// Host pid of the namespace's PID 1 (`NSpid: <host> 1` in its /proc status).
    pub fn host_pid(&self) -> Option<i32> {
        self.host_pid
    }

    /// pid of the `unshare` process (the leader of the process group Drop kills).
    pub fn unshare_pid(&self) -> i32 {
        self.proc.pid()
    }

    /// Send `sig` to PID 1 (by its host pid; unshare would not forward it).
    pub fn signal(&self, sig: Signal) {
        let pid = self.host_pid.unwrap_or_else(|| panic!("PID 1 already gone; output:\n{}", self.output()));
        send(pid, sig).unwrap_or_else(|e| panic!("kill({pid}, {sig:?}): {e}"));
    }

    /// Host pids of every process in the namespace below PID 1.
    pub fn processes(&self) -> Vec<i32> {
        self.host_pid.map(descendants).unwrap_or_default()
    }
}

impl std::ops::Deref for Pid1 {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl std::ops::DerefMut for Pid1 {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        if let Some(p) = self.host_pid.filter(|p| alive(*p)) {
            // Our own namespace's PID 1: its death SIGKILLs everything else in the namespace.
            let _ = send(p, Signal::KILL);
        }
        self.proc.kill_group_and_reap();
        if thread::panicking() {
            eprintln!("--- output of {}:\n{}", self.proc.what, self.output());
        }
    }
}

// ---------------------------------------------------------------------------------------- Standalone

/// The binary as an ordinary process (no namespace), e.g. `init --config DIR` under a shell, in its
/// own process group. Drop SIGKILLs it and every process below it (its services run in their own
/// sessions, so killing its group alone would leave them running).
pub struct Standalone {
    proc: Proc,
}

impl Standalone {
    /// Run the test binary ([`init_bin`], or `CARGO_BIN_EXE_init` when none is static: an ordinary
    /// process needs no static binary) with `args`.
    pub fn start(args: &[&str]) -> Standalone {
        Self::start_cmd(init_command(args))
    }

    /// Run a prepared command (see [`init_command`]) with output capture and cleanup.
    pub fn start_cmd(cmd: Command) -> Standalone {
        Standalone { proc: Proc::spawn(cmd) }
    }

    pub fn signal(&self, sig: Signal) {
        send(self.pid(), sig).unwrap_or_else(|e| panic!("kill({}, {sig:?}): {e}", self.pid()));
    }

    /// Host pids of every process below init (its services and their children).
    pub fn processes(&self) -> Vec<i32> {
        descendants(self.pid())
    }
}

impl std::ops::Deref for Standalone {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl std::ops::DerefMut for Standalone {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let pid = self.pid();
        if self.proc.try_status().is_none() {
            // Freeze init so it cannot respawn what we kill, then kill its descendants, then it.
            let _ = send(pid, Signal::STOP);
            for _ in 0..3 {
                let below = descendants(pid);
                if below.is_empty() {
                    break;
                }
                for p in below {
                    let _ = send(p, Signal::KILL);
                }
            }
        }
        self.proc.kill_group_and_reap();
        if thread::panicking() {
            eprintln!("--- output of {}:\n{}", self.proc.what, self.output());
        }
    }
}

// ---------------------------------------------------------------------------------------- one-shot runs

/// `init ARGS` as a `Command` (the binary from [`init_bin`], else cargo's), stdin /dev/null.
pub fn init_command(args: &[&str]) -> Command {
    let bin = init_bin().unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_init")));
    let mut cmd = Command::new(bin);
    cmd.args(args);
    cmd
}

/// The result of a run to completion.
#[derive(Debug)]
pub struct Run {
    /// Exit code, 128+N for signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// stdout and stderr interleaved.
    pub output: String,
}

/// Run `cmd` to completion (SIGKILLed, with its process group, after `timeout`: panics then).
pub fn run_cmd(cmd: Command, timeout: Duration) -> Run {
    let mut s = Standalone::start_cmd(cmd);
    let Some(code) = s.wait_exit(timeout) else {
        panic!("{} did not exit within {timeout:?}; output:\n{}", s.proc.what, s.output());
    };
    Run { code, stdout: s.stdout(), stderr: s.stderr(), output: s.output() }
}

/// `init ARGS` to completion (10 s deadline).
pub fn run_init(args: &[&str]) -> Run {
    run_cmd(init_command(args), QUICK)
}

/// `init --check DIR` to completion.
pub fn check(dir: &Path) -> Run {
    let mut cmd = init_command(&["--check"]);
    cmd.arg(dir);
    run_cmd(cmd, QUICK)
}

// ---------------------------------------------------------------------------------------- boot (qemu)

/// The kernel for boot tests: `$INIT_E2E_KERNEL`, else `target/e2e-kernel/vmlinuz` (what `.ci/run`
/// fetches: Debian's cloud kernel). `None` after [`skip_or_fail`] when there is none or no qemu.
pub fn boot_prereqs() -> Option<PathBuf> {
    if which("qemu-system-x86_64").is_none() {
        skip_or_fail("qemu-system-x86_64 not in PATH (apt-get install qemu-system-x86)");
        return None;
    }
    let kernel = std::env::var_os("INIT_E2E_KERNEL")
        .filter(|k| !k.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-kernel/vmlinuz"));
    if !kernel.is_file() {
        skip_or_fail(&format!(
            "no kernel at {} (set INIT_E2E_KERNEL, or run .ci/run to fetch it)",
            kernel.display()
        ));
        return None;
    }
    if busybox().is_none() || init_bin().is_none() {
        skip_or_fail("no static busybox or no static init binary");
        return None;
    }
    Some(kernel)
}

/// An uncompressed `newc` cpio archive of `root` (what the kernel unpacks as the initramfs), every
/// entry owned by root, plus `/dev/console` (5:1) so the console exists before devtmpfs.
pub fn cpio_newc(root: &Path) -> Vec<u8> {
    use std::os::unix::fs::MetadataExt;
    fn entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let fields =
            [ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
        let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for p in names {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let is_dir = fs::symlink_metadata(&p).unwrap().is_dir();
            out.push((r.clone(), p.clone()));
            if is_dir {
                walk(&p, &r, out);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, "", &mut files);
    let mut out = Vec::new();
    let mut ino = 1;
    for (rel, path) in &files {
        let m = fs::symlink_metadata(path).unwrap();
        let data = if m.file_type().is_symlink() {
            fs::read_link(path).unwrap().to_string_lossy().into_owned().into_bytes()
        } else if m.is_file() {
            fs::read(path).unwrap()
        } else {
            Vec::new()
        };
        let rdev = m.rdev();
        let rdev = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        entry(&mut out, ino, rel, m.mode(), rdev, &data);
        ino += 1;
        if rel == "dev" && !root.join("dev/console").exists() {
            entry(&mut out, ino, "dev/console", 0o020600, (5, 1), &[]);
            ino += 1;
        }
    }
    entry(&mut out, 0, "TRAILER!!!", 0, (0, 0), &[]);
    out
}

/// What a boot printed on the serial console, and whether it ended the way a clean power-off does.
#[derive(Debug)]
pub struct Boot {
    pub console: String,
    /// qemu's exit code; `None` when it was killed at the deadline. qemu exits 0 after a kernel
    /// panic too (with `panic=-1 -no-reboot`), so never judge by this alone: see [`Boot::powered_off`].
    pub code: Option<i32>,
}

impl Boot {
    /// `reboot: Power down` printed and no `Kernel panic` (init exiting panics the kernel).
    pub fn powered_off(&self) -> bool {
        self.console.contains("reboot: Power down") && !self.console.contains("Kernel panic")
    }
}

/// Boot `rootfs` as an initramfs (its /init is the kernel's first process) under qemu TCG with the
/// serial console on stdout; `init_args` follow `--` on the kernel command line (they become
/// /init's argv). KVM is never used: here it hangs (`kvm_pvm`), so the harness does not try it.
/// ~3 s per boot on a quiet machine; the deadline is generous because the machine is shared.
pub fn boot(kernel: &Path, rootfs: &Rootfs, init_args: &str, timeout: Duration) -> Boot {
    let dir = TempDir::new("boot");
    let initrd = dir.path().join("initrd.cpio");
    fs::write(&initrd, cpio_newc(rootfs.path())).unwrap();
    let mut append = String::from("console=ttyS0 panic=-1 quiet");
    if !init_args.is_empty() {
        append.push_str(" -- ");
        append.push_str(init_args);
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-m", "256", "-smp", "1", "-nodefaults", "-no-user-config"])
        .args(["-display", "none", "-serial", "stdio", "-net", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(append);
    let mut q = Standalone::start_cmd(cmd);
    let code = q.wait_exit(timeout);
    Boot { console: q.output(), code }
}

// ---------------------------------------------------------------------------------------- python3 services

/// python3 on the host (the socket and proxy tests' services); false after `skip_or_fail`.
pub fn python() -> bool {
    if which("python3").is_none() {
        skip_or_fail("python3 not in PATH");
        return false;
    }
    true
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// init as an ordinary process on `dir`, with its control socket inside `dir`.
pub fn start_in(dir: &ConfigDir) -> Standalone {
    let sock = dir.path().join("init.sock");
    Standalone::start(&["--config", dir.path().to_str().unwrap(), "--socket", sock.to_str().unwrap()])
}
