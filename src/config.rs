//! config: finding, reading and parsing service files, and the checks across files (duplicate
//! names, missing dependencies, cycles). `validate` turns one parsed file into a `ServiceSpec`;
//! this module owns the I/O around it, the diagnostics and `init --check`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::graph::{Graph, normalize, set_bool};
use crate::sorted;
use crate::spec::{Config, Kind, ServiceSpec};
use crate::validate::{self, Ctx, DepRef, UserDb, io_reason};

/// Largest service file read (design: capacities from input are bounded).
pub const MAX_FILE_SIZE: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One message about one file: `web.toml:12:9: restart.strategy: expected ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based; 0 when the message is about the whole file.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    /// Dotted key (`restart.strategy`), or empty.
    pub key: String,
    pub message: String,
    pub severity: Severity,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--check`: a user or group name not found is a warning unless `root` is set.
    pub check: bool,
    /// `--root DIR`: read DIR/etc/passwd and DIR/etc/group.
    pub root: Option<PathBuf>,
    /// For `${VAR}` expansion in native files.
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The services that passed, sorted by name.
    pub config: Config,
    /// Every error and warning, grouped by file, in position order.
    pub diagnostics: Vec<Diagnostic>,
    /// Number of `Severity::Error` diagnostics.
    pub errors: usize,
    /// Number of targets in `config`.
    pub targets: usize,
}

/// One file after parsing: its spec (None when refused) and the references it makes.
struct Parsed {
    path: PathBuf,
    /// The name the file claims (its spec's name, or its stem when it did not parse).
    name: String,
    spec: Option<ServiceSpec>,
    refs: Vec<DepRef>,
}

fn diag(path: &Path, key: &str, message: String) -> Diagnostic {
    Diagnostic {
        path: path.to_path_buf(),
        line: 0,
        col: 0,
        key: key.to_string(),
        message,
        severity: Severity::Error,
    }
}

/// Parse and validate one file's text. No I/O, except /etc/passwd and /etc/group when the file
/// names a user or group.
pub fn parse_service(path: &Path, text: &str, opts: &LoadOptions) -> (Option<ServiceSpec>, Vec<Diagnostic>) {
    let mut users = UserDb::new(opts.root.as_deref());
    let p = parse_text(path, text, opts, &mut users);
    (p.0, p.1)
}

fn parse_text(
    path: &Path,
    text: &str,
    opts: &LoadOptions,
    users: &mut UserDb,
) -> (Option<ServiceSpec>, Vec<Diagnostic>, Vec<DepRef>) {
    let mut cx = Ctx::new(path, text, opts, users);
    let (root, errors) = toml::de::DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut seen = Vec::new();
        for e in errors {
            let span = e.span();
            if sorted::insert(&mut seen, span.as_ref().map(|s| s.start)) {
                let msg = format!("TOML syntax: {}", e.message().trim_end());
                cx.diag(Severity::Error, span, "", msg);
            }
        }
        let mut d = cx.diags;
        sort_diags(&mut d);
        return (None, d, Vec::new());
    }
    let span = root.span();
    let spec = validate::service(&mut cx, root.get_ref(), span);
    let refs = std::mem::take(&mut cx.refs);
    let mut d = cx.diags;
    sort_diags(&mut d);
    (spec, d, refs)
}

/// By file, then position; file-level messages (line 0) lead. Stable: one file's messages keep
/// their order. One instantiation of the sort for the whole module (binary size).
fn sort_diags(d: &mut [Diagnostic]) {
    d.sort_by(|a, b| (&a.path, a.line, a.col).cmp(&(&b.path, b.line, b.col)));
}

/// The files to read: each path itself, or a directory's `*.toml` entries (sorted, not recursive).
fn collect(paths: &[PathBuf], diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => {
                diags.push(diag(p, "", io_reason(&e)));
                continue;
            }
        };
        if !meta.is_dir() {
            files.push(p.clone());
            continue;
        }
        let entries = match std::fs::read_dir(p) {
            Ok(rd) => rd,
            Err(e) => {
                diags.push(diag(p, "", format!("cannot read directory: {}", io_reason(&e))));
                continue;
            }
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|f| f.extension().is_some_and(|x| x == "toml"))
            .collect();
        found.sort();
        if found.is_empty() {
            diags.push(diag(p, "", "no service files (*.toml) in this directory".into()));
        }
        files.extend(found);
    }
    files
}

/// Read one file: a regular file, at most 1 MiB, UTF-8. Errors name the file.
fn read(path: &Path) -> Result<String, Diagnostic> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let dangling = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            let msg = if dangling {
                let to = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
                format!("dangling symbolic link (to {to:?})")
            } else {
                format!("cannot read: {}", io_reason(&e))
            };
            return Err(diag(path, "", msg));
        }
    };
    if !meta.is_file() {
        return Err(diag(path, "", "not a regular file".into()));
    }
    if meta.len() > MAX_FILE_SIZE {
        let msg = format!("file is larger than 1 MiB ({} bytes)", meta.len());
        return Err(diag(path, "", msg));
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        return Err(diag(path, "", format!("cannot read: {}", io_reason(&e))));
    }
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(diag(path, "", "file is larger than 1 MiB".into()));
    }
    String::from_utf8(bytes).map_err(|e| {
        let ok = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let prefix = bytes.get(..ok).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("");
        let (line, col) = validate::Source::new(prefix).pos(prefix.len());
        let byte = bytes.get(ok).copied().unwrap_or(0);
        Diagnostic { line, col, ..diag(path, "", format!("not valid UTF-8 (byte 0x{byte:02x})")) }
    })
}

