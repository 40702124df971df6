//! spawn: fork + child setup + execve, with exec failures reported through a CLOEXEC pipe.
//!
//! CONTRACT (the reactor is written against exactly this API; keep the signatures):
//!   Plan::for_service(spec, inherited_env, nofile_limit) -> Result<Plan, String>
//!       builds every CString before fork (PATH lookup of `argv[0]` in the *service's* PATH,
//!       environment per `[environment]`, credentials); an error here is the service's failure.
//!   Plan::for_argv(argv, env) -> Result<Plan, String>      tini mode: env passed on untouched
//!   spawn(&plan, stdio: Stdio, group: Group) -> Result<Child, String>
//!   Child { pid, status: OwnedFd }   status: read end, O_NONBLOCK|O_CLOEXEC
//!   read_exec_status(&fd) -> ExecStatus   never blocks
//!
//! Child setup order (design §3): setsid or setpgid (+ tcsetpgrp), join the cgroup (writes "0"
//! to its `cgroup.procs`), rlimits, setgroups/setgid/setuid (only when changing), chdir, umask,
//! stdio and passed fds, close the rest, signal dispositions, signal mask, execve. Everything the child needs is built before fork: between
//! fork and execve the child neither allocates nor logs. A failing step writes one record
//! (stage, errno, detail) to the status pipe and exits 127 (exec: not found), 126 (exec: other)
//! or 1 (setup).
//!
//! Process groups: with `Group::Foreground` the parent also calls setpgid(pid, pid), so the
//! group exists when `spawn` returns. With `Group::Session` it cannot (a group leader's setsid
//! fails with EPERM), so until the child's setsid has run, `kill(-pid)` finds no group: signal
//! `pid` as well when stopping a service that may not have exec'd yet.

use std::ffi::{CStr, CString, OsStr, OsString, c_char};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::signals::Inherited;
use crate::spec::{Rlimit, ServiceSpec};
use crate::sys::{self, Resource, SigSet};

/// PATH for services when init has none (and for system mode).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the child's fds 0, 1, 2 are set up; `Fd` ones are dup2'd in the child.
pub enum Io {
    /// Keep init's own fd.
    Inherit,
    /// /dev/null, or a pipe end with no peer when /dev/null is missing.
    Null,
    Fd(OwnedFd),
}

pub struct Stdio {
    pub stdin: Io,
    pub stdout: Io,
    pub stderr: Io,
    /// Extra fds passed as 3, 4, ... (socket activation), in order.
    pub extra: Vec<OwnedFd>,
}

impl Stdio {
    /// All three inherited, nothing extra (tini mode).
    pub fn inherit() -> Stdio {
        Stdio { stdin: Io::Inherit, stdout: Io::Inherit, stderr: Io::Inherit, extra: Vec::new() }
    }
}

/// Process-group policy for the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// setsid(): services (own session and process group).
    Session,
    /// setpgid(0,0), and tcsetpgrp when the child's stdin is a terminal (tini mode).
    Foreground,
}

/// Result of the exec-status pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecStatus {
    /// Nothing to read yet (the child has not exec'd or failed yet).
    Pending,
    /// EOF with no data: exec succeeded.
    Ok,
    /// The child wrote its failing stage and errno: "unable to exec /bin/x: No such file or directory".
    Failed { message: String, errno: i32 },
}

pub struct Child {
    pub pid: i32,
    pub status: OwnedFd,
}

/// Signal state the child starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildSignals {
    /// Every disposition SIG_DFL, nothing blocked (services).
    Clean,
    /// The mask and ignored set init inherited (tini mode, as tini does).
    Restore(Inherited),
}

