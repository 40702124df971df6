//! The supervisor: desired vs current state of every service, dependency gating and propagation,
//! restarts, shutdown ordering and the exit code. Pure: no fds, no syscalls, `now` is an argument.
//!
//! The reactor feeds it `Event`s and carries out the `Action`s it returns. Timers are internal:
//! the reactor asks `next_deadline()` and calls `tick(now)` when it passes.
//!
//! CONTRACT (the reactor is written against exactly this API; keep the signatures):
//! ```text
//!   Supervisor::new(config, mode, now) -> Supervisor   (nothing started yet)
//!   sup.set_stop_timeout(d)         clip for the whole shutdown (default 9 s)
//!   sup.boot(now)                   start every autostart service whose deps allow
//!   sup.handle(event, now)          feed one event
//!   sup.tick(now)                   expire every deadline <= now
//!   sup.take_actions() -> Vec<Action>  drain what to do, in order
//!   sup.next_deadline() -> Option<Instant>
//!   sup.service_of_pid(pid) -> Option<Svc>
//!   sup.status(svc) -> ServiceStatus   (for logs / control socket)
//!   sup.why(svc) -> String          the chain of what blocks it, one line per service
//!   sup.summary() -> String         one line per service (status dump)
//!   sup.config() -> &Config
//!   sup.reload(config, now) -> ReloadSummary   replace the configuration (see RELOAD below)
//!   helpers: len(), name(svc), find(name), svc_names(), is_shutting_down(), waiting_for_orphans()
//! ```
//!
//! A `Svc` is an index into `config().services` (sorted by name), so it is **only stable between
//! reloads**: a reload that adds or removes a service that sorts before another shifts that
//! one's index. Keep per-service state by name, and find the service of a process with
//! `service_of_pid` (after a reload too) rather than with a `Svc` saved before it.
//!
//! How it works (dinit's shape): each service keeps what is *wanted* (`Want::Up`/`Down`) apart from
//! what it *is* (`State`). Every event goes to one service's state machine (`service.rs`), and
//! every service whose state changed puts its neighbours in the graph on a queue; `evaluate` then
//! drains the queue and, for each service, decides from its neighbours whether it may launch,
//! must wait (Blocked, with the reason), or must stop. Work per event is proportional to the
//! degree of the services touched, plus one O(n) scan for "is anything left to run".
//!
//! SEMANTICS, where the design (§5) leaves a choice (copied to docs/lifecycle.md):
//! - **Ready**: `Running`, or `Exited` for a oneshot (a oneshot with `ready = "auto"` is ready when
//!   it exits with a successful code). A non-oneshot that exited cleanly satisfies `start-after`
//!   and `after` but not `requires` (it is no longer there).
//! - **Pulling in**: a service that is started (at boot when `autostart`, or by `init start`)
//!   also starts what it `requires`, `start-after`s or `wants`, transitively, even when they have
//!   `autostart = false`. `after` does not pull anything in.
//! - **Blocked** says why: "waiting for db" while db is on its way (starting, restarting,
//!   itself waiting); "dependency db failed" / "dependency db is stopped" / "dependency db is
//!   blocked" / "dependency db exited" when db will not become ready without an operator; then the
//!   service is *stuck* and does not keep init alive. It starts by itself as soon as db is ready.
//! - **requires**: when db is stopped, restarted by the operator, or fails for good, every running
//!   dependent is stopped first (most dependent first), then db; the dependents stay wanted and
//!   start again when db is ready again. A crash of db that is followed by an automatic restart
//!   (backoff) does not touch them. `init restart db` restarts its `requires` dependents too.
//! - **start-after**: waits for db to be ready or to have exited; is never stopped by db later;
//!   if db fails before that, Blocked "dependency db failed". Each automatic restart waits again.
//! - **after**: waits only when the other is on its way; ignored when it is stopped, failed or
//!   stuck.
//! - **conflicts**: `init start a` stops every service a conflicts with (either side may declare
//!   it) and starts a once they have stopped. Both autostart: the one first by name runs, the
//!   other is Blocked "conflicts with a" and starts by itself if a stops or fails for good.
//! - **Restart**: a failed run (exit code not in `successful-exit-code`, a signal, an exec or
//!   fork failure, a start timeout, unhealthy) is restarted per `strategy` after
//!   `backoff × 2^k` (k = automatic restarts in a row, floor 100 ms, cap `max-backoff`); while it
//!   waits it shows `Failed` with "exit 1; restarting in 400ms". `restart = "always"` restarts a
//!   clean exit too (state `Exited` while it waits; a oneshot's success is never restarted). After
//!   `attempts` consecutive failed runs (0 = never) it is Failed for good: "gave up after 3
//!   attempts: exit 1". A run that lasted `reset-after` resets both counts (checked at exit). A
//!   clean exit resets the failure count, not the delay. `start-delay` is served before every
//!   start, restarts included (Horust), after the backoff.
//! - **Failure for good** (gave up, or `restart = "never"` and it failed) applies
//!   `[failure] strategy`: `shutdown` (exit code = its code, 128+N if signalled, never 0),
//!   `kill-dependents` (services that `requires` or `start-after` it are stopped and stay down:
//!   "stopped: dependency db failed"), `ignore`; and `die-if-failed` stops the services that list
//!   it the same way. `requires` dependents are stopped in every case.
//! - **Operator**: `stop` cancels a pending restart or start-delay (zinit's bug: it respawned);
//!   `start` of a Failed service (or one in backoff) forgets its failures and starts it now;
//!   `start`/`restart` are ignored during shutdown. Stopping a Failed or Exited service makes it
//!   Inactive. `start-timeout` (non-zero) counts from the spawn: SIGKILL to the group, then a
//!   failed run "start timeout". Unhealthy: the stop signal, then `on-unhealthy = "restart"`
//!   restarts it whatever `[restart] strategy` says (still bounded by `attempts`), `"stop"` ends
//!   it Failed "unhealthy: ..." for good; ignored while it is being stopped anyway.
//! - **Stop**: the service's own `[termination] signal` to its process group, SIGKILL after its
//!   `wait`. An exit while stopping is clean whatever its status.
//! - **Shutdown** (an `Event::Shutdown`, a `shutdown` failure strategy, or nothing left to run in
//!   container/standalone mode): no spawn any more; services that have no process and were
//!   waiting (Blocked on something on its way, a timer) become Inactive at once (a stuck one
//!   keeps its Blocked reason); a service is signalled only when every service
//!   that `requires`, `start-after`s or `after`s it has stopped, and after the services in its
//!   `shutdown-after` (unless that contradicts a dependency); independent services stop in
//!   parallel. When none is left: `SignalOrphans(TERM)`, up to 1 s (less when `NoChildren`
//!   arrives: then `SignalOrphans(KILL)` and exit at once), `SignalOrphans(KILL)`, wait up to 1 s
//!   for `NoChildren`, then `Exit(code)`. Past `--stop-timeout` from the start of the shutdown,
//!   every service left gets SIGKILL and the orphan sweep starts with KILL. A second requested
//!   `Shutdown` (double Ctrl+C) SIGKILLs every service at once, ignoring the order.
//! - **Exit code**: the code given with `Shutdown`, else the code of the service whose `shutdown`
//!   strategy caused it, else 1 if some service is Failed for good, else 0. Exits during a
//!   shutdown never count as failures.
//! - **Automatic shutdown** (container, standalone; never in system mode): when no service has a
//!   process, none waits on a timer (restart, start-delay) and no autostart on-demand service is
//!   waiting for a connection (even a failed one: the next connection starts it again). Stuck
//!   Blocked services and `autostart = false` ones don't count.
//!
//! RELOAD (`init reload`, SIGHUP; `add` and `remove` are reloads with one file more or less):
//! - The reactor loads and validates the new set; an invalid set is rejected whole before it
//!   gets here (design §4), so a service that `requires` one that is not loaded never arrives
//!   through the loader. Handed one anyway, the supervisor stops it (before what it named, if
//!   that is being removed) and keeps it Blocked "dependency db was removed" (or "... is not
//!   loaded") until a reload brings db back.
//! - **Unchanged** (equal `ServiceSpec`): state, pid, timers, counters untouched; the only thing
//!   that can move one is its `requires` dependency being changed (below) or removed.
//! - **Changed**, wanted up: restarted as by `init restart` (not touching what it conflicts with):
//!   its `requires` dependents are stopped first, then it gets the stop signal and `wait` of the
//!   spec its process was started with, then it starts with the new spec; a Failed or Exited one,
//!   or one waiting on a backoff, starts again at once with its failures forgotten. Its old
//!   references keep ordering the stop while its old process runs. Wanted down: it stays down,
//!   unless it now has `autostart` and did not before.
//! - **Removed**: wanted down (stopped in dependency order, its own signal, SIGKILL after its
//!   `wait`) and gone from `config()`, `find` and `len()` at once. While it still has a process it
//!   *retires*: it stays in the table after the live services (`Svc` >= `len()`; `service_of_pid`
//!   and `SignalGroup` name such an index, `name` still works), so its exit is reaped as its own
//!   and its group still gets SIGKILL after its wait. Retiring entries are dropped once none has a process, which never
//!   shifts a live index. A service added back while its predecessor still retires takes that
//!   entry over and starts once the old process has exited.
//! - **Added**: started when `autostart` (and what it pulls in), as at boot.
//! - What a changed or added service requires, start-after's or wants is pulled in; unchanged
//!   services pull nothing new in (a stopped dependency stays stopped).
//! - Refused during a shutdown (an empty `ReloadSummary`; nothing changes). Operator requests
//!   (`Start`, `Stop`, `Restart`, `Ready`, `Unhealthy`) for an index >= `len()` are ignored.
//! - `init start-all`/`stop-all` need no call of their own: `Start`/`Stop` for every service.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::graph::{Edge, Graph};
use crate::service::{self, Input, Output, Service, Want};
use crate::sorted;
use crate::spec::{Config, Kind, ServiceSpec, StartMode};

