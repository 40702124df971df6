//! The supervisor: desired vs current state of every service, dependency gating and propagation,
//! restarts, shutdown ordering and the exit code. Pure: no fds, no syscalls, `now` is an argument.
//!
//! The reactor feeds it `Event`s and carries out the `Action`s it returns. Timers are internal:
//! the reactor asks `next_deadline()` and calls `tick(now)` when it passes.
//!
//! CONTRACT (the reactor is written against exactly this API; keep the signatures):
//!   Supervisor::new(config, mode, now) -> Supervisor   (nothing started yet)
//!   sup.boot(now)                   start every autostart service whose deps allow
//!   sup.handle(event, now)          feed one event
//!   sup.tick(now)                   expire every deadline <= now
//!   sup.take_actions() -> Vec<Action>  drain what to do, in order
//!   sup.next_deadline() -> Option<Instant>
//!   sup.service_of_pid(pid) -> Option<Svc>
//!   sup.status(svc) -> ServiceStatus   (for logs / control socket)
//!   sup.config() -> &Config

use std::time::Instant;

use crate::spec::Config;

/// Index of a service in `Config::services`.
pub type Svc = usize;

/// How init runs; decides what a shutdown ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 of a container: exit with the code when done.
    Container,
    /// An ordinary process (subreaper): exit with the code when done.
    Standalone,
    /// PID 1 of a real system: never exit; the reactor powers off/reboots on `Action::Exit`.
    System,
}

/// How a process ended, from `waitpid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// Shell convention: the code, or 128+N when killed by signal N.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

/// Current state of one service (design §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Inactive,
    Blocked,
    Starting,
    Running,
    Stopping,
    Exited,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// fork succeeded; the child is running setup and will exec.
    Spawned { svc: Svc, pid: i32 },
    /// exec succeeded (the exec-status pipe closed with nothing in it).
    ExecOk { svc: Svc },
    /// fork or a pre-exec step failed; `error` is e.g. "unable to exec /usr/bin/web: No such file or
    /// directory". When a pid exists, its `Exited` still follows (the reactor delivers this first).
    SpawnFailed { svc: Svc, error: String },
    /// A child was reaped (any pid: unknown pids are orphans and are ignored).
    Exited { pid: i32, status: ExitStatus },
    /// Readiness reached by health probe / notify / fd (the health issue sends these).
    Ready { svc: Svc },
    /// `max-failed` consecutive probe failures; `reason` is the last probe error.
    Unhealthy { svc: Svc, reason: String },
    /// Operator requests (control socket, CLI).
    Start { svc: Svc },
    Stop { svc: Svc },
    Restart { svc: Svc },
    /// Stop everything in order, then exit with `code` (None: computed from the table of §5).
    Shutdown { code: Option<i32> },
    /// The reactor found no child left to reap (waitpid gave ECHILD) while orphans were awaited.
    NoChildren,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Spawn this service now.
    Spawn(Svc),
    /// kill(-pgid, signal) then kill(-pgid, SIGCONT); pgid == pid of the service's process.
    SignalGroup { svc: Svc, pid: i32, signal: i32 },
    /// Shutdown reached the orphans: as PID 1 only, kill(-1, signal); otherwise nothing to do.
    SignalOrphans { signal: i32 },
    /// Everything has stopped: exit with this code (Mode::System: power off instead).
    Exit(i32),
}

/// What `status`, `why` and the logs show about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub state: State,
    pub pid: Option<i32>,
    /// Why it is Blocked/Failed/Exited, in words ("exit 3", "killed by SIGKILL", "gave up after 3
    /// attempts: exit 1", "dependency db failed", "waiting for db", "conflicts with legacy").
    pub reason: Option<String>,
    pub restarts: u32,
}

#[allow(dead_code)]
fn _contract(_: Instant) {}