/// Everything the child needs, built before fork.
#[derive(Debug)]
pub struct Plan {
    /// What execve gets: argv[0] resolved in PATH, or as written.
    path: CString,
    /// false when argv[0] has no `/` and is not in PATH: the exec step fails with ENOENT
    /// (never exec'd relative to the working directory).
    found: bool,
    argv: Vec<CString>,
    /// `KEY=value` entries.
    env: Vec<CString>,
    /// Add `LISTEN_PID=<the child's pid>` (set in the child).
    listen_pid: bool,
    cwd: Option<CString>,
    umask: Option<u32>,
    creds: Option<CredChange>,
    /// (resource, soft, hard), in order.
    rlimits: Vec<(Resource, u64, u64)>,
    signals: ChildSignals,
    /// The service's `cgroup.procs`, opened before fork: the child writes "0" (itself) to it
    /// before anything else, so it is in its cgroup (and under its limits) before exec.
    cgroup: Option<OwnedFd>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CredChange {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl Plan {
    /// A service's plan: argv, environment (§4 and Horust's rules), credentials, cwd, umask and
    /// rlimits. `nofile` is init's original RLIMIT_NOFILE (soft, hard), restored in the child.
    pub fn for_service(
        spec: &ServiceSpec,
        inherited_env: &[(OsString, OsString)],
        nofile: Option<(u64, u64)>,
    ) -> Result<Plan, String> {
        let uid = spec.user.as_ref().map_or_else(sys::getuid, |c| c.uid);
        let account = passwd_entry(Path::new("/etc/passwd"), uid);
        let env = service_env(spec, inherited_env, account.as_ref(), &read_hostname());
        let path_var = lookup(&env, "PATH").map(OsStr::to_os_string);
        let argv: Vec<OsString> = spec.command.iter().map(OsString::from).collect();
        let mut plan = Plan::build(argv, &env, path_var.as_deref())?;

        if let Some(dir) = &spec.working_directory {
            plan.cwd = Some(cstring(dir.as_os_str().as_bytes(), "working-directory")?);
        }
        plan.umask = spec.umask;
        if let Some(c) = &spec.user {
            let mut groups = c.groups.to_vec();
            // As initgroups(3) does: the primary group is one of the supplementary groups.
            if !groups.contains(&c.gid) {
                groups.insert(0, c.gid);
            }
            let change = CredChange { uid: c.uid, gid: c.gid, groups };
            if !same_credentials(&change) {
                plan.creds = Some(change);
            }
        }
        if let Some((soft, hard)) = nofile {
            plan.rlimits.push((Resource::Nofile, soft, hard));
        }
        for &(r, value) in &spec.limits.rlimits {
            plan.rlimits.push((resource(r), value, value));
        }
        Ok(plan)
    }

    /// tini mode: `argv` with `env` passed on untouched, except that an inherited `LISTEN_PID`
    /// naming init is rewritten to the child's pid. Signals are restored with `restore_signals`.
    pub fn for_argv(argv: Vec<OsString>, env: &[(OsString, OsString)]) -> Result<Plan, String> {
        let path_var = lookup(env, "PATH").map(OsStr::to_os_string);
        let mut plan = Plan::build(argv, env, path_var.as_deref())?;
        let init_pid = sys::getpid().to_string();
        if lookup(env, "LISTEN_FDS").is_some()
            && lookup(env, "LISTEN_PID").is_some_and(|p| p.as_bytes() == init_pid.as_bytes())
        {
            plan.remove_env("LISTEN_PID");
            plan.listen_pid = true;
        }
        Ok(plan)
    }

    fn build(
        argv: Vec<OsString>,
        env: &[(OsString, OsString)],
        path_var: Option<&OsStr>,
    ) -> Result<Plan, String> {
        let Some(prog) = argv.first() else {
            return Err("empty command".to_string());
        };
        let (path, found) = if prog.as_bytes().contains(&b'/') {
            (prog.clone(), true)
        } else {
            let search = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
            match find_in_path(prog, search) {
                Some(p) => (p, true),
                None => (prog.clone(), false),
            }
        };
        let path = cstring(path.as_bytes(), "command")?;
        let argv = argv.iter().map(|a| cstring(a.as_bytes(), "command")).collect::<Result<Vec<_>, _>>()?;
        let env = env.iter().map(|(k, v)| env_entry(k, v)).collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            path,
            found,
            argv,
            env,
            listen_pid: false,
            cwd: None,
            umask: None,
            creds: None,
            rlimits: Vec::new(),
            signals: ChildSignals::Clean,
            cgroup: None,
        })
    }

    /// Sets (or replaces) one environment variable, e.g. `NOTIFY_SOCKET`.
    pub fn set_env(&mut self, key: &str, value: &OsStr) -> Result<(), String> {
        let entry = env_entry(OsStr::new(key), value)?;
        self.remove_env(key);
        self.env.push(entry);
        Ok(())
    }

    /// Socket activation: `n` fds at 3.., `LISTEN_FDS=n` and `LISTEN_PID` = the child's pid.
    pub fn set_listen_fds(&mut self, n: usize) -> Result<(), String> {
        self.set_env("LISTEN_FDS", OsStr::new(&n.to_string()))?;
        self.remove_env("LISTEN_PID");
        self.listen_pid = true;
        Ok(())
    }

    /// The child joins the cgroup whose `cgroup.procs` this is, before exec.
    pub fn set_cgroup(&mut self, procs: OwnedFd) {
        self.cgroup = Some(procs);
    }

    /// The child starts with the signal mask and ignored set init was started with (tini mode).
    pub fn restore_signals(&mut self, inherited: Inherited) {
        self.signals = ChildSignals::Restore(inherited);
    }

    /// The program as execve gets it, for messages.
    pub fn program(&self) -> String {
        String::from_utf8_lossy(self.path.as_bytes()).into_owned()
    }