pub use crate::graph::Svc;

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
    Spawned {
        svc: Svc,
        pid: i32,
    },
    /// exec succeeded (the exec-status pipe closed with nothing in it).
    ExecOk {
        svc: Svc,
    },
    /// fork or a pre-exec step failed; `error` is e.g. "unable to exec /usr/bin/web: No such file or
    /// directory". When a pid exists, its `Exited` still follows (the reactor delivers this first).
    SpawnFailed {
        svc: Svc,
        error: String,
    },
    /// A child was reaped (any pid: unknown pids are orphans and are ignored).
    Exited {
        pid: i32,
        status: ExitStatus,
    },
    /// Readiness reached by health probe / notify / fd (the health issue sends these).
    Ready {
        svc: Svc,
    },
    /// `max-failed` consecutive probe failures; `reason` is the last probe error.
    Unhealthy {
        svc: Svc,
        reason: String,
    },
    /// Operator requests (control socket, CLI).
    Start {
        svc: Svc,
    },
    Stop {
        svc: Svc,
    },
    Restart {
        svc: Svc,
    },
    /// Stop everything in order, then exit with `code` (None: computed from the table of §5).
    Shutdown {
        code: Option<i32>,
    },
    /// The reactor found no child left to reap (waitpid gave ECHILD) while orphans were awaited.
    NoChildren,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Spawn this service now.
    Spawn(Svc),
    /// kill(-pgid, signal) then kill(-pgid, SIGCONT); pgid == pid of the service's process.
    /// `svc` is >= `len()` for a service a reload removed that is still stopping: go by `pid`.
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

/// Grace given to orphans between SIGTERM and SIGKILL, and to the final reaping.
const ORPHAN_GRACE: Duration = Duration::from_secs(1);
/// Default for `--stop-timeout` (under Docker's 10 s).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(9);
const SIGTERM: i32 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Stopping services in reverse dependency order.
    Services,
    /// SIGTERM sent to orphans; SIGKILL at this instant (or on `NoChildren`).
    OrphansTerm(Instant),
    /// SIGKILL sent to orphans; exit on `NoChildren` or at this instant.
    Reap(Instant),
    /// `Exit` emitted.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Shutdown {
    code: Option<i32>,
    /// Asked for by an `Event::Shutdown` (a second one forces).
    requested: bool,
    /// SIGKILL everything and ignore the order.
    forced: bool,
    /// `--stop-timeout` from the start of the shutdown.
    stop_by: Instant,
    phase: Phase,
}

/// What `evaluate` found about a service's dependencies.
enum Gate {
    Open,
    Wait(String, Svc),
    /// None: what it needs is not in the configuration at all.
    Stuck(String, Option<Svc>),
}

/// What a reload did, for the operator's reply and the log. Names in table order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

impl ReloadSummary {
    /// Nothing was added, changed or removed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// How a reload classed one service of the new configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Same,
    /// Its spec differs; `was_autostart`: the old one started at boot.
    Changed {
        was_autostart: bool,
    },
    /// New, or back while its removed predecessor was still stopping.
    Added,
}

