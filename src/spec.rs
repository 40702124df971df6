//! The validated service description: what `validate` produces and everything downstream reads.
//!
//! Nothing here refers to TOML. Every duration is already bounded (see `MAX_DURATION`), every
//! signal is a number, every reference a name that exists (or a warning was printed), so the
//! supervisor can use these values without checks that could panic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Longest duration any key may hold (100 days): `Instant + d` can never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 24 * 3600);
/// Restart delays never go below this, so `backoff = "0s"` cannot spin (design §5).
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The whole loaded configuration, services sorted by name (stable indices for the graph).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub services: Vec<ServiceSpec>,
}

impl Config {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.name == name)
    }
}

/// A service (has a command) or a target (dependencies only, no process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Service,
    Target,
}

/// Which format the file was written in; kept for messages and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Horust's keys plus ankh's extensions.
    Native,
    /// zinit 0.3: `[service]`/`[target]`, `[dependencies]`, `[lifecycle]`, `[health]`, `[logging]`.
    Zinit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// File stem, or `name` (Horust) / `[service] name` (zinit). Never ends in `.toml`.
    pub name: String,
    /// The file it came from (for messages).
    pub file: PathBuf,
    pub format: Format,
    pub kind: Kind,
    /// argv; `command[0]` is the program (looked up in PATH when it has no `/`). Empty for targets.
    pub command: Vec<String>,
    pub working_directory: Option<PathBuf>,
    /// uid/gid/supplementary groups to switch to; None = stay as init's user.
    pub user: Option<Credentials>,
    pub umask: Option<u32>,
    pub start_delay: Duration,
    pub autostart: bool,
    pub oneshot: bool,
    /// Dependencies, by service name (never with `.toml`).
    pub deps: Deps,
    pub ready: Ready,
    pub stdout: Output,
    pub stderr: Output,
    pub log: LogSpec,
    /// Signals init forwards to this service's process group.
    pub forward_signals: Vec<i32>,
    pub start: StartMode,
    /// Zero = no timeout.
    pub start_timeout: Duration,
    /// Zero = never stop an idle on-demand service.
    pub idle_timeout: Duration,
    pub restart: Restart,
    /// Boxed, as are `socket` and `proxy`: most services have none, and every service's spec
    /// is held for as long as init runs (idle RSS, docs/benchmarks.md).
    pub health: Option<Box<Health>>,
    pub failure: Failure,
    pub termination: Termination,
    pub env: Environment,
    pub limits: Limits,
    pub socket: Option<Box<SocketSpec>>,
    pub proxy: Option<Box<ProxySpec>>,
    /// Horust's `signal-rewrite`: (from, to) pairs applied to forwarded signals.
    pub signal_rewrite: Vec<(i32, i32)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deps {
    /// Start after these are ready; stop when they stop or fail for good.
    pub requires: Vec<String>,
    /// Horust's: wait until ready (or finished); a later failure does not stop us.
    pub start_after: Vec<String>,
    /// Order only, when both are being started.
    pub after: Vec<String>,
    /// Start these too; their failure does not touch us.
    pub wants: Vec<String>,
    /// Starting one stops the other.
    pub conflicts: Vec<String>,
    /// Horust's `shutdown-after`: on shutdown, stop us only after these have stopped.
    pub shutdown_after: Vec<String>,
    /// Horust's `die-if-failed`: stop us when any of these fails for good.
    pub die_if_failed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (from /etc/group); empty when none are known.
    pub groups: Box<[u32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// `healthy` when a health check exists, exit success for a oneshot, else `started`.
    Auto,
    /// Exec succeeded.
    Started,
    /// First passing health probe.
    Healthy,
    /// `READY=1` on `$NOTIFY_SOCKET`.
    Notify,
    /// A newline written to this fd (s6 style).
    Fd(i32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Through a pipe: prefixed on init's stdout and kept in the ring buffer.
    Log,
    /// Inherit init's stdout.
    Stdout,
    /// Inherit init's stderr.
    Stderr,
    /// /dev/null (or a pipe with no reader when there is none).
    Null,
    /// Append to this file (rotated per `LogSpec`).
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogSpec {
    /// Ring-buffer size in bytes for `init logs`.
    pub buffer: usize,
    /// Rotate file targets at this size (0 = never).
    pub rotate_size: u64,
    /// Rotated files kept.
    pub rotate_keep: u32,
    /// Horust's `stdout-should-append-timestamp-to-filename`.
    pub append_timestamp: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    Auto,
    OnDemand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartStrategy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub strategy: RestartStrategy,
    /// First delay; already floored at `MIN_BACKOFF`.
    pub backoff: Duration,
    /// Cap for the doubling delay; >= `backoff`.
    pub max_backoff: Duration,
    /// Consecutive failed runs before giving up; 0 = never give up.
    pub attempts: u32,
    /// A run at least this long resets the count and the delay; zero = never.
    pub reset_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub http: Option<HttpEndpoint>,
    pub tcp: Option<Endpoint>,
    pub command: Option<Vec<String>>,
    pub file: Option<PathBuf>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub max_failed: u32,
    pub on_unhealthy: OnUnhealthy,
}

/// `host:port` where host is an IP literal or `localhost` (no name lookup: it would block the loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Addresses to try in order (`localhost` is 127.0.0.1 then ::1).
    pub addrs: Vec<SocketAddr>,
    /// As written, for messages and the HTTP `Host` header.
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpoint {
    pub endpoint: Endpoint,
    /// Starts with `/`.
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnhealthy {
    Restart,
    Stop,
    Ignore,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub successful_exit_codes: Vec<i32>,
    pub strategy: FailureStrategy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureStrategy {
    Ignore,
    KillDependents,
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Termination {
    pub signal: i32,
    pub wait: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Environment {
    pub keep_env: bool,
    pub re_export: Vec<String>,
    /// In file order.
    pub additional: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rlimit {
    Nofile,
    Nproc,
    Core,
    Memlock,
    Stack,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// (resource, value) set as both soft and hard limit in the child.
    pub rlimits: Vec<(Rlimit, u64)>,
    /// cgroup v2 `cpu.max` as a share of one core (1.0 = one core).
    pub cpu: Option<f64>,
    /// cgroup v2 `memory.max` in bytes.
    pub memory: Option<u64>,
    /// cgroup v2 `pids.max`.
    pub pids_max: Option<u64>,
    /// Refuse to start when the cgroup limits cannot be applied.
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub listen: Vec<ListenAddr>,
    /// Unix socket file mode.
    pub mode: Option<u32>,
    /// Unix socket owner.
    pub owner: Option<Credentials>,
    pub backlog: u32,
    /// `LISTEN_FDNAMES`, one per listener (default: the service's name for each).
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpec {
    pub listen: Vec<ListenAddr>,
    pub backend: ListenAddr,
    pub max_connections: u32,
}

impl ServiceSpec {
    /// A service with every default, for tests and for tini mode.
    pub fn new(name: &str, command: Vec<String>) -> ServiceSpec {
        ServiceSpec {
            name: name.to_string(),
            file: PathBuf::new(),
            format: Format::Native,
            kind: Kind::Service,
            command,
            working_directory: None,
            user: None,
            umask: None,
            start_delay: Duration::ZERO,
            autostart: true,
            oneshot: false,
            deps: Deps::default(),
            ready: Ready::Auto,
            stdout: Output::Log,
            stderr: Output::Log,
            log: LogSpec { buffer: 16 * 1024, rotate_size: 0, rotate_keep: 5, append_timestamp: false },
            forward_signals: Vec::new(),
            start: StartMode::Auto,
            start_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            restart: Restart {
                strategy: RestartStrategy::Never,
                backoff: MIN_BACKOFF,
                max_backoff: Duration::from_secs(60),
                attempts: 0,
                reset_after: Duration::from_secs(60),
            },
            health: None,
            failure: Failure { successful_exit_codes: vec![0], strategy: FailureStrategy::Ignore },
            termination: Termination { signal: 15, wait: Duration::from_secs(5) },
            env: Environment::default(),
            limits: Limits::default(),
            socket: None,
            proxy: None,
            signal_rewrite: Vec::new(),
        }
    }

    /// The readiness rule after resolving `auto` (design §5).
    pub fn effective_ready(&self) -> Ready {
        match self.ready {
            Ready::Auto if self.health.is_some() => Ready::Healthy,
            Ready::Auto => Ready::Started,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every service's spec stays in memory for as long as init runs (idle RSS budget,
    /// docs/benchmarks.md): the rarely used tables are boxed so that a plain service does not
    /// pay for them. This fails when a big field is added inline.
    #[test]
    fn a_spec_stays_small() {
        assert!(std::mem::size_of::<ServiceSpec>() <= 800, "{}", std::mem::size_of::<ServiceSpec>());
        assert!(std::mem::size_of::<Credentials>() <= 32);
    }
}