    /// The environment entries (`KEY=value`), in order; for tests and `init status`.
    pub fn env(&self) -> impl Iterator<Item = &CStr> {
        self.env.iter().map(CString::as_c_str)
    }

    fn remove_env(&mut self, key: &str) {
        let key = key.as_bytes();
        self.env.retain(|e| {
            let b = e.as_bytes();
            !(b.starts_with(key) && b.get(key.len()) == Some(&b'='))
        });
    }
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{what} contains a NUL byte"))
}

fn env_entry(key: &OsStr, value: &OsStr) -> Result<CString, String> {
    let k = key.as_bytes();
    if k.is_empty() || k.contains(&b'=') {
        return Err(format!("invalid environment variable name {:?}", key.to_string_lossy()));
    }
    let mut entry = Vec::with_capacity(k.len() + 1 + value.len());
    entry.extend_from_slice(k);
    entry.push(b'=');
    entry.extend_from_slice(value.as_bytes());
    CString::new(entry)
        .map_err(|_| format!("environment variable {} contains a NUL byte", key.to_string_lossy()))
}

fn resource(r: Rlimit) -> Resource {
    match r {
        Rlimit::Nofile => Resource::Nofile,
        Rlimit::Nproc => Resource::Nproc,
        Rlimit::Core => Resource::Core,
        Rlimit::Memlock => Resource::Memlock,
        Rlimit::Stack => Resource::Stack,
    }
}

fn resource_name(r: Resource) -> &'static str {
    match r {
        Resource::Nofile => "nofile",
        Resource::Nproc => "nproc",
        Resource::Core => "core",
        Resource::Memlock => "memlock",
        Resource::Stack => "stack",
    }
}

/// True when init already runs with exactly these credentials (nothing to change).
fn same_credentials(c: &CredChange) -> bool {
    if c.uid != sys::getuid() || c.gid != sys::getgid() {
        return false;
    }
    let Ok(mut current) = sys::getgroups() else {
        return false;
    };
    let mut wanted = c.groups.clone();
    current.sort_unstable();
    current.dedup();
    wanted.sort_unstable();
    wanted.dedup();
    // The kernel may or may not list the primary group; compare without it.
    current.retain(|g| *g != c.gid);
    wanted.retain(|g| *g != c.gid);
    current == wanted
}

/// The value of `key` in an environment list (the last one wins, as getenv(3) would not
/// guarantee but a re-set variable expects).
fn lookup<'a>(env: &'a [(OsString, OsString)], key: &str) -> Option<&'a OsStr> {
    env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_os_str())
}

/// Sets `key` in place (keeping its position) or appends it.
fn set_var(env: &mut Vec<(OsString, OsString)>, key: &str, value: OsString) {
    env.retain(|(k, _)| k != key);
    env.push((OsString::from(key), value));
}

/// Variables that describe init's own activation and must not leak to services.
fn is_init_only(key: &OsStr) -> bool {
    let k = key.as_bytes();
    k == b"NOTIFY_SOCKET" || k.starts_with(b"LISTEN_")
}

/// A passwd entry's name and home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    name: String,
    home: String,
}

/// The entry for `uid` in a passwd(5) file, if the file exists and lists it.
fn passwd_entry(file: &Path, uid: u32) -> Option<Account> {
    let text = std::fs::read(file).ok()?;
    parse_passwd(&String::from_utf8_lossy(&text), uid)
}

fn parse_passwd(text: &str, uid: u32) -> Option<Account> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let u = f.next()?.trim().parse::<u32>().ok()?;
        let _gid = f.next()?;
        let _gecos = f.next()?;
        let home = f.next()?;
        (u == uid && !name.is_empty()).then(|| Account { name: name.to_string(), home: home.to_string() })
    })
}

/// /etc/hostname without its trailing newline (Horust keeps it; nobody wants it), else the
/// kernel's hostname (unless unset: "(none)"), else "localhost".
fn read_hostname() -> String {
    if let Ok(s) = std::fs::read_to_string("/etc/hostname") {
        let s = s.trim();
        if !s.is_empty() {
            return s.to_string();
        }
    }
    let uts = rustix::system::uname();
    let node = uts.nodename().to_string_lossy();
    // An unset kernel hostname reads "(none)" (an initramfs without /etc/hostname).
    if node.is_empty() || node == "(none)" { "localhost".to_string() } else { node.into_owned() }
}