#[derive(Clone)]
pub struct Supervisor {
    /// The live services; `Svc` < `config.services.len()`.
    config: Config,
    /// Over the whole table: live services, then the retiring ones.
    graph: Graph,
    mode: Mode,
    /// The table: `config.services.len()` live services, then the *retiring* ones (removed by a
    /// reload while they still had a process; dropped once none of them has one).
    svcs: Vec<Service>,
    /// Per entry: the spec its current process was started with, when a reload changed it
    /// (cleared when that process is gone) or removed it (retiring entries: always set).
    running_spec: Vec<Option<Box<ServiceSpec>>>,
    /// Per live service: a `requires`/`start-after` reference to a name that is not loaded.
    lacks: Vec<Option<(String, Edge)>>,
    /// Names removed by a reload (and not back), for the reason of what still names them; sorted.
    removed: Vec<String>,
    pids: HashMap<i32, Svc>,
    /// Every pending service timer, earliest first.
    timers: BTreeSet<(Instant, Svc)>,
    actions: Vec<Action>,
    queue: VecDeque<Svc>,
    queued: Vec<bool>,
    booted: bool,
    stop_timeout: Duration,
    shutdown: Option<Shutdown>,
}

impl Supervisor {
    pub fn new(config: Config, mode: Mode, _now: Instant) -> Supervisor {
        let n = config.services.len();
        let mut sup = Supervisor {
            config,
            graph: Graph::default(),
            mode,
            svcs: vec![Service::new(); n],
            running_spec: vec![None; n],
            lacks: Vec::new(),
            removed: Vec::new(),
            pids: HashMap::new(),
            timers: BTreeSet::new(),
            actions: Vec::new(),
            queue: VecDeque::new(),
            queued: vec![false; n],
            booted: false,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            shutdown: None,
        };
        sup.rebuild_graph();
        sup
    }

    /// The clip for the whole shutdown (`--stop-timeout`).
    pub fn set_stop_timeout(&mut self, d: Duration) {
        self.stop_timeout = d;
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The number of services (`Svc` is `0..len()`); removed services still stopping not counted.
    pub fn len(&self) -> usize {
        self.config.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.config.services.is_empty()
    }

    /// Every service's name, in `Svc` order (valid until the next reload).
    pub fn svc_names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.config.services.iter().map(|s| s.name.as_str())
    }

    pub fn name(&self, svc: Svc) -> &str {
        self.spec(svc).map_or("?", |s| s.name.as_str())
    }

    /// The spec `a` acts on (see `spec_of`).
    fn spec(&self, a: Svc) -> Option<&ServiceSpec> {
        spec_of(&self.config, &self.running_spec, a)
    }