/// Load service files and directories. A bad file refuses only its own service; so does a
/// missing `requires`/`start-after`/`die-if-failed` target, a cycle, or a duplicate name.
pub fn load(paths: &[PathBuf], opts: &LoadOptions) -> Loaded {
    let mut diags = Vec::new();
    let mut users = UserDb::new(opts.root.as_deref());
    let mut parsed = Vec::new();
    for path in collect(paths, &mut diags) {
        let stem = path.file_name().map(|f| normalize(&f.to_string_lossy()).to_string()).unwrap_or_default();
        let text = match read(&path) {
            Ok(t) => t,
            Err(d) => {
                diags.push(d);
                parsed.push(Parsed { path, name: stem, spec: None, refs: Vec::new() });
                continue;
            }
        };
        let (spec, d, refs) = parse_text(&path, &text, opts, &mut users);
        diags.extend(d);
        let name = spec.as_ref().map_or(stem, |s| s.name.clone());
        parsed.push(Parsed { path, name, spec, refs });
    }
    let services = cross_check(parsed, &mut diags);
    // Group by file, keeping each file's position order; file-level messages lead.
    sort_diags(&mut diags);
    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
    let targets = services.iter().filter(|s| s.kind == Kind::Target).count();
    Loaded { config: Config { services }, diagnostics: diags, errors, targets }
}

/// Duplicate names, missing references, cycles. Refusing a service can make its dependents'
/// references missing, so repeat until nothing more is refused.
fn cross_check(parsed: Vec<Parsed>, diags: &mut Vec<Diagnostic>) -> Vec<ServiceSpec> {
    let mut refused: Vec<String> = Vec::new();
    let mut live: Vec<(ServiceSpec, Vec<DepRef>)> = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        let others: Vec<String> = parsed
            .iter()
            .enumerate()
            .filter(|(j, q)| *j != i && q.name == p.name)
            .map(|(_, q)| q.path.display().to_string())
            .collect();
        if !others.is_empty() {
            let msg = format!("service \"{}\" is also defined in {}", p.name, others.join(", "));
            diags.push(diag(&p.path, "name", msg));
            sorted::insert(&mut refused, p.name.clone());
        } else if p.spec.is_none() {
            sorted::insert(&mut refused, p.name.clone());
        }
    }
    for p in parsed {
        if let Some(s) = p.spec
            && !sorted::contains(&refused, &s.name)
        {
            live.push((s, p.refs));
        }
    }
    live.sort_unstable_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut warned = Vec::new();
    loop {
        let config = Config { services: live.iter().map(|(s, _)| s.clone()).collect() };
        let graph = Graph::build(&config);
        // By index in `live`.
        let mut refuse = vec![false; live.len()];
        for m in &graph.missing {
            let Some((s, refs)) = live.get(m.from) else {
                continue;
            };
            let r = refs.iter().find(|r| r.edge == m.edge && r.name == normalize(&m.name));
            let (line, col, key) =
                r.map_or((0, 0, m.edge.key().to_string()), |r| (r.line, r.col, r.key.clone()));
            let what = if sorted::contains(&refused, normalize(&m.name)) {
                format!("service \"{}\" has errors and is not loaded", m.name)
            } else {
                format!("no service named \"{}\"", m.name)
            };
            let (severity, message) = if m.edge.missing_is_error() {
                set_bool(&mut refuse, m.from);
                (Severity::Error, what)
            } else {
                if !sorted::insert(&mut warned, (s.name.clone(), m.edge, m.name.clone())) {
                    continue;
                }
                (Severity::Warning, format!("{what}; ignored"))
            };
            diags.push(Diagnostic { path: s.file.clone(), line, col, key, message, severity });
        }
        for cycle in graph.cycles() {
            let names: Vec<&str> =
                cycle.iter().filter_map(|&i| live.get(i).map(|(s, _)| s.name.as_str())).collect();
            let (Some(&first), Some(second)) = (cycle.first(), names.get(1)) else {
                continue;
            };
            let Some((s, refs)) = live.get(first) else {
                continue;
            };
            let r = refs.iter().find(|r| r.edge.orders_start() && r.name == *second);
            let (line, col, key) = r.map_or((0, 0, String::new()), |r| (r.line, r.col, r.key.clone()));
            diags.push(Diagnostic {
                path: s.file.clone(),
                line,
                col,
                key,
                message: format!("cycle: {}", names.join(" -> ")),
                severity: Severity::Error,
            });
            for &i in &cycle {
                set_bool(&mut refuse, i);
            }
        }
        if !refuse.contains(&true) {
            break;
        }
        let mut i = 0;
        live.retain(|(s, _)| {
            let keep = refuse.get(i) != Some(&true);
            if !keep {
                sorted::insert(&mut refused, s.name.clone());
            }
            i += 1;
            keep
        });
    }
    live.into_iter().map(|(s, _)| s).collect()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// `init --check PATH...`: every diagnostic, then a one-line summary; 0 when there is no error.