/// A service's environment. Lowest to highest precedence: base (empty, or init's whole
/// environment with `keep-env`) < HOSTNAME, PATH, USER, HOME < TERM (only if unset) <
/// `re-export` < `additional`. NOTIFY_SOCKET and LISTEN_* of init are never passed on.
fn service_env(
    spec: &ServiceSpec,
    inherited: &[(OsString, OsString)],
    account: Option<&Account>,
    hostname: &str,
) -> Vec<(OsString, OsString)> {
    let from_init: Vec<(OsString, OsString)> =
        inherited.iter().filter(|(k, _)| !is_init_only(k)).cloned().collect();
    let mut env = if spec.env.keep_env { from_init.clone() } else { Vec::new() };

    set_var(&mut env, "HOSTNAME", OsString::from(hostname));
    let path = lookup(&from_init, "PATH").map_or_else(|| OsString::from(DEFAULT_PATH), OsStr::to_os_string);
    set_var(&mut env, "PATH", path);
    let uid = spec.user.as_ref().map_or_else(sys::getuid, |c| c.uid);
    let (user, home) = match account {
        Some(a) => (a.name.clone(), a.home.clone()),
        None if uid == 0 => ("root".to_string(), "/".to_string()),
        None => (uid.to_string(), "/".to_string()),
    };
    set_var(&mut env, "USER", OsString::from(user));
    set_var(&mut env, "HOME", OsString::from(home));
    if lookup(&env, "TERM").is_none()
        && let Some(term) = lookup(&from_init, "TERM")
    {
        set_var(&mut env, "TERM", term.to_os_string());
    }
    for name in &spec.env.re_export {
        match lookup(&from_init, name) {
            Some(v) => set_var(&mut env, name, v.to_os_string()),
            None => log::warn!("{}: re-export: {name} is not set in init's environment", spec.name),
        }
    }
    for (k, v) in &spec.env.additional {
        set_var(&mut env, k, OsString::from(v));
    }
    env
}

/// argv[0] in a PATH: the first regular file with an execute bit. Relative and empty entries
/// are skipped (they would depend on the working directory at exec time).
fn find_in_path(name: &OsStr, path: &OsStr) -> Option<OsString> {
    path.as_bytes()
        .split(|&b| b == b':')
        .filter(|dir| dir.first() == Some(&b'/'))
        .map(|dir| Path::new(OsStr::from_bytes(dir)).join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .map(std::path::PathBuf::into_os_string)
}

// ---------------------------------------------------------------------------------------------
// The exec-status record

/// The step of the child's setup that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Stage {
    Session = 1,
    ProcessGroup = 2,
    Foreground = 3,
    Rlimit = 4,
    Groups = 5,
    Gid = 6,
    Uid = 7,
    Chdir = 8,
    Stdio = 9,
    CloseFds = 10,
    Signals = 11,
    Exec = 12,
    Cgroup = 13,
}

impl Stage {
    fn from_u8(b: u8) -> Option<Stage> {
        Some(match b {
            1 => Stage::Session,
            2 => Stage::ProcessGroup,
            3 => Stage::Foreground,
            4 => Stage::Rlimit,
            5 => Stage::Groups,
            6 => Stage::Gid,
            7 => Stage::Uid,
            8 => Stage::Chdir,
            9 => Stage::Stdio,
            10 => Stage::CloseFds,
            11 => Stage::Signals,
            12 => Stage::Exec,
            13 => Stage::Cgroup,
            _ => return None,
        })
    }

    fn message(self, detail: &str, errno: i32) -> String {
        let what = match self {
            Stage::Session => "unable to create a session".to_string(),
            Stage::ProcessGroup => "unable to create a process group".to_string(),
            Stage::Foreground => "unable to take the terminal's foreground".to_string(),
            Stage::Rlimit => format!("unable to set limit {detail}"),
            Stage::Groups => format!("unable to set supplementary groups of user {detail}"),
            Stage::Gid => format!("unable to set group {detail}"),
            Stage::Uid => format!("unable to set user {detail}"),
            Stage::Chdir => format!("unable to chdir to {detail}"),
            Stage::Stdio => format!("unable to set up fd {detail}"),
            Stage::CloseFds => "unable to close inherited fds".to_string(),
            Stage::Signals => "unable to reset signal handling".to_string(),
            Stage::Exec => format!("unable to exec {detail}"),
            Stage::Cgroup => "unable to join its cgroup".to_string(),
        };
        format!("{what}: {}", sys::strerror(errno))
    }
}

/// Longest detail (a path) carried in a record; the record stays under PIPE_BUF (atomic).
const DETAIL_MAX: usize = 512;
const HEADER: usize = 1 + 4 + 2;

/// Reads the exec-status pipe without blocking.
pub fn read_exec_status(fd: &OwnedFd) -> ExecStatus {
    let mut buf = [0u8; HEADER + DETAIL_MAX];
    match sys::read(fd.as_raw_fd(), &mut buf) {
        Ok(0) => ExecStatus::Ok,
        Ok(n) => decode_record(buf.get(..n).unwrap_or(&[])),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ExecStatus::Pending,
        Err(e) => {
            let errno = sys::errno_of(&e);
            ExecStatus::Failed {
                message: format!("unable to read the exec status: {}", sys::strerror(errno)),
                errno,
            }
        }
    }
}