    pub fn find(&self, name: &str) -> Option<Svc> {
        self.config.index_of(crate::graph::normalize(name))
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// The orphan sweep is under way: the reactor should report `NoChildren` as soon as
    /// `waitpid` says ECHILD (also right after carrying out `SignalOrphans`).
    pub fn waiting_for_orphans(&self) -> bool {
        matches!(self.shutdown.as_ref().map(|s| s.phase), Some(Phase::OrphansTerm(_) | Phase::Reap(_)))
    }

    /// Starts every autostart service (and what they pull in) whose dependencies allow.
    pub fn boot(&mut self, now: Instant) {
        if self.booted {
            return;
        }
        self.booted = true;
        if self.shutdown.is_none() {
            for a in 0..self.svcs.len() {
                let starts =
                    self.config.services.get(a).is_some_and(|s| s.autostart && s.start == StartMode::Auto);
                if starts {
                    self.pull_up(a);
                }
            }
        }
        for a in 0..self.svcs.len() {
            self.push(a);
        }
        self.settle(now);
    }

    pub fn handle(&mut self, event: Event, now: Instant) {
        // Requests about a removed service still stopping (or a stale index) are dropped.
        let for_svc = match &event {
            Event::Ready { svc }
            | Event::Unhealthy { svc, .. }
            | Event::Start { svc }
            | Event::Stop { svc }
            | Event::Restart { svc } => Some(*svc),
            Event::Spawned { .. }
            | Event::ExecOk { .. }
            | Event::SpawnFailed { .. }
            | Event::Exited { .. }
            | Event::Shutdown { .. }
            | Event::NoChildren => None,
        };
        if for_svc.is_some_and(|a| a >= self.len()) {
            log::debug!("{event:?}: no such service");
            return;
        }
        match event {
            Event::Spawned { svc, pid } => self.step(svc, Input::Spawned(pid), now),
            Event::ExecOk { svc } => self.step(svc, Input::ExecOk, now),
            Event::SpawnFailed { svc, error } => self.step(svc, Input::SpawnFailed(error), now),
            Event::Exited { pid, status } => match self.pids.get(&pid).copied() {
                Some(svc) => self.step(svc, Input::Exited(status), now),
                None => log::debug!("reaped orphan {pid}"),
            },
            Event::Ready { svc } => self.step(svc, Input::Ready, now),
            Event::Unhealthy { svc, reason } => {
                // Going down anyway: it stops in its turn, not before its dependents.
                let going = self.shutdown.is_some() || self.svcs.get(svc).is_some_and(|s| s.must_stop);
                if !going {
                    self.step(svc, Input::Unhealthy(reason), now);
                }
            }
            Event::Start { svc } => self.operator_start(svc, now),
            Event::Stop { svc } => {
                if let Some(s) = self.svcs.get_mut(svc) {
                    s.want = Want::Down;
                    s.note = None;
                    s.restart_requested = false;
                    self.push(svc);
                }
            }
            Event::Restart { svc } => self.operator_restart(svc, now),
            Event::Shutdown { code } => self.request_shutdown(code, now),
            Event::NoChildren => self.no_children(now),
        }
        self.settle(now);
    }

    /// Fires every deadline that has passed.
    pub fn tick(&mut self, now: Instant) {
        while let Some(&(t, a)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let kind = match self.svcs.get(a).and_then(|s| s.timer) {
                Some((due, kind)) if due == t => kind,
                _ => continue, // stale entry
            };
            self.step(a, Input::Fired(kind), now);
        }
        if let Some(sd) = self.shutdown.clone() {
            match sd.phase {
                Phase::Services if now >= sd.stop_by => self.stop_timed_out(now),
                Phase::OrphansTerm(t) if now >= t => self.kill_orphans(now),
                Phase::Reap(t) if now >= t => self.finish(),
                Phase::Services | Phase::OrphansTerm(_) | Phase::Reap(_) | Phase::Done => {}
            }
        }
        self.settle(now);
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let shutdown = match self.shutdown.as_ref().map(|s| (s.phase, s.stop_by)) {
            Some((Phase::Done, _)) => return None,
            Some((Phase::Services, t) | (Phase::OrphansTerm(t) | Phase::Reap(t), _)) => Some(t),
            None => None,
        };
        let timer = self.timers.first().map(|&(t, _)| t);
        match (shutdown, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The service whose process `pid` is; None for orphans. For the process of a service a
    /// reload removed that is still stopping, an index >= `len()`: `name` gives its old name,
    /// `status` says "no such service", and its `Exited` must reach `handle` like any other.
    pub fn service_of_pid(&self, pid: i32) -> Option<Svc> {
        self.pids.get(&pid).copied()
    }

    pub fn status(&self, svc: Svc) -> ServiceStatus {
        match self.svcs.get(svc).filter(|_| svc < self.len()) {
            Some(s) => {
                ServiceStatus { state: s.state, pid: s.pid, reason: s.reason.clone(), restarts: s.restarts }
            }
            None => ServiceStatus {
                state: State::Inactive,
                pid: None,
                reason: Some("no such service".to_string()),
                restarts: 0,
            },
        }
    }

    /// Why a service is where it is, following what blocks it: one line per service
    /// ("web is blocked: dependency db failed\ndb failed: gave up after 3 attempts: exit 1").
    pub fn why(&self, svc: Svc) -> String {
        let mut lines: Vec<String> = Vec::new();
        let mut seen = vec![false; self.svcs.len()];
        let mut cur = Some(svc);
        while let Some(a) = cur {
            cur = None;
            let Some(s) = self.svcs.get(a) else {
                lines.push(format!("#{a}: no such service"));
                break;
            };
            if seen.get(a).copied().unwrap_or(true) {
                break;
            }
            if let Some(x) = seen.get_mut(a) {
                *x = true;
            }
            lines.push(self.describe(a, s));
            if s.state == State::Blocked {
                cur = s.blocked_on;
            }
        }
        lines.join("\n")
    }

    /// One line per service, as `why` words it ("db is running (pid 12)"), for a status dump.
    pub fn summary(&self) -> String {
        let lines: Vec<String> = self.svcs.iter().enumerate().map(|(a, s)| self.describe(a, s)).collect();
        lines.join("\n")
    }

    fn describe(&self, a: Svc, s: &Service) -> String {
        let name =
            if a < self.len() { self.name(a).to_string() } else { format!("{} (removed)", self.name(a)) };
        let pid = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        let reason = s.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        match s.state {
            State::Running => format!("{name} is running{pid}"),
            State::Starting => format!("{name} is starting{pid}, not ready yet"),
            State::Stopping => format!("{name} is stopping{pid}"),
            State::Blocked => format!("{name} is blocked{reason}"),
            State::Failed => format!("{name} failed{reason}"),
            State::Exited => format!("{name} exited{reason}"),
            State::Inactive => {
                let manual = self
                    .config
                    .services
                    .get(a)
                    .is_some_and(|sp| !sp.autostart || sp.start == StartMode::OnDemand);
                let hint = if s.want == Want::Down && manual && s.reason.is_none() {
                    " (autostart = false: start it with `init start`)"
                } else {
                    ""
                };
                format!("{name} is inactive{reason}{hint}")
            }
        }
    }

    // ---- reload -----------------------------------------------------------------------------

    /// Replaces the configuration (`init reload`, SIGHUP, `add`, `remove`: the reactor computes
    /// the new `Config`, already validated; an invalid set never gets here). Every `Svc` the
    /// caller holds is invalid afterwards: indices follow the new table (look up by name).
    /// Refused during a shutdown (an empty summary, nothing changes). Call it between two
    /// events, never between taking a `Spawn` and reporting its `Spawned`/`SpawnFailed`.
    ///
    /// - **unchanged** (same `ServiceSpec`): state, pid, timers and counters kept as they are;
    /// - **changed**: when wanted up, restarted as by `init restart` (stopped with the signal and
    ///   `wait` of the spec it was started with, then started with the new one; a failed or
    ///   finished one is started again); its `requires` dependents restart with it. When down,
    ///   it stays down unless it now has `autostart` and did not before;
    /// - **removed**: stopped in dependency order like a stopped service, then forgotten;
    /// - **added**: started when `autostart` (and what it pulls in), as at boot.
    ///
    /// What a changed or added service newly requires, start-after's or wants is pulled in;
    /// unchanged services pull nothing new in.
    pub fn reload(&mut self, new: Config, now: Instant) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        if self.shutdown.is_some() {
            log::warn!("reload refused: shutting down");
            return summary;
        }
        let old_n = self.len();
        let old_config = std::mem::replace(&mut self.config, new);
        let mut old_svcs: Vec<Option<Service>> =
            std::mem::take(&mut self.svcs).into_iter().map(Some).collect();
        let mut old_running = std::mem::take(&mut self.running_spec);
        let mut old_index: HashMap<String, Svc> = HashMap::new();
        for (a, r) in old_running.iter().enumerate().skip(old_n) {
            if let Some(spec) = r {
                old_index.insert(spec.name.clone(), a);
            }
        }
        for (a, spec) in old_config.services.iter().enumerate() {
            old_index.insert(spec.name.clone(), a);
        }
        // Old index -> new index, for every entry kept.
        let mut map: Vec<Option<Svc>> = vec![None; old_svcs.len()];
        let n = self.config.services.len();
        let mut svcs = Vec::with_capacity(n);
        let mut running = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        for (i, spec) in self.config.services.iter().enumerate() {
            let o = old_index.get(spec.name.as_str()).copied();
            let old = o.and_then(|o| old_svcs.get_mut(o)).and_then(Option::take);
            let mut run = o.and_then(|o| old_running.get_mut(o)).and_then(Option::take);
            let (s, kind) = match (o, old) {
                (Some(o), Some(s)) if o < old_n => {
                    let was = old_config.services.get(o);
                    if was == Some(spec) {
                        (s, Change::Same)
                    } else {
                        if run.is_none() && s.pid.is_some() {
                            run = was.cloned().map(Box::new);
                        }
                        (s, Change::Changed { was_autostart: was.is_some_and(autostarts) })
                    }
                }
                // Back while its removed predecessor is still stopping: it starts once that
                // has stopped (its process is this entry's until then).
                (Some(_), Some(mut s)) if s.pid.is_some() => {
                    (s.fails, s.streak, s.restarts, s.note) = (0, 0, 0, None);
                    (s, Change::Added)
                }
                _ => {
                    run = None;
                    (Service::new(), Change::Added)
                }
            };
            if let Some(m) = o.and_then(|o| map.get_mut(o)) {
                *m = Some(i);
            }
            svcs.push(s);
            running.push(run);
            kinds.push(kind);
        }
        // What is left of the old table was removed; what still has a process retires.
        for (o, slot) in old_svcs.iter_mut().enumerate() {
            let Some(s) = slot.take() else { continue };
            let spec = old_running
                .get_mut(o)
                .and_then(Option::take)
                .or_else(|| old_config.services.get(o).cloned().map(Box::new));
            let Some(spec) = spec else { continue };
            if o < old_n {
                summary.removed.push(spec.name.clone());
                sorted::insert(&mut self.removed, spec.name.clone());
            }
            if s.pid.is_some() {
                if let Some(m) = map.get_mut(o) {
                    *m = Some(svcs.len());
                }
                svcs.push(s);
                running.push(Some(spec));
            }
        }
        for spec in &self.config.services {
            sorted::remove(&mut self.removed, spec.name.as_str());
        }
        let remap = |a: Svc| map.get(a).copied().flatten();
        for s in &mut svcs {
            s.blocked_on = s.blocked_on.and_then(remap);
        }
        // Actions not yet taken name old indices. A spawn for the old spec is cancelled.
        let mut cancelled = Vec::new();
        for act in std::mem::take(&mut self.actions) {
            let act = match act {
                Action::Spawn(o) => match remap(o) {
                    Some(i) if kinds.get(i) == Some(&Change::Same) => Action::Spawn(i),
                    Some(i) => {
                        cancelled.push(i);
                        continue;
                    }
                    None => continue,
                },
                Action::SignalGroup { svc, pid, signal } => match remap(svc) {
                    Some(i) => Action::SignalGroup { svc: i, pid, signal },
                    None => continue,
                },
                a @ (Action::SignalOrphans { .. } | Action::Exit(_)) => a,
            };
            self.actions.push(act);
        }
        for (i, s) in svcs.iter_mut().enumerate() {
            let changed = kinds.get(i).is_some_and(|k| *k != Change::Same);
            if (changed || cancelled.contains(&i)) && s.state == State::Starting && s.pid.is_none() {
                s.state = State::Inactive;
            }
        }
        self.pids = svcs.iter().enumerate().filter_map(|(a, s)| s.pid.map(|p| (p, a))).collect();
        self.timers = svcs.iter().enumerate().filter_map(|(a, s)| s.timer.map(|(t, _)| (t, a))).collect();
        self.queue.clear();
        self.queued = vec![false; svcs.len()];
        self.svcs = svcs;
        self.running_spec = running;
        self.rebuild_graph();

        for (i, kind) in kinds.iter().enumerate() {
            let name = self.name(i).to_string();
            match *kind {
                Change::Same => summary.unchanged += 1,
                Change::Changed { was_autostart } => {
                    summary.changed.push(name);
                    self.reload_changed(i, was_autostart, now);
                }
                Change::Added => {
                    summary.added.push(name);
                    if self.booted && self.config.services.get(i).is_some_and(autostarts) {
                        self.pull_up(i);
                    }
                }
            }
        }
        for s in self.svcs.iter_mut().skip(n) {
            s.want = Want::Down;
            s.restart_requested = false;
            s.note = Some("removed".to_string());
        }
        log::info!(
            "reload: {} added, {} changed, {} removed, {} unchanged",
            summary.added.len(),
            summary.changed.len(),
            summary.removed.len(),
            summary.unchanged
        );
        self.push_all();
        self.settle(now);
        summary
    }

    /// A changed service: restarted when wanted up, as by `init restart` without touching
    /// what it conflicts with; started when it newly has `autostart`.
    fn reload_changed(&mut self, a: Svc, was_autostart: bool, now: Instant) {
        let Some(s) = self.svcs.get(a) else { return };
        if !self.booted {
            return; // boot decides
        }
        if s.want == Want::Up {
            let active = s.is_active();
            // Active: stop (its own signal), then start again. Otherwise a failure or a
            // pending backoff is forgotten so the new spec runs now.
            self.step(a, Input::Reset, now);
            if active && let Some(s) = self.svcs.get_mut(a) {
                s.restart_requested = true;
            }
            self.pull_up(a);
        } else if !was_autostart && self.config.services.get(a).is_some_and(autostarts) {
            self.pull_up(a);
        }
    }

    /// Builds the graph over the whole table: live services resolve names first, then the
    /// retiring ones; a changed service's old references count while its old process runs.
    fn rebuild_graph(&mut self) {
        let n = self.svcs.len();
        let live = self.config.services.len();
        let mut names: HashMap<&str, Svc> = HashMap::with_capacity(n);
        for a in (0..n).rev() {
            if let Some(spec) = spec_of(&self.config, &self.running_spec, a) {
                names.insert(spec.name.as_str(), a);
            }
        }
        for (a, spec) in self.config.services.iter().enumerate() {
            names.insert(spec.name.as_str(), a);
        }
        let index_of = |name: &str| names.get(name).copied();
        let mut g = Graph::with_len(n);
        for a in 0..n {
            if let Some(spec) = self.config.services.get(a) {
                g.add_deps(a, &spec.deps, index_of, true);
            }
            if let Some(Some(spec)) = self.running_spec.get(a) {
                g.add_deps(a, &spec.deps, index_of, false);
            }
        }
        g.finish();
        let mut lacks: Vec<Option<(String, Edge)>> = vec![None; live];
        // `requires` are added first, so a missing one wins over a missing `start-after`.
        for m in &g.missing {
            if matches!(m.edge, Edge::Requires | Edge::StartAfter)
                && let Some(l @ None) = lacks.get_mut(m.from)
            {
                *l = Some((crate::graph::normalize(&m.name).to_string(), m.edge));
            }
        }
        self.graph = g;
        self.lacks = lacks;
    }

    /// Forgets the retiring services once none of them has a process left; true if it did.
    fn drop_retired(&mut self) -> bool {
        let n = self.len();
        if self.svcs.len() <= n || self.svcs.iter().skip(n).any(|s| s.pid.is_some() || s.is_active()) {
            return false;
        }
        self.svcs.truncate(n);
        self.running_spec.truncate(n);
        self.queued.truncate(n);
        self.queue.retain(|&a| a < n);
        self.timers.retain(|&(_, a)| a < n);
        self.pids.retain(|_, a| *a < n);
        for s in &mut self.svcs {
            if s.blocked_on.is_some_and(|b| b >= n) {
                s.blocked_on = None;
            }
        }
        self.rebuild_graph();
        self.push_all();
        true
    }

    // ---- operator requests -------------------------------------------------------------------

    fn operator_start(&mut self, a: Svc, now: Instant) {
        if a >= self.svcs.len() {
            return;
        }
        if self.shutdown.is_some() {
            log::warn!("{}: not started: shutting down", self.name(a));
            return;
        }
        // Starting one stops what it conflicts with (declared on either side).
        let partners: Vec<Svc> = self.neighbours(a, Edge::Conflicts).collect();
        let note = format!("stopped: conflicts with {}", self.name(a));
        for b in partners {
            if b != a {
                self.set_down(b, note.clone());
            }
        }
        self.step(a, Input::Reset, now);
        self.pull_up(a);
    }

    fn operator_restart(&mut self, a: Svc, now: Instant) {
        let active = match self.svcs.get(a) {
            Some(s) => s.is_active(),
            None => return,
        };
        if self.shutdown.is_some() {
            log::warn!("{}: not restarted: shutting down", self.name(a));
            return;
        }
        if !active {
            return self.operator_start(a, now);
        }
        self.step(a, Input::Reset, now);
        if let Some(s) = self.svcs.get_mut(a) {
            s.restart_requested = true;
            s.want = Want::Up;
            s.note = None;
        }
        self.push(a);
    }

    /// Wants `root` up, and what it requires, start-after's or wants (transitively), resetting
    /// the ones that failed for good.
    fn pull_up(&mut self, root: Svc) {
        let mut stack = vec![root];
        let mut seen = vec![false; self.svcs.len()];
        while let Some(a) = stack.pop() {
            match seen.get_mut(a) {
                Some(x) if !*x => *x = true,
                _ => continue,
            }
            if a >= self.len() {
                continue; // removed, still stopping
            }
            let Some(s) = self.svcs.get_mut(a) else { continue };
            s.want = Want::Up;
            s.note = None;
            if a != root && s.state == State::Failed && s.timer.is_none() {
                s.fails = 0;
                s.streak = 0;
                s.state = State::Inactive;
                s.reason = None;
            }
            self.push(a);
            for &(b, e) in self.graph.deps.get(a).into_iter().flatten() {
                let pulls =
                    matches!(e, Edge::Requires | Edge::StartAfter | Edge::Wants) && self.current(a, b);
                let needed = self
                    .svcs
                    .get(b)
                    .is_some_and(|t| t.want == Want::Down || (t.state == State::Failed && t.timer.is_none()));
                if pulls && needed {
                    stack.push(b);
                }
            }
        }
    }

    /// The edge from `a` to `b` comes from `a`'s configured spec, not only from the spec of an
    /// old process a reload changed.
    fn current(&self, a: Svc, b: Svc) -> bool {
        if !self.running_spec.get(a).is_some_and(Option::is_some) {
            return true;
        }
        let (Some(spec), Some(name)) = (self.config.services.get(a), self.spec(b).map(|s| s.name.as_str()))
        else {
            return false;
        };
        let d = &spec.deps;
        [&d.requires, &d.start_after, &d.wants]
            .into_iter()
            .flatten()
            .any(|n| crate::graph::normalize(n) == name)
    }

    /// Stop `b` and keep it down, with the reason it will show.
    fn set_down(&mut self, b: Svc, note: String) {
        if let Some(s) = self.svcs.get_mut(b)
            && s.want == Want::Up
        {
            s.want = Want::Down;
            s.note = Some(note);
            s.restart_requested = false;
            self.push(b);
        }
    }

    // ---- one service's state machine -----------------------------------------------------------

    /// Feeds one input to one service and carries out what it answers.
    fn step(&mut self, a: Svc, input: Input, now: Instant) {
        let shutting = self.shutdown.is_some();
        let (Some(spec), Some(s)) = (spec_of(&self.config, &self.running_spec, a), self.svcs.get_mut(a))
        else {
            return;
        };
        let before = key(s);
        let (old_pid, old_timer) = (s.pid, s.timer);
        let outputs = s.step(spec, input, now, shutting);
        let (new_pid, new_timer) = (s.pid, s.timer);
        let after = key(s);
        if old_pid != new_pid {
            if let Some(p) = old_pid {
                self.pids.remove(&p);
            }
            if let Some(p) = new_pid {
                self.pids.insert(p, a);
            }
        }
        if old_timer != new_timer {
            if let Some((t, _)) = old_timer {
                self.timers.remove(&(t, a));
            }
            if let Some((t, _)) = new_timer {
                self.timers.insert((t, a));
            }
        }
        for o in outputs {
            match o {
                Output::Spawn => self.actions.push(Action::Spawn(a)),
                Output::Signal { pid, signal } => {
                    self.actions.push(Action::SignalGroup { svc: a, pid, signal })
                }
                Output::GaveUp { code } => self.gave_up(a, code, now),
            }
        }
        if before != after {
            self.changed(a);
        }
        // The process a reload changed is gone: from now on the new spec applies, and its old
        // references no longer order anything.
        let gone = self.svcs.get(a).is_some_and(|s| s.pid.is_none());
        if gone && a < self.len() && self.running_spec.get(a).is_some_and(Option::is_some) {
            if let Some(r) = self.running_spec.get_mut(a) {
                *r = None;
            }
            self.rebuild_graph();
            self.changed(a);
        }
    }

    /// `a` failed for good: `[failure] strategy` and `die-if-failed`.
    fn gave_up(&mut self, a: Svc, code: i32, now: Instant) {
        let name = self.name(a).to_string();
        let reason = self.svcs.get(a).and_then(|s| s.reason.clone()).unwrap_or_default();
        log::warn!("{name}: failed: {reason}");
        let strategy = self.spec(a).map(|s| s.failure.strategy);
        let dependents: Vec<(Svc, Edge)> = self.graph.dependents.get(a).cloned().unwrap_or_default();
        for &(d, e) in &dependents {
            let kills = e == Edge::DieIfFailed
                || (strategy == Some(crate::spec::FailureStrategy::KillDependents)
                    && matches!(e, Edge::Requires | Edge::StartAfter));
            if kills {
                let why = if e == Edge::DieIfFailed {
                    format!("stopped: {name} failed (die-if-failed)")
                } else {
                    format!("stopped: dependency {name} failed")
                };
                self.set_down(d, why);
            }
        }
        if strategy == Some(crate::spec::FailureStrategy::Shutdown) {
            log::warn!("{name}: failure strategy is shutdown: stopping every service");
            let code = if code == 0 { 1 } else { code };
            self.begin_shutdown(Some(code), false, now);
        }
    }

    // ---- propagation -------------------------------------------------------------------------

    fn push(&mut self, a: Svc) {
        if let Some(q) = self.queued.get_mut(a)
            && !*q
        {
            *q = true;
            self.queue.push_back(a);
        }
    }

    /// `a` changed: it and every service that names it or that it names look again.
    fn changed(&mut self, a: Svc) {
        self.push(a);
        let n: Vec<Svc> = self
            .graph
            .deps
            .get(a)
            .into_iter()
            .chain(self.graph.dependents.get(a))
            .flatten()
            .map(|&(b, _)| b)
            .collect();
        for b in n {
            self.push(b);
        }
    }

    /// Services linked to `a` by `edge` in either direction.
    fn neighbours(&self, a: Svc, edge: Edge) -> impl Iterator<Item = Svc> + '_ {
        self.graph
            .deps
            .get(a)
            .into_iter()
            .chain(self.graph.dependents.get(a))
            .flatten()
            .filter(move |&&(_, e)| e == edge)
            .map(|&(b, _)| b)
    }

    /// Drains the queue, then checks whether the shutdown moves on or should begin.
    fn settle(&mut self, now: Instant) {
        self.drain(now);
        if self.drop_retired() {
            self.drain(now);
        }
        if self.shutdown.is_none() && self.nothing_left() {
            log::info!("no service left to run: shutting down");
            self.begin_shutdown(None, false, now);
            self.drain(now);
        }
        self.progress(now);
    }

    fn drain(&mut self, now: Instant) {
        // Evaluation converges (each step moves a service forward); the budget only guards
        // against a bug turning into a hang of PID 1.
        let mut budget = self.svcs.len().saturating_add(16).saturating_mul(64);
        while let Some(a) = self.queue.pop_front() {
            if let Some(q) = self.queued.get_mut(a) {
                *q = false;
            }
            if budget == 0 {
                log::error!("dependency evaluation did not settle; giving up this round");
                self.queue.clear();
                self.queued.iter_mut().for_each(|q| *q = false);
                return;
            }
            budget -= 1;
            self.evaluate(a, now);
        }
    }

    /// Decides, from its neighbours, what `a` should do now.
    fn evaluate(&mut self, a: Svc, now: Instant) {
        let Some(s) = self.svcs.get(a) else { return };
        let shutting = self.shutdown.is_some();
        if s.is_active() {
            let should_stop =
                s.want == Want::Down || shutting || s.restart_requested || self.requires_gone(a);
            self.set_must_stop(a, should_stop);
            if !should_stop {
                return;
            }
            if self.shutdown.as_ref().is_some_and(|sd| sd.forced) {
                return self.step(a, Input::Kill, now);
            }
            let stopping = self.svcs.get(a).is_some_and(|s| s.state == State::Stopping);
            if !stopping && !self.stop_blocked(a) {
                self.step(a, Input::Stop, now);
            }
            return;
        }
        let (state, want, timer, stuck) = (s.state, s.want, s.timer, s.stuck);
        self.set_must_stop(a, false);
        match state {
            State::Inactive | State::Blocked => {
                if want == Want::Down || shutting {
                    // A stuck service keeps its reason through a shutdown (`status` tells why
                    // it never ran); one that was waiting or serving a delay goes Inactive.
                    let keep = shutting && want == Want::Up && stuck && timer.is_none();
                    if !keep && (state == State::Blocked || timer.is_some()) {
                        self.step(a, Input::Stop, now);
                    }
                    return;
                }
                match self.gate(a) {
                    Gate::Open => self.step(a, Input::Launch, now),
                    Gate::Wait(reason, b) => self.block(a, reason, false, Some(b), now),
                    Gate::Stuck(reason, b) => self.block(a, reason, true, b, now),
                }
            }
            State::Exited | State::Failed => {
                // Down: Inactive (cancelling a pending restart). Shutdown: only a pending restart
                // is cancelled; a finished or failed service keeps its state for the exit code.
                let stop = if shutting { timer.is_some() } else { want == Want::Down };
                if stop {
                    self.step(a, Input::Stop, now);
                }
            }
            State::Starting | State::Running | State::Stopping => {}
        }
    }

    fn block(&mut self, a: Svc, reason: String, stuck: bool, on: Option<Svc>, now: Instant) {
        if let Some(s) = self.svcs.get_mut(a) {
            s.blocked_on = on;
            if s.state == State::Blocked && s.stuck == stuck && s.reason.as_deref() == Some(&reason) {
                return;
            }
        }
        self.step(a, Input::Block { reason, stuck }, now);
    }

    fn set_must_stop(&mut self, a: Svc, v: bool) {
        if let Some(s) = self.svcs.get_mut(a)
            && s.must_stop != v
        {
            s.must_stop = v;
            self.changed(a);
        }
    }

    /// `b` counts as ready for a dependent linked by `edge`.
    fn ready(&self, b: Svc, edge: Edge) -> bool {
        let (Some(s), Some(spec)) = (self.svcs.get(b), self.spec(b)) else {
            return false;
        };
        if s.must_stop {
            return false;
        }
        match s.state {
            State::Running => true,
            State::Exited => edge != Edge::Requires || spec.oneshot,
            State::Inactive | State::Blocked | State::Starting | State::Stopping | State::Failed => false,
        }
    }

    /// `b` is on its way to ready without anyone's help.
    fn coming(&self, b: Svc) -> bool {
        let Some(s) = self.svcs.get(b) else { return false };
        if self.shutdown.is_some() || s.want == Want::Down {
            return false;
        }
        match s.state {
            State::Inactive | State::Starting | State::Running | State::Stopping => true,
            State::Blocked => !s.stuck,
            State::Exited | State::Failed => s.timer.is_some(),
        }
    }

    fn not_coming(&self, b: Svc) -> String {
        let name = self.name(b);
        if b >= self.len() {
            return format!("dependency {name} was removed");
        }
        let Some(s) = self.svcs.get(b) else {
            return format!("dependency {name} is missing");
        };
        if s.want == Want::Down {
            return format!("dependency {name} is stopped");
        }
        match s.state {
            State::Failed => format!("dependency {name} failed"),
            State::Blocked => format!("dependency {name} is blocked"),
            State::Exited => format!("dependency {name} exited"),
            State::Inactive | State::Starting | State::Running | State::Stopping => {
                format!("dependency {name} is stopped")
            }
        }
    }

    /// May `a` start now? Else who it waits for, and whether that can change by itself.
    fn gate(&self, a: Svc) -> Gate {
        if let Some(Some((name, _))) = self.lacks.get(a) {
            return Gate::Stuck(self.missing(name), None);
        }
        let mut wait: Option<(String, Svc)> = None;
        for &(b, e) in self.graph.deps.get(a).into_iter().flatten() {
            match e {
                Edge::Requires | Edge::StartAfter | Edge::After => {
                    if self.ready(b, e) {
                        continue;
                    }
                    if self.coming(b) {
                        wait.get_or_insert_with(|| (format!("waiting for {}", self.name(b)), b));
                    } else if e != Edge::After {
                        return Gate::Stuck(self.not_coming(b), Some(b));
                    }
                }
                Edge::Conflicts | Edge::Wants | Edge::ShutdownAfter | Edge::DieIfFailed => {}
            }
        }
        // Conflicts may be declared by either side.
        for b in self.neighbours(a, Edge::Conflicts) {
            let Some(t) = self.svcs.get(b) else { continue };
            if b == a {
                continue;
            }
            if t.is_active() {
                if t.want == Want::Down || t.must_stop {
                    wait.get_or_insert_with(|| {
                        (format!("waiting for {} to stop (conflicts)", self.name(b)), b)
                    });
                } else {
                    return Gate::Stuck(format!("conflicts with {}", self.name(b)), Some(b));
                }
            } else if b < a && self.coming(b) {
                return Gate::Stuck(format!("conflicts with {}", self.name(b)), Some(b));
            }
        }
        match wait {
            Some((reason, b)) => Gate::Wait(reason, b),
            None => Gate::Open,
        }
    }

    /// Why a reference to `name`, which is not loaded, holds a service.
    fn missing(&self, name: &str) -> String {
        if sorted::contains(&self.removed, name) {
            format!("dependency {name} was removed")
        } else {
            format!("dependency {name} is not loaded")
        }
    }

    /// A running `a` must stop because something it `requires` is going away for good.
    fn requires_gone(&self, a: Svc) -> bool {
        if matches!(self.lacks.get(a), Some(Some((_, Edge::Requires)))) {
            return true;
        }
        self.graph.deps.get(a).into_iter().flatten().filter(|&&(_, e)| e == Edge::Requires).any(|&(b, _)| {
            self.svcs.get(b).is_some_and(|t| t.must_stop)
                || (!self.ready(b, Edge::Requires) && !self.coming(b))
        })
    }

    /// `a` must wait before its stop signal: what depends on it stops first.
    fn stop_blocked(&self, a: Svc) -> bool {
        let shutting = self.shutdown.is_some();
        let active = |d: Svc| self.svcs.get(d).is_some_and(Service::is_active);
        let dependents = self.graph.dependents.get(a).into_iter().flatten();
        let by_dependent = dependents.clone().any(|&(d, e)| {
            let orders = e == Edge::Requires || (shutting && matches!(e, Edge::StartAfter | Edge::After));
            d != a && orders && active(d)
        });
        if by_dependent || !shutting {
            return by_dependent;
        }
        // Horust's shutdown-after: stop `a` after these, unless one of them depends on `a`
        // (that order wins; the other would deadlock).
        self.graph
            .deps
            .get(a)
            .into_iter()
            .flatten()
            .filter(|&&(b, e)| e == Edge::ShutdownAfter && b != a)
            .any(|&(b, _)| {
                let contradicts =
                    self.graph.deps.get(b).into_iter().flatten().any(|&(c, e)| c == a && e.orders_start());
                !contradicts && active(b)
            })
    }

    // ---- shutdown ----------------------------------------------------------------------------

    /// Nothing runs, nothing waits on a timer, nothing waits for a connection.
    fn nothing_left(&self) -> bool {
        if !self.booted || self.mode == Mode::System {
            return false;
        }
        // Retiring services count while they have a process.
        let retiring = self.svcs.iter().skip(self.len()).any(Service::is_active);
        !retiring
            && !self.svcs.iter().zip(&self.config.services).any(|(s, spec)| {
                s.is_active()
                    || s.timer.is_some()
                    // Failed included: the next connection starts it again (sockets.rs).
                    || (spec.start == StartMode::OnDemand && spec.autostart && spec.kind == Kind::Service)
            })
    }

    fn request_shutdown(&mut self, code: Option<i32>, now: Instant) {
        match self.shutdown.as_mut() {
            None => self.begin_shutdown(code, true, now),
            Some(sd) => {
                if sd.code.is_none() {
                    sd.code = code;
                }
                let force = sd.requested && code.is_none() && sd.phase == Phase::Services && !sd.forced;
                sd.requested = true;
                if force {
                    log::warn!("second shutdown request: killing every service now");
                    sd.forced = true;
                    self.push_all();
                }
            }
        }
    }

    fn begin_shutdown(&mut self, code: Option<i32>, requested: bool, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        self.shutdown = Some(Shutdown {
            code,
            requested,
            forced: false,
            stop_by: service::later(now, self.stop_timeout),
            phase: Phase::Services,
        });
        self.push_all();
    }

    fn push_all(&mut self) {
        for a in 0..self.svcs.len() {
            self.push(a);
        }
    }

    /// Moves the shutdown on when its phase is complete.
    fn progress(&mut self, now: Instant) {
        let Some(sd) = self.shutdown.as_mut() else { return };
        if sd.phase == Phase::Services && !self.svcs.iter().any(Service::is_active) {
            let term_until = service::later(now, ORPHAN_GRACE).min(sd.stop_by.max(now));
            sd.phase = Phase::OrphansTerm(term_until);
            self.actions.push(Action::SignalOrphans { signal: SIGTERM });
        }
    }

    /// `--stop-timeout` passed: SIGKILL every service left and sweep the orphans with KILL.
    fn stop_timed_out(&mut self, now: Instant) {
        log::warn!("stop timeout: killing every process left");
        if let Some(sd) = self.shutdown.as_mut() {
            sd.forced = true;
        }
        for a in 0..self.svcs.len() {
            if self.svcs.get(a).is_some_and(Service::is_active) {
                self.step(a, Input::Kill, now);
            }
        }
        self.kill_orphans(now);
    }

    fn kill_orphans(&mut self, now: Instant) {
        if let Some(sd) = self.shutdown.as_mut() {
            sd.phase = Phase::Reap(service::later(now, ORPHAN_GRACE));
            self.actions.push(Action::SignalOrphans { signal: service::SIGKILL });
        }
    }

    fn no_children(&mut self, now: Instant) {
        match self.shutdown.as_ref().map(|s| s.phase) {
            Some(Phase::OrphansTerm(_)) => {
                self.kill_orphans(now);
                self.finish();
            }
            Some(Phase::Reap(_)) => self.finish(),
            Some(Phase::Services | Phase::Done) | None => {}
        }
    }

    fn finish(&mut self) {
        let failed = self.svcs.iter().any(|s| s.state == State::Failed);
        let Some(sd) = self.shutdown.as_mut() else { return };
        if sd.phase == Phase::Done {
            return;
        }
        sd.phase = Phase::Done;
        let code = sd.code.unwrap_or(if failed { 1 } else { 0 });
        self.actions.push(Action::Exit(code));
    }
}

/// The spec entry `a` acts on: the one its process was started with when a reload changed or
/// removed it, else the configured one. (A function of the fields, so `step` can borrow `svcs`.)
fn spec_of<'a>(
    config: &'a Config,
    running: &'a [Option<Box<ServiceSpec>>],
    a: Svc,
) -> Option<&'a ServiceSpec> {
    match running.get(a) {
        Some(Some(spec)) => Some(spec),
        _ => config.services.get(a),
    }
}

/// Started at boot (and by a reload that adds it).
fn autostarts(spec: &ServiceSpec) -> bool {
    spec.autostart && spec.start == StartMode::Auto
}

/// What, when it changes, makes neighbours look again.
fn key(s: &Service) -> (State, Want, bool, bool, bool, bool) {
    (s.state, s.want, s.pid.is_some(), s.must_stop, s.stuck, s.timer.is_some())
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