pub fn check(paths: &[PathBuf], root: Option<&Path>, out: &mut dyn std::io::Write) -> i32 {
    let opts = LoadOptions {
        check: true,
        root: root.map(Path::to_path_buf),
        env: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
    };
    let loaded = load(paths, &opts);
    for d in &loaded.diagnostics {
        let _ = writeln!(out, "{d}");
    }
    let warnings = loaded.diagnostics.len() - loaded.errors;
    let warn = if warnings > 0 { format!(", {}", plural(warnings, "warning")) } else { String::new() };
    if loaded.errors == 0 {
        let services = loaded.config.services.len() - loaded.targets;
        let _ =
            writeln!(out, "ok: {}, {}{warn}", plural(services, "service"), plural(loaded.targets, "target"));
        0
    } else {
        let mut files: Vec<&Path> = Vec::new();
        for d in loaded.diagnostics.iter().filter(|d| d.severity == Severity::Error) {
            sorted::insert(&mut files, d.path.as_path());
        }
        let _ = writeln!(
            out,
            "error: {} in {}{warn}",
            plural(loaded.errors, "error"),
            plural(files.len(), "file")
        );
        1
    }
}

/// `init --sample-service`: every key with its default. Passes `--check` (tested).
pub const SAMPLE_SERVICE: &str = r#"# A service file for init (ankh). The name is the file stem (web.toml is "web").
# Every key is shown with its default; only `command` is required. Keys with no default are
# commented out. Horust service files load unchanged; see docs/config.md for every key.

command = "/bin/echo hello"      # a string split like a shell (quotes, no expansion), or an array
# name = "web"                   # default: the file stem
# user = "www"                   # name (from /etc/passwd) or uid; default: init's user
# group = "www"                  # default: the user's group
# working-directory = "/srv/web" # default: init's working directory
# umask = "022"                  # default: inherited from init
start-delay = "0s"               # before every start
autostart = true                 # false: started by `init start` or a dependent
oneshot = false                  # runs to completion; ready when it exits successfully
requires = []                    # start these first, wait until ready; stop with them
start-after = []                 # wait until these are ready or finished (Horust)
after = []                       # order only, when both are being started
wants = []                       # start these too
conflicts = []                   # starting one stops the other
shutdown-after = []              # on shutdown, stop this one after these (Horust)
ready = "auto"                   # auto | started | healthy | notify | "fd:3"
start = "auto"                   # auto | on-demand (needs [socket] or [proxy])
start-timeout = "0s"             # 0 = none
idle-timeout = "0s"              # on-demand only: stop after this long idle; 0 = never
stdout = "log"                   # log | STDOUT | STDERR | null | /path/to/file
stderr = "log"
stdout-rotate-size = "0"         # rotate file output at this size; 0 = never
stdout-rotate-keep = 5           # rotated files kept
stdout-should-append-timestamp-to-filename = false
log-buffer = "16KiB"             # ring kept for `init logs`
forward-signals = []             # e.g. ["WINCH", "USR1"]
# signal-rewrite = "TERM:INT"    # forwarded signal FROM:TO pairs

[restart]
strategy = "never"               # always | on-failure | never
backoff = "0s"                   # first delay (at least 100ms), doubling per consecutive failure
max-backoff = "60s"
attempts = 0                     # consecutive failed runs before giving up; 0 = never give up
reset-after = "60s"              # a run this long resets the count and the delay

[healthiness]                    # checks run only when one of the four is set
# http-endpoint = "http://127.0.0.1:8080/healthz"   # healthy on 2xx
# tcp-endpoint = "127.0.0.1:5432"                   # healthy when connect succeeds
# command = "/usr/bin/check"                        # healthy on exit 0
# file-path = "/run/web.up"                         # healthy while it exists
interval = "1s"
timeout = "1s"
start-period = "0s"              # failures this soon after start don't count
max-failed = 3                   # consecutive failures before unhealthy
on-unhealthy = "restart"         # restart | stop | ignore

[failure]
successful-exit-code = [0]
strategy = "ignore"              # ignore | kill-dependents | shutdown

[termination]
signal = "TERM"
wait = "5s"                      # then SIGKILL to the process group
die-if-failed = []

[environment]
keep-env = false                 # start from init's environment instead of an empty one
re-export = []                   # copy these from init's environment
additional = {}                  # e.g. { RUST_LOG = "info" }

[resource-limit]
# nofile = 65536                 # rlimits: nofile, nproc, core, memlock, stack ("unlimited" ok)
# cpu = 0.5                      # cgroup v2: cores, memory ("512 MiB"), pids-max
# memory = "512 MiB"
# pids-max = 100
required = false                 # true: refuse to start when cgroup limits cannot be applied

# [socket]                       # socket activation: fds 3.., LISTEN_FDS
# listen = ["tcp:127.0.0.1:8080", "unix:/run/web.sock"]
# mode = "0660"                  # unix sockets
# owner = "www"
# backlog = 128