fn decode_record(rec: &[u8]) -> ExecStatus {
    let stage = rec.first().copied().and_then(Stage::from_u8);
    let errno = rec.get(1..5).and_then(|b| b.try_into().ok()).map(i32::from_le_bytes);
    let len = rec.get(5..7).and_then(|b| b.try_into().ok()).map(u16::from_le_bytes);
    match (stage, errno, len) {
        (Some(stage), Some(errno), Some(len)) => {
            let detail = rec.get(HEADER..HEADER + usize::from(len)).unwrap_or(&[]);
            let detail = String::from_utf8_lossy(detail);
            ExecStatus::Failed { message: stage.message(&detail, errno), errno }
        }
        _ => ExecStatus::Failed { message: "unable to spawn: malformed exec status".to_string(), errno: 0 },
    }
}

// ---------------------------------------------------------------------------------------------
// Fork and the child

/// /dev/null opened read-write, or when it is missing (initramfs, bare rootfs) one end of a
/// pipe whose other end is closed: reads see EOF, writes fail with EPIPE.
pub fn open_null(for_writing: bool) -> Result<OwnedFd, String> {
    let flags = rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NOCTTY;
    match rustix::fs::open("/dev/null", flags, rustix::fs::Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(_) => {
            let (r, w) = sys::pipe_cloexec()
                .map_err(|e| format!("unable to create a pipe: {}", sys::strerror(sys::errno_of(&e))))?;
            Ok(if for_writing { w } else { r })
        }
    }
}

/// Forks and runs `plan` in the child. The parent gets the pid and the read end of the status
/// pipe; the fds in `stdio` are closed in the parent when this returns.
pub fn spawn(plan: &Plan, stdio: Stdio, group: Group) -> Result<Child, String> {
    let err = |what: &str, e: std::io::Error| format!("{what}: {}", sys::strerror(sys::errno_of(&e)));

    // Every pointer array and fd the child touches is made here, before fork.
    let argv: Vec<*const c_char> =
        plan.argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let pid_env = plan.listen_pid.then(|| sys::PidEnv::new(b"LISTEN_PID="));
    let envp: Vec<*const c_char> = plan
        .env
        .iter()
        .map(|e| e.as_ptr())
        .chain(pid_env.as_ref().map(sys::PidEnv::as_ptr))
        .chain(std::iter::once(std::ptr::null()))
        .collect();

    let mut owned: Vec<OwnedFd> = Vec::new();
    let mut moves: Vec<(RawFd, RawFd)> = Vec::with_capacity(3 + stdio.extra.len());
    let mut inherit: Vec<RawFd> = Vec::with_capacity(3);
    // The terminal tcsetpgrp acts on is the child's stdin-to-be.
    let tty_fd = match &stdio.stdin {
        Io::Inherit => Some(0),
        Io::Fd(fd) => Some(fd.as_raw_fd()),
        Io::Null => None,
    };
    for (target, io, writing) in [(0, stdio.stdin, false), (1, stdio.stdout, true), (2, stdio.stderr, true)] {
        match io {
            Io::Inherit => inherit.push(target),
            Io::Null => {
                let fd = open_null(writing).map_err(|e| format!("unable to open /dev/null: {e}"))?;
                moves.push((fd.as_raw_fd(), target));
                owned.push(fd);
            }
            Io::Fd(fd) => {
                moves.push((fd.as_raw_fd(), target));
                owned.push(fd);
            }
        }
    }
    let mut target: RawFd = 3;
    for fd in stdio.extra {
        moves.push((fd.as_raw_fd(), target));
        owned.push(fd);
        target += 1;
    }
    let first_free = target;
    let groups: &[u32] = plan.creds.as_ref().map_or(&[], |c| &c.groups);

    let (status_r, status_w) =
        sys::pipe_cloexec().map_err(|e| err("unable to create the exec-status pipe", e))?;
    sys::set_nonblocking(&status_r).map_err(|e| err("unable to set up the exec-status pipe", e))?;

    let ctx = ChildCtx {
        plan,
        group,
        tty_fd,
        groups,
        argv: &argv,
        envp: &envp,
        pid_env: pid_env.as_ref(),
        moves: &mut moves,
        inherit: &inherit,
        first_free,
        status: status_w.as_raw_fd(),
    };

    // Block everything across fork so no handler of the parent runs in the child before the
    // dispositions are reset. init has them blocked already; tests and tools may not.
    let old_mask = sys::sigprocmask_set(sys::full_sigset()).map_err(|e| err("unable to fork", e))?;
    let forked = sys::fork();
    if let Ok(None) = forked {
        run_child(ctx);
    }
    // Parent: restore the mask whatever happened (it only fails for a bad argument).
    let _ = sys::sigprocmask_set(old_mask);
    let pid = match forked {
        Ok(Some(pid)) => pid,
        Ok(None) => return Err("unable to fork: child returned".to_string()),
        Err(e) => return Err(err("unable to fork", e)),
    };
    // Also in the parent, so the group exists when we signal it right after fork. Not for
    // Session: a process group leader cannot setsid (EPERM), so the child does it alone.
    if group == Group::Foreground {
        // EACCES: it has exec'd already; ESRCH: it is gone. Both mean the child did it.
        let _ = sys::setpgid(pid, pid);
    }
    drop(status_w);
    drop(owned);
    Ok(Child { pid, status: status_r })
}

struct ChildCtx<'a> {
    plan: &'a Plan,
    group: Group,
    /// The fd that becomes the child's stdin, if any (for tcsetpgrp).
    tty_fd: Option<RawFd>,
    groups: &'a [u32],
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    pid_env: Option<&'a sys::PidEnv>,
    /// (source, target); sources are rewritten in place when moved out of the way.
    moves: &'a mut [(RawFd, RawFd)],
    inherit: &'a [RawFd],
    first_free: RawFd,
    status: RawFd,
}

/// The child after fork. Never returns; never allocates.
fn run_child(mut ctx: ChildCtx<'_>) -> ! {
    let (stage, errno, detail) = match child_setup(&mut ctx) {
        Err(failure) => failure,
        Ok(()) => {
            let e = if ctx.plan.found {
                sys::errno_of(&sys::execve(&ctx.plan.path, ctx.argv, ctx.envp))
            } else {
                ENOENT
            };
            (Stage::Exec, e, Detail::Bytes(ctx.plan.path.as_bytes()))
        }
    };
    report(ctx.status, stage, errno, detail);
    let code = if stage == Stage::Exec { sys::exit_code_for_exec_errno(errno) } else { 1 };
    sys::exit_now(code)
}

const ENOENT: i32 = 2;
const ENOTTY: i32 = 25;
const ENXIO: i32 = 6;

/// What a failed step names, without allocating.
enum Detail<'a> {
    None,
    Bytes(&'a [u8]),
    Number(u32),
}

type Failure<'a> = (Stage, i32, Detail<'a>);

fn fail<'a>(stage: Stage, detail: Detail<'a>) -> impl FnOnce(std::io::Error) -> Failure<'a> {
    move |e| (stage, sys::errno_of(&e), detail)
}

fn child_setup<'a>(ctx: &mut ChildCtx<'a>) -> Result<(), Failure<'a>> {
    let plan = ctx.plan;
    match ctx.group {
        Group::Session => {
            sys::setsid().map_err(fail(Stage::Session, Detail::None))?;
        }
        Group::Foreground => {
            sys::setpgid(0, 0).map_err(fail(Stage::ProcessGroup, Detail::None))?;
            // Signals are blocked here, so tcsetpgrp from a background group is not stopped by
            // SIGTTOU. ENOTTY/ENXIO: no controlling terminal after all; not an error (tini).
            if let Some(tty) = ctx.tty_fd.filter(|&fd| sys::isatty(fd))
                && let Err(e) = sys::tcsetpgrp(tty, sys::getpid())
            {
                let errno = sys::errno_of(&e);
                if errno != ENOTTY && errno != ENXIO {
                    return Err((Stage::Foreground, errno, Detail::None));
                }
            }
        }
    }
    if let Some(fd) = &plan.cgroup {
        sys::write_all_once(fd.as_raw_fd(), b"0").map_err(fail(Stage::Cgroup, Detail::None))?;
    }
    for &(res, soft, hard) in &plan.rlimits {
        sys::setrlimit(res, soft, hard)
            .map_err(fail(Stage::Rlimit, Detail::Bytes(resource_name(res).as_bytes())))?;
    }
    if let Some(c) = &plan.creds {
        sys::setgroups(ctx.groups).map_err(fail(Stage::Groups, Detail::Number(c.uid)))?;
        sys::setgid(c.gid).map_err(fail(Stage::Gid, Detail::Number(c.gid)))?;
        sys::setuid(c.uid).map_err(fail(Stage::Uid, Detail::Number(c.uid)))?;
    }
    if let Some(dir) = &plan.cwd {
        sys::chdir(dir).map_err(fail(Stage::Chdir, Detail::Bytes(dir.as_bytes())))?;
    }
    if let Some(mask) = plan.umask {
        sys::umask(mask);
    }
    setup_fds(ctx)?;
    let (ignored, mask): (SigSet, SigSet) = match plan.signals {
        ChildSignals::Clean => (0, 0),
        ChildSignals::Restore(i) => (i.ignored, i.mask),
    };
    sys::reset_dispositions(ignored).map_err(fail(Stage::Signals, Detail::None))?;
    if let Some(p) = ctx.pid_env {
        p.fill(sys::getpid());
    }
    sys::sigprocmask_set(mask).map_err(fail(Stage::Signals, Detail::None))?;
    Ok(())
}