# [proxy]                        # init accepts and copies bytes to the backend (zinit's xinet)
# listen = "tcp:0.0.0.0:5432"
# backend = "unix:/run/postgres.sock"
# max-connections = 256
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::graph::Edge;
    use crate::spec::*;
    use std::time::Duration;

    fn opts() -> LoadOptions {
        LoadOptions {
            check: false,
            root: None,
            env: vec![("HOME".into(), "/home/me".into()), ("EMPTY".into(), String::new())],
        }
    }

    fn parse(text: &str) -> (Option<ServiceSpec>, Vec<String>) {
        let (s, d) = parse_service(Path::new("web.toml"), text, &opts());
        (s, d.iter().map(ToString::to_string).collect())
    }

    #[track_caller]
    fn ok(text: &str) -> ServiceSpec {
        let (s, d) = parse(text);
        assert!(d.is_empty(), "unexpected diagnostics: {d:#?}");
        s.unwrap()
    }

    #[track_caller]
    fn errs(text: &str) -> Vec<String> {
        let (s, d) = parse(text);
        assert!(s.is_none(), "accepted: {text}");
        d
    }

    #[track_caller]
    fn err1(text: &str) -> String {
        let d = errs(text);
        assert_eq!(d.len(), 1, "{d:#?}");
        d.into_iter().next().unwrap()
    }

    const CMD: &str = "command = \"/bin/true\"\n";

    #[test]
    fn defaults_are_horusts_with_log_output() {
        let s = ok(CMD);
        let mut want = ServiceSpec::new("web", vec!["/bin/true".into()]);
        want.file = "web.toml".into();
        assert_eq!(s, want);
        assert_eq!(s.restart.strategy, RestartStrategy::Never);
        assert_eq!(s.restart.backoff, MIN_BACKOFF);
        assert_eq!(s.restart.attempts, 0);
        assert_eq!(s.failure.successful_exit_codes, vec![0]);
        assert_eq!(s.failure.strategy, FailureStrategy::Ignore);
        assert!(!s.env.keep_env);
        assert_eq!(s.termination.signal, 15);
        assert_eq!(s.termination.wait, Duration::from_secs(5));
        assert_eq!((s.stdout.clone(), s.stderr.clone()), (Output::Log, Output::Log));
        assert_eq!(s.kind, Kind::Service);
        assert_eq!(s.format, Format::Native);
    }

    #[test]
    fn every_native_key() {
        let s = ok(r#"
name = "web.toml"
command = ["/usr/bin/web", "--port", "8080"]
working-directory = "/srv/web"
user = 0
group = 0
umask = "027"
start-delay = "1s"
autostart = false
oneshot = true
requires = ["db.toml", "db"]
start-after = ["migrate"]
after = ["logger"]
wants = ["metrics"]
conflicts = ["legacy"]
shutdown-after = ["proxy"]
ready = "fd:3"
stdout = "/var/log/web.log"
stderr = "STDOUT"
stdout-rotate-size = "100 MB"
stdout-rotate-keep = 3
stdout-should-append-timestamp-to-filename = true
forward-signals = ["WINCH", "SIGUSR1", 12]
log-buffer = "32KiB"
start = "on-demand"
start-timeout = "30s"
idle-timeout = "5m"
signal-rewrite = "TERM:INT, HUP=USR1"

[restart]
strategy = "on-failure"
backoff = "1s"
max-backoff = "60s"
attempts = 10
reset-after = "2m"

[healthiness]
http-endpoint = "http://127.0.0.1:8080/healthz"
tcp-endpoint = "127.0.0.1:5432"
command = "/usr/bin/check --quiet"
file-path = "/run/web.up"
interval = "10s"
timeout = "2s"
start-period = "3s"
max-failed = 4
on-unhealthy = "stop"

[failure]
successful-exit-code = [0, 1, 255]
strategy = "kill-dependents"

[termination]
signal = "QUIT"
wait = "7s"
die-if-failed = ["db.toml"]

[environment]
keep-env = true
re-export = ["PATH", "DB_PASS"]
additional = { Z = "1", A = "${HOME}/x", N = 5, B = true }

[resource-limit]
nofile = 65536
nproc = "unlimited"
core = 0
memlock = "64 MiB"
stack = "8MiB"
cpu = 0.5
memory = "512 MiB"
pids-max = 100
required = true

[socket]
listen = ["tcp:127.0.0.1:8080", "unix:/run/web.sock"]
mode = "0660"
owner = 0
backlog = 64

[proxy]
listen = "tcp:0.0.0.0:5432"
backend = "unix:/run/postgres.sock"
max-connections = 10
"#);
        assert_eq!(s.name, "web");
        assert_eq!(s.command, ["/usr/bin/web", "--port", "8080"]);
        assert_eq!(s.working_directory, Some("/srv/web".into()));
        let u = s.user.unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.groups.first(), Some(&0));
        assert_eq!(s.umask, Some(0o027));
        assert_eq!(s.start_delay, Duration::from_secs(1));
        assert!(!s.autostart && s.oneshot);
        assert_eq!(s.deps.requires, ["db"]);
        assert_eq!(s.deps.start_after, ["migrate"]);
        assert_eq!(s.deps.after, ["logger"]);
        assert_eq!(s.deps.wants, ["metrics"]);
        assert_eq!(s.deps.conflicts, ["legacy"]);
        assert_eq!(s.deps.shutdown_after, ["proxy"]);
        assert_eq!(s.deps.die_if_failed, ["db"]);
        assert_eq!(s.ready, Ready::Fd(3));
        assert_eq!(s.stdout, Output::File("/var/log/web.log".into()));
        assert_eq!(s.stderr, Output::Stdout);
        assert_eq!(s.log.rotate_size, 100_000_000);
        assert_eq!(s.log.rotate_keep, 3);
        assert!(s.log.append_timestamp);
        assert_eq!(s.log.buffer, 32 * 1024);
        assert_eq!(s.forward_signals, [28, 10, 12]);
        assert_eq!(s.start, StartMode::OnDemand);
        assert_eq!(s.start_timeout, Duration::from_secs(30));
        assert_eq!(s.idle_timeout, Duration::from_secs(300));
        assert_eq!(s.signal_rewrite, [(15, 2), (1, 10)]);
        let r = s.restart;
        assert_eq!(r.strategy, RestartStrategy::OnFailure);
        assert_eq!(r.backoff, Duration::from_secs(1));
        assert_eq!(r.max_backoff, Duration::from_secs(60));
        assert_eq!(r.attempts, 10);
        assert_eq!(r.reset_after, Duration::from_secs(120));
        let h = s.health.clone().unwrap();
        assert_eq!(h.http.unwrap().path, "/healthz");
        assert_eq!(h.tcp.unwrap().port, 5432);
        assert_eq!(h.command.unwrap(), ["/usr/bin/check", "--quiet"]);
        assert_eq!(h.file, Some("/run/web.up".into()));
        assert_eq!(h.interval, Duration::from_secs(10));
        assert_eq!(h.timeout, Duration::from_secs(2));
        assert_eq!(h.start_period, Duration::from_secs(3));
        assert_eq!(h.max_failed, 4);
        assert_eq!(h.on_unhealthy, OnUnhealthy::Stop);
        assert_eq!(s.failure.successful_exit_codes, [0, 1, 255]);
        assert_eq!(s.failure.strategy, FailureStrategy::KillDependents);
        assert_eq!(s.termination.signal, 3);
        assert_eq!(s.termination.wait, Duration::from_secs(7));
        assert!(s.env.keep_env);
        assert_eq!(s.env.re_export, ["PATH", "DB_PASS"]);
        let add: Vec<(&str, &str)> = s.env.additional.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(add, [("Z", "1"), ("A", "/home/me/x"), ("N", "5"), ("B", "true")]);
        assert_eq!(
            s.limits.rlimits,
            [
                (Rlimit::Nofile, 65536),
                (Rlimit::Nproc, u64::MAX),
                (Rlimit::Core, 0),
                (Rlimit::Memlock, 64 << 20),
                (Rlimit::Stack, 8 << 20)
            ]
        );
        assert_eq!(s.limits.cpu, Some(0.5));
        assert_eq!(s.limits.memory, Some(512 << 20));
        assert_eq!(s.limits.pids_max, Some(100));
        assert!(s.limits.required);
        let sock = s.socket.clone().unwrap();
        assert_eq!(sock.listen.len(), 2);
        assert_eq!(sock.mode, Some(0o660));
        assert_eq!(sock.owner.map(|c| c.uid), Some(0));
        assert_eq!(sock.backlog, 64);
        let p = s.proxy.clone().unwrap();
        assert_eq!(p.listen, [ListenAddr::Tcp("0.0.0.0:5432".parse().unwrap())]);
        assert_eq!(p.backend, ListenAddr::Unix("/run/postgres.sock".into()));
        assert_eq!(p.max_connections, 10);
    }

    #[test]
    fn design_sample_is_accepted() {
        // The sample of design §4, verbatim apart from the user (no "www" here).
        let s = ok(r#"
command = ["/usr/bin/web", "--port", "8080"]
working-directory = "/srv/web"
start-delay = "0s"
autostart = true
oneshot = false
requires = ["db"]
start-after = ["migrate"]
after = ["logger"]
wants = ["metrics"]
conflicts = ["legacy"]
ready = "auto"
stdout = "log"
stderr = "log"
stdout-rotate-keep = 5
forward-signals = []
log-buffer = "16KiB"
start = "auto"
start-timeout = "0s"
idle-timeout = "0s"
stdout-rotate-size = "0"

[restart]
strategy = "on-failure"
backoff = "1s"
max-backoff = "60s"
attempts = 10
reset-after = "60s"

[healthiness]
http-endpoint = "http://127.0.0.1:8080/healthz"
tcp-endpoint = "127.0.0.1:5432"
command = ["/usr/bin/check"]
file-path = "/run/web.up"
interval = "10s"
timeout = "2s"
start-period = "0s"
max-failed = 3
on-unhealthy = "restart"

[failure]
successful-exit-code = [0]
strategy = "ignore"

[termination]
signal = "TERM"
wait = "5s"
die-if-failed = ["db"]

[environment]
keep-env = false
re-export = ["PATH"]
additional = { RUST_LOG = "info" }

[resource-limit]
nofile = 65536
pids-max = 100
required = false

[socket]
listen = ["tcp:127.0.0.1:8080", "unix:/run/web.sock"]

[proxy]
listen = "tcp:0.0.0.0:5432"
backend = "unix:/run/postgres.sock"
"#);
        assert_eq!(s.effective_ready(), Ready::Healthy);
    }

    #[test]
    fn health_is_an_alias_of_healthiness() {
        let s = ok(&format!("{CMD}[health]\nfile-path = \"/run/up\"\n"));
        assert_eq!(s.health.unwrap().file, Some("/run/up".into()));
        let e = errs(&format!("{CMD}[health]\nfile-path = \"/a\"\n[healthiness]\nfile-path = \"/b\"\n"));
        assert!(e[0].contains("same table"), "{e:?}");
        // Timing alone configures no check.
        assert_eq!(ok(&format!("{CMD}[healthiness]\ninterval = \"5s\"\n")).health, None);
    }

    #[test]
    fn command_forms() {
        assert_eq!(ok("command = \"sh -c 'echo a b'\"").command, ["sh", "-c", "echo a b"]);
        assert_eq!(ok("command = [\"a b\"]").command, ["a b"]);
        assert_eq!(err1("command = \"\""), "web.toml:1:11: command: empty command");
        assert_eq!(err1("command = []"), "web.toml:1:11: command: empty command");
        assert_eq!(err1("command = [\"\"]"), "web.toml:1:11: command: empty program name");
        assert_eq!(err1(""), "web.toml: command: missing");
        assert_eq!(err1("# only a comment\n"), "web.toml: command: missing");
        assert_eq!(
            err1("command = [\"a\", 1]"),
            "web.toml:1:17: command: expected a string, found integer 1"
        );
    }

    #[test]
    fn a_native_file_with_dependencies_and_no_command_is_a_target() {
        let s = ok("requires = [\"a\", \"b\"]\n");
        assert_eq!(s.kind, Kind::Target);
        assert!(s.command.is_empty());
    }

    #[test]
    fn restart_backoff_is_floored_and_capped() {
        let s = ok(&format!("{CMD}[restart]\nbackoff = \"0s\"\n"));
        assert_eq!(s.restart.backoff, MIN_BACKOFF);
        let s = ok(&format!("{CMD}[restart]\nbackoff = \"2m\"\n"));
        assert_eq!(s.restart.max_backoff, Duration::from_secs(120));
        assert_eq!(
            err1(&format!("{CMD}[restart]\nbackoff = \"10s\"\nmax-backoff = \"1s\"\n")),
            "web.toml:4:15: restart.max-backoff: must not be less than restart.backoff"
        );
    }

    #[test]
    fn env_expansion() {
        let s = ok("command = \"/bin/echo ${HOME} ${NOPE:-d ef} ${EMPTY:-e} $$HOME $HOME $ x\"");
        assert_eq!(s.command, ["/bin/echo", "/home/me", "d", "ef", "e", "$HOME", "$HOME", "$", "x"]);
        assert_eq!(
            err1("command = \"/bin/true\"\nworking-directory = \"${NOPE}\""),
            "web.toml:2:21: working-directory: undefined variable ${NOPE} (use ${NOPE:-default}, or \"$$\" for a literal \"$\")"
        );
        assert!(err1("command = \"${HOME\"").contains("unterminated"));
        assert!(err1("command = \"${}\"").contains("invalid variable name"));
        // zinit files are not expanded: `exec` goes to sh -c.
        let (s, d) =
            parse_service(Path::new("z.toml"), "[service]\nname = \"z\"\nexec = \"echo ${NOPE}\"\n", &opts());
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(s.unwrap().command[2], "echo ${NOPE}");
    }

    #[test]
    fn every_error_in_a_file_is_reported() {
        let d = errs(
            "command = 1\nstart-delay = \"x\"\n[restart]\nstrategy = \"alway\"\nattempts = -1\n[termination]\nsignal = \"NOPE\"\n",
        );
        assert_eq!(d.len(), 5, "{d:#?}");
        assert_eq!(
            d[2],
            "web.toml:4:12: restart.strategy: expected one of always, on-failure, never, found \"alway\"; did you mean \"always\"?"
        );
    }

    #[test]
    fn wrong_types() {
        assert_eq!(
            err1(&format!("{CMD}restart = \"always\"")),
            "web.toml:2:11: restart: expected a table, found \"always\""
        );
        assert_eq!(
            err1(&format!("{CMD}autostart = 1")),
            "web.toml:2:13: autostart: expected true or false, found integer 1"
        );
        assert_eq!(
            err1(&format!("{CMD}start-delay = 5")),
            "web.toml:2:15: start-delay: expected a duration with a unit such as \"5s\" or \"5ms\", found integer 5"
        );
        assert_eq!(
            err1(&format!("{CMD}[restart]\nattempts = 1.5")),
            "web.toml:3:12: restart.attempts: expected an integer, found float 1.5"
        );
        assert_eq!(
            err1(&format!("{CMD}[failure]\nsuccessful-exit-code = [256]")),
            "web.toml:3:25: failure.successful-exit-code: 256 is out of range (0 to 255)"
        );
        assert_eq!(
            err1(&format!("{CMD}log-buffer = \"1 GiB\"")),
            "web.toml:2:14: log-buffer: 1073741824 bytes is too large (at most 67108864)"
        );
        assert!(err1(&format!("{CMD}umask = 18")).contains("octal"));
        assert!(err1(&format!("{CMD}umask = \"99\"")).contains("octal"));
        assert!(err1(&format!("{CMD}ready = \"fd:2\"")).contains("3 to 1023"));
        assert!(err1(&format!("{CMD}[resource-limit]\ncpu = 0")).contains("cores"));
        assert!(
            err1(&format!("{CMD}[healthiness]\nfile-path = \"/x\"\ninterval = \"0s\""))
                .contains("greater than zero")
        );
        assert!(
            err1(&format!("{CMD}[healthiness]\nfile-path = \"/x\"\nmax-failed = 0")).contains("out of range")
        );
        assert!(err1(&format!("{CMD}start = \"on-demand\"")).contains("needs a [socket]"));
        assert!(err1(&format!("{CMD}[socket]\nmode = \"0600\"")).contains("socket.listen: missing"));
        assert!(
            err1(&format!("{CMD}[proxy]\nlisten = \"tcp:0.0.0.0:1\"")).contains("proxy.backend: missing")
        );
        assert!(err1(&format!("{CMD}signal-rewrite = \"TERM\"")).contains("invalid pair"));
        assert!(err1(&format!("{CMD}name = \"a/b\"")).contains("invalid service name"));
        assert!(err1(&format!("{CMD}requires = [\"a b\"]")).contains("invalid service name"));
        assert!(
            err1(&format!("{CMD}[environment]\nre-export = [\"A=B\"]")).contains("invalid variable name")
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_hints() {
        assert_eq!(
            errs("comand = \"/bin/true\""),
            ["web.toml: command: missing", "web.toml:1:1: comand: unknown key; did you mean \"command\"?"]
        );
        assert_eq!(err1(&format!("{CMD}[resource]\nnofile = 1")), "web.toml:2:2: resource: unknown table");
        assert_eq!(
            err1(&format!("{CMD}[environment]\nkeepenv = true")),
            "web.toml:3:1: environment.keepenv: unknown key; did you mean \"keep-env\"?"
        );
    }

    #[test]
    fn output_targets() {
        let s = ok(&format!("{CMD}stdout = \"STDERR\"\nstderr = \"null\""));
        assert_eq!((s.stdout, s.stderr), (Output::Stderr, Output::Null));
        let (s, d) = parse(&format!("{CMD}stdout = \"stdout\""));
        assert_eq!(s.unwrap().stdout, Output::File("stdout".into()));
        assert_eq!(
            d,
            [
                "web.toml:2:10: warning: stdout: \"stdout\" is taken as a file relative to init's working directory; did you mean \"STDOUT\"?"
            ]
        );
    }

    #[test]
    fn users_by_name_at_run_time_and_in_check() {
        let text = format!("{CMD}user = \"no-such-user-ankh\"\n");
        let (s, d) = parse_service(Path::new("web.toml"), &text, &opts());
        assert!(s.is_none());
        assert_eq!(d[0].severity, Severity::Error);
        let check = LoadOptions { check: true, ..opts() };
        let (s, d) = parse_service(Path::new("web.toml"), &text, &check);
        assert_eq!(s.unwrap().user, None);
        assert_eq!(
            d[0].to_string(),
            "web.toml:2:8: warning: user: no user \"no-such-user-ankh\" in /etc/passwd"
        );
        // root is in every /etc/passwd.
        let s = ok(&format!("{CMD}user = \"root\"\ngroup = 0\n"));
        assert_eq!(s.user.map(|u| (u.uid, u.gid)), Some((0, 0)));
        // A bare number needs no database, and gets its own number as gid.
        let s = ok(&format!("{CMD}user = 4242\n"));
        assert_eq!(s.user.map(|u| (u.uid, u.gid)), Some((4242, 4242)));
    }

    #[test]
    fn zinit_service_maps_every_key() {
        let (s, d) = parse_service(
            Path::new("svc.toml"),
            r#"
[service]
name = "my-app"
exec = "/usr/bin/my-app --daemon"
dir = "/var/lib/my-app"
oneshot = false
status = "stop"
class = "system"
critical = true
env = { A = "1" }

[dependencies]
requires = ["database"]
after = ["logger"]
wants = ["metrics"]
conflicts = ["legacy-app"]

[lifecycle]
restart = "always"
stop_signal = "SIGINT"
start_timeout_ms = 1000
stop_timeout_ms = 2000
restart_delay_ms = 50
restart_delay_max_ms = 60000
max_restarts = 0
stability_period_ms = 5000

[health]
type = "tcp"
target = "127.0.0.1:5432"
interval_ms = 1000
timeout_ms = 500
retries = 2
start_period_ms = 3000

[logging]
buffer_lines = 100
"#,
            &opts(),
        );
        assert!(d.is_empty(), "{d:#?}");
        let s = s.unwrap();
        assert_eq!(s.name, "my-app");
        assert_eq!(s.format, Format::Zinit);
        assert_eq!(s.command, ["/bin/sh", "-c", "/usr/bin/my-app --daemon"]);
        assert_eq!(s.working_directory, Some("/var/lib/my-app".into()));
        assert!(!s.autostart);
        assert!(s.env.keep_env);
        assert_eq!(s.env.additional, [("A".to_string(), "1".to_string())]);
        assert_eq!(s.deps.requires, ["database"]);
        assert_eq!(s.deps.after, ["logger"]);
        assert_eq!(s.deps.wants, ["metrics"]);
        assert_eq!(s.deps.conflicts, ["legacy-app"]);
        assert_eq!(s.restart.strategy, RestartStrategy::Always);
        assert_eq!(s.termination.signal, 2);
        assert_eq!(s.termination.wait, Duration::from_secs(2));
        assert_eq!(s.restart.backoff, MIN_BACKOFF);
        assert_eq!(s.restart.max_backoff, Duration::from_secs(60));
        assert_eq!(s.restart.attempts, 0);
        assert_eq!(s.restart.reset_after, Duration::from_secs(5));
        let h = s.health.clone().unwrap();
        assert_eq!(h.tcp.unwrap().port, 5432);
        assert_eq!(h.interval, Duration::from_secs(1));
        assert_eq!(h.timeout, Duration::from_millis(500));
        assert_eq!(h.max_failed, 2);
        assert_eq!(h.start_period, Duration::from_secs(3));
        // Raised as zinit does: start_period + retries * (interval + timeout) + 5 s.
        assert_eq!(s.start_timeout, Duration::from_secs(11));
        assert_eq!(s.log.buffer, 100 * 128);
    }

    #[test]
    fn zinit_defaults_are_zincs() {
        let (s, d) = parse_service(
            Path::new("z.toml"),
            "[service]\nname = \"z\"\nexec = \"sleep 1\"\n[lifecycle]\nstart_timeout_ms = 5000\n",
            &opts(),
        );
        assert!(d.is_empty());
        let s = s.unwrap();
        assert!(s.autostart && !s.oneshot);
        assert_eq!(s.restart.strategy, RestartStrategy::OnFailure);
        assert_eq!(s.restart.backoff, Duration::from_secs(1));
        assert_eq!(s.restart.max_backoff, Duration::from_secs(300));
        assert_eq!(s.restart.attempts, 10);
        assert_eq!(s.restart.reset_after, Duration::from_secs(30));
        assert_eq!(s.termination.wait, Duration::from_secs(10));
        assert_eq!(s.termination.signal, 15);
        // No [health]: no start timeout, as zinit.
        assert_eq!(s.start_timeout, Duration::ZERO);
        assert_eq!(s.log.buffer, 1000 * 128);
        assert!(!s.env.keep_env);
    }

    #[test]
    fn zinit_health_types_and_oneshot() {
        let base = "[service]\nname = \"z\"\nexec = \"true\"\noneshot = true\n";
        let (s, d) = parse_service(
            Path::new("z.toml"),
            &format!("{base}[health]\ntype = \"exec\"\ntarget = \"test -f /x\"\n"),
            &opts(),
        );
        assert!(d.is_empty(), "{d:?}");
        let s = s.unwrap();
        assert_eq!(s.restart.strategy, RestartStrategy::Never);
        let h = s.health.unwrap();
        assert_eq!(h.command.unwrap(), ["/bin/sh", "-c", "test -f /x"]);
        assert_eq!((h.interval, h.timeout), (Duration::from_secs(10), Duration::from_secs(5)));
        let (s, d) = parse_service(
            Path::new("z.toml"),
            &format!("{base}[health]\ntype = \"http\"\nendpoint = \"http://localhost:8080/health\"\n"),
            &opts(),
        );
        assert_eq!(
            d.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "z.toml:7:12: warning: health.endpoint: zinit's key is \"target\"; \"endpoint\" is read as \"target\""
            ]
        );
        assert_eq!(s.unwrap().health.unwrap().http.unwrap().path, "/health");
        let (s, d) =
            parse_service(Path::new("z.toml"), &format!("{base}[health]\ntype = \"ping\"\n"), &opts());
        assert!(s.is_none());
        assert_eq!(d.len(), 2, "{d:?}"); // bad type, missing target
    }

    #[test]
    fn zinit_unknown_keys_are_warnings_and_errors_still_errors() {
        let (s, d) = parse_service(
            Path::new("z.toml"),
            "[service]\nname = \"z\"\nexec = \"true\"\nports = [80]\nnew_key = 1\n[extra]\nx = 1\n[logging]\nfile = \"/x\"\n",
            &opts(),
        );
        assert!(s.is_some());
        let d: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            d,
            [
                "z.toml:4:9: warning: service.ports: not supported by init, ignored",
                "z.toml:5:1: warning: service.new_key: unknown key, ignored",
                "z.toml:6:2: warning: extra: unknown table, ignored",
                "z.toml:9:8: warning: logging.file: not supported (zinit ignores it too), ignored",
            ]
        );
        let (s, d) = parse_service(Path::new("z.toml"), "[service]\nexec = 1\n", &opts());
        assert!(s.is_none());
        let d: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            d,
            [
                "z.toml:1:1: service.name: missing",
                "z.toml:2:8: service.exec: expected a string, found integer 1"
            ]
        );
    }

    #[test]
    fn zinit_target() {
        let (s, d) = parse_service(
            Path::new("t.toml"),
            "[target]\nname = \"multi-user\"\n[dependencies]\nrequires = [\"network\"]\n",
            &opts(),
        );
        assert!(d.is_empty());
        let s = s.unwrap();
        assert_eq!((s.kind, s.name.as_str()), (Kind::Target, "multi-user"));
        assert!(s.command.is_empty());
        let (s, _) = parse_service(
            Path::new("t.toml"),
            "[target]\nname = \"t\"\n[service]\nname = \"t\"\nexec = \"x\"\n",
            &opts(),
        );
        assert!(s.is_none());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let d = errs("command = \"/bin/true\"\nx = \n");
        assert_eq!(d, ["web.toml:2:5: TOML syntax: string values must be quoted, expected literal string"]);
        let d = errs("a = 1\na = 2\n");
        assert!(d[0].starts_with("web.toml:2:1: TOML syntax: duplicate key"), "{d:?}");
    }

    #[test]
    fn sample_service_passes_and_shows_the_defaults() {
        let (s, d) = parse_service(Path::new("sample.toml"), SAMPLE_SERVICE, &opts());
        assert!(d.is_empty(), "{d:#?}");
        let s = s.unwrap();
        let mut want = ServiceSpec::new("sample", vec!["/bin/echo".into(), "hello".into()]);
        want.file = "sample.toml".into();
        assert_eq!(s, want);
    }

    #[test]
    fn refs_keep_their_positions() {
        let (_, _, refs) = parse_text(
            Path::new("w.toml"),
            "command = \"x\"\nrequires = [\"db.toml\"]\n[termination]\ndie-if-failed = [\"q\"]\n",
            &opts(),
            &mut UserDb::new(None),
        );
        assert_eq!(refs.len(), 2);
        assert_eq!(
            (refs[0].edge, refs[0].name.as_str(), refs[0].line, refs[0].col),
            (Edge::Requires, "db", 2, 13)
        );
        assert_eq!(refs[1].key, "termination.die-if-failed");
    }
}