/// dup2 every source onto its target (0, 1, 2, 3..), then close everything else but the
/// status pipe. Sources and the pipe sitting in the target range are first moved above it,
/// so no dup2 clobbers an fd still to be placed.
fn setup_fds<'a>(ctx: &mut ChildCtx<'a>) -> Result<(), Failure<'a>> {
    let first_free = ctx.first_free;
    if ctx.status < first_free {
        // It is CLOEXEC, so the copy still closes on exec.
        ctx.status = sys::dup_above(ctx.status, first_free).map_err(fail(Stage::Stdio, Detail::None))?;
    }
    for (src, target) in ctx.moves.iter_mut() {
        if *src < first_free {
            let t = u32::try_from(*target).unwrap_or(0);
            *src = sys::dup_above(*src, first_free).map_err(fail(Stage::Stdio, Detail::Number(t)))?;
        }
    }
    for &(src, target) in ctx.moves.iter() {
        let t = u32::try_from(target).unwrap_or(0);
        sys::dup2(src, target).map_err(fail(Stage::Stdio, Detail::Number(t)))?;
    }
    for &fd in ctx.inherit {
        // A closed inherited fd stays closed (EBADF); init marks its own fds CLOEXEC.
        let _ = sys::clear_cloexec(fd);
    }
    let first = u32::try_from(first_free).unwrap_or(3);
    let status = u32::try_from(ctx.status).unwrap_or(u32::MAX);
    sys::close_range(first, status.saturating_sub(1))
        .and_then(|()| sys::close_range(status.saturating_add(1), u32::MAX))
        .map_err(fail(Stage::CloseFds, Detail::None))
}

/// Writes the failure record in one write (atomic under PIPE_BUF). Child-safe.
fn report(fd: RawFd, stage: Stage, errno: i32, detail: Detail<'_>) {
    let mut rec = [0u8; HEADER + DETAIL_MAX];
    let mut digits = [0u8; 10];
    let detail: &[u8] = match detail {
        Detail::None => &[],
        Detail::Bytes(b) => b,
        Detail::Number(n) => format_u32(n, &mut digits),
    };
    let len = detail.len().min(DETAIL_MAX);
    let [e0, e1, e2, e3] = errno.to_le_bytes();
    let [l0, l1] = u16::try_from(len).unwrap_or(0).to_le_bytes();
    let header = [stage as u8, e0, e1, e2, e3, l0, l1];
    for (d, s) in rec.iter_mut().zip(header.iter().chain(detail.iter().take(len))) {
        *d = *s;
    }
    let _ = sys::write_all_once(fd, rec.get(..HEADER + len).unwrap_or(&[]));
}

/// Decimal digits of `n` in `buf`, without allocating.
fn format_u32(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or(&[])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::spec::Credentials;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
    }

    fn keys(env: &[(OsString, OsString)]) -> Vec<String> {
        env.iter().map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())).collect()
    }

    fn account() -> Account {
        Account { name: "www".into(), home: "/home/www".into() }
    }

    #[test]
    fn default_env_is_exactly_hostname_path_user_home_term() {
        let spec = ServiceSpec::new("web", vec!["/bin/true".into()]);
        let init = os(&[("PATH", "/x:/y"), ("TERM", "xterm"), ("SECRET", "1"), ("HOME", "/root")]);
        let env = service_env(&spec, &init, Some(&account()), "box");
        assert_eq!(keys(&env), ["HOSTNAME=box", "PATH=/x:/y", "USER=www", "HOME=/home/www", "TERM=xterm"]);
    }

    #[test]
    fn path_defaults_and_user_falls_back_to_root() {
        let spec = ServiceSpec::new("web", vec!["/bin/true".into()]);
        let env = service_env(&spec, &[], None, "box");
        if sys::getuid() == 0 {
            assert_eq!(
                keys(&env),
                ["HOSTNAME=box", format!("PATH={DEFAULT_PATH}").as_str(), "USER=root", "HOME=/"]
            );
        }
    }

    #[test]
    fn keep_env_re_export_additional_precedence() {
        let mut spec = ServiceSpec::new("web", vec!["/bin/true".into()]);
        spec.env.keep_env = true;
        spec.env.re_export = vec!["TERM".into(), "MISSING".into()];
        spec.env.additional = vec![("TERM".into(), "bar".into()), ("A".into(), "1".into())];
        let init = os(&[
            ("SECRET", "s"),
            ("NOTIFY_SOCKET", "/run/n"),
            ("LISTEN_FDS", "2"),
            ("LISTEN_PID", "1"),
            ("HOME", "/root"),
            ("TERM", "xterm"),
        ]);
        let env = service_env(&spec, &init, Some(&account()), "box");
        let k = keys(&env);
        assert!(k.contains(&"SECRET=s".to_string()));
        assert!(k.contains(&"HOME=/home/www".to_string()));
        assert!(k.contains(&"TERM=bar".to_string()));
        assert!(k.contains(&"A=1".to_string()));
        assert!(!k.iter().any(|e| e.starts_with("NOTIFY_SOCKET=") || e.starts_with("LISTEN_")));
        assert_eq!(k.iter().filter(|e| e.starts_with("TERM=")).count(), 1);
    }

    #[test]
    fn re_export_of_init_only_variables_is_refused() {
        let mut spec = ServiceSpec::new("web", vec!["/bin/true".into()]);
        spec.env.re_export = vec!["NOTIFY_SOCKET".into()];
        let env = service_env(&spec, &os(&[("NOTIFY_SOCKET", "/x")]), None, "h");
        assert!(lookup(&env, "NOTIFY_SOCKET").is_none());
    }

    #[test]
    fn passwd_parsing() {
        let text = "root:x:0:0:root:/root:/bin/sh\n\nbad line\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            parse_passwd(text, 65534),
            Some(Account { name: "nobody".into(), home: "/nonexistent".into() })
        );
        assert_eq!(parse_passwd(text, 0).map(|a| a.home), Some("/root".into()));
        assert_eq!(parse_passwd(text, 5), None);
    }

    #[test]
    fn path_lookup_uses_the_services_path() {
        let mut spec = ServiceSpec::new("web", vec!["busybox".into(), "true".into()]);
        spec.env.additional = vec![("PATH".into(), "relative:/nonexistent:/bin".into())];
        let plan = Plan::for_service(&spec, &[], None).unwrap();
        assert_eq!(plan.program(), "/bin/busybox");
        assert!(plan.found);

        spec.env.additional = vec![("PATH".into(), "/nonexistent".into())];
        let plan = Plan::for_service(&spec, &[], None).unwrap();
        assert_eq!(plan.program(), "busybox");
        assert!(!plan.found);
    }

    #[test]
    fn plan_errors() {
        assert!(Plan::for_argv(vec![], &[]).is_err());
        assert!(Plan::for_argv(vec!["/bin/a\0b".into()], &[]).is_err());
        let mut spec = ServiceSpec::new("web", vec!["/bin/true".into()]);
        spec.env.additional = vec![("A=B".into(), "1".into())];
        assert!(Plan::for_service(&spec, &[], None).is_err());
    }

    #[test]
    fn credentials_unchanged_are_not_applied() {
        let mut spec = ServiceSpec::new("web", vec!["/bin/true".into()]);
        let groups = sys::getgroups().unwrap().into_boxed_slice();
        spec.user = Some(Credentials { uid: sys::getuid(), gid: sys::getgid(), groups });
        let plan = Plan::for_service(&spec, &[], None).unwrap();
        assert_eq!(plan.creds, None);
    }

    #[test]
    fn set_env_replaces() {
        let mut plan = Plan::for_argv(vec!["/bin/true".into()], &os(&[("A", "1"), ("B", "2")])).unwrap();
        plan.set_env("A", OsStr::new("3")).unwrap();
        plan.set_listen_fds(2).unwrap();
        let env: Vec<_> = plan.env().map(|e| e.to_string_lossy().into_owned()).collect();
        assert_eq!(env, ["B=2", "A=3", "LISTEN_FDS=2"]);
        assert!(plan.listen_pid);
    }

    #[test]
    fn records_decode_to_messages() {
        let mut rec = vec![Stage::Exec as u8];
        rec.extend_from_slice(&2i32.to_le_bytes());
        rec.extend_from_slice(&12u16.to_le_bytes());
        rec.extend_from_slice(b"/usr/bin/web");
        assert_eq!(
            decode_record(&rec),
            ExecStatus::Failed {
                message: "unable to exec /usr/bin/web: No such file or directory".into(),
                errno: 2
            }
        );
        assert!(matches!(decode_record(&[99]), ExecStatus::Failed { errno: 0, .. }));
        assert!(matches!(decode_record(&[12, 1]), ExecStatus::Failed { errno: 0, .. }));
    }

    #[test]
    fn formats_numbers_without_allocating() {
        let mut b = [0u8; 10];
        assert_eq!(format_u32(0, &mut b), b"0");
        assert_eq!(format_u32(65534, &mut b), b"65534");
        assert_eq!(format_u32(u32::MAX, &mut b), b"4294967295");
    }
}
