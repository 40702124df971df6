//! service: the state machine of one service: one `match (state, input)` with no `_` arm, so the
//! compiler checks the whole table. Pure: no fds, `now` is an argument.
//!
//! A `Service` knows its own process, timer, restart counters and reasons. It does not know about
//! other services: the supervisor decides *when* to launch, block or stop it (dependencies,
//! conflicts, shutdown order) and sends it an `Input`; the service answers with `Output`s (spawn,
//! signal, gave up) and its new state. At most one timer is pending per service.

use std::time::{Duration, Instant};

use crate::backoff;
use crate::spec::{Kind, MAX_DURATION, OnUnhealthy, Ready, RestartStrategy, ServiceSpec};
use crate::supervisor::{ExitStatus, State};

/// SIGKILL: the one signal a stop ends with.
pub const SIGKILL: i32 = 9;

/// What the operator (or a dependent pulling it in) wants, apart from what the service is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Up,
    Down,
}

/// The one pending deadline of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// `start-delay` before a spawn (state Blocked).
    StartDelay,
    /// Restart backoff (state Failed, or Exited for `restart = "always"` after a clean exit).
    Backoff,
    /// `start-timeout`: not ready in time (state Starting).
    StartTimeout,
    /// `[termination] wait` passed: SIGKILL the group (state Stopping).
    StopKill,
}

/// What the supervisor tells one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Its dependencies allow it: start now (or after `start-delay`).
    Launch,
    /// It wants to run but cannot yet; `stuck` when nothing will change that without an operator
    /// (a dependency failed for good, was stopped, or a conflict holds it).
    Block {
        reason: String,
        stuck: bool,
    },
    Spawned(i32),
    ExecOk,
    SpawnFailed(String),
    Exited(ExitStatus),
    Ready,
    Unhealthy(String),
    /// Stop now: the termination signal to its group, or Inactive when it has no process.
    Stop,
    /// SIGKILL now (stop timeout, forced shutdown).
    Kill,
    /// Its timer of this kind passed.
    Fired(Timer),
    /// Operator start/restart: forget the failure count and any backoff.
    Reset,
}

/// What one step asks the supervisor to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Spawn,
    Signal {
        pid: i32,
        signal: i32,
    },
    /// It failed for good; `code` is its exit code (128+N when signalled, 1 when it never ran).
    GaveUp {
        code: i32,
    },
}

/// When a service counts as ready (design §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadyRule {
    /// At `ExecOk`.
    Started,
    /// At `Event::Ready` (health probe, notify, fd).
    Signalled,
    /// A oneshot: when it exits successfully.
    OnExit,
}

fn ready_rule(spec: &ServiceSpec) -> ReadyRule {
    // Design §5 order: `auto` is `healthy` when a check exists, else success for a oneshot.
    if spec.oneshot && spec.ready == Ready::Auto && spec.health.is_none() {
        return ReadyRule::OnExit;
    }
    match spec.effective_ready() {
        Ready::Started | Ready::Auto => ReadyRule::Started,
        Ready::Healthy | Ready::Notify | Ready::Fd(_) => ReadyRule::Signalled,
    }
}

/// Whether a failed run may be followed by an automatic restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// As `[restart] strategy` says.
    Policy,
    /// `on-unhealthy = "restart"`: whatever the strategy (still bounded by `attempts`).
    Always,
    /// `on-unhealthy = "stop"`, or a failure while going down.
    Never,
}

/// We killed it because it failed (start timeout, unhealthy): its end is a failed run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kill {
    reason: String,
    retry: Retry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub state: State,
    pub want: Want,
    pub pid: Option<i32>,
    /// Why it is Blocked/Failed/Exited (or was stopped), in words.
    pub reason: Option<String>,
    /// Blocked with nothing pending that could unblock it.
    pub stuck: bool,
    /// Consecutive failed runs (for `attempts`).
    pub fails: u32,
    /// Consecutive automatic restarts (for the backoff delay).
    pub streak: u32,
    /// Automatic restarts so far (shown by `status`).
    pub restarts: u32,
    pub timer: Option<(Instant, Timer)>,
    /// Supervisor's: it has a process and must stop (wanted down, a required dependency is going
    /// away, restart requested, shutdown).
    pub must_stop: bool,
    /// Supervisor's: operator restart in progress (stop, then start again).
    pub restart_requested: bool,
    /// Supervisor's: why it was told to stop; becomes the reason once it has stopped.
    pub note: Option<String>,
    /// Supervisor's: the service it is Blocked on (for `why`).
    pub blocked_on: Option<usize>,
    pub last_status: Option<ExitStatus>,
    started_at: Option<Instant>,
    /// `start-delay` already served for this launch.
    delayed: bool,
    /// The exec failure reported before its exit (replaces "exit 127").
    spawn_error: Option<String>,
    kill: Option<Kill>,
    /// SIGKILL already sent to this process.
    killed: bool,
}

impl Default for Service {
    fn default() -> Self {
        Service::new()
    }
}

impl Service {
    pub fn new() -> Service {
        Service {
            state: State::Inactive,
            want: Want::Down,
            pid: None,
            reason: None,
            stuck: false,
            fails: 0,
            streak: 0,
            restarts: 0,
            timer: None,
            must_stop: false,
            restart_requested: false,
            note: None,
            blocked_on: None,
            last_status: None,
            started_at: None,
            delayed: false,
            spawn_error: None,
            kill: None,
            killed: false,
        }
    }

    /// Starting, Running or Stopping: it has (or is about to have) a process, or is a running
    /// target. Such a service must be stopped before what it depends on.
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Starting | State::Running | State::Stopping)
    }

    /// The state table. `shutting_down`: no restart may be scheduled.
    pub fn step(
        &mut self,
        spec: &ServiceSpec,
        input: Input,
        now: Instant,
        shutting_down: bool,
    ) -> Vec<Output> {
        use State::{Blocked, Exited, Failed, Inactive, Running, Starting, Stopping};
        let mut out = Vec::new();
        if let Input::Fired(_) = input {
            self.timer = None; // one shot: whatever the table does, this deadline is spent
        }
        match (self.state, input) {
            (Inactive | Blocked, Input::Launch) => self.launch(spec, now, &mut out),
            (Starting | Running | Stopping | Exited | Failed, Input::Launch) => {}

            (Inactive | Blocked, Input::Block { reason, stuck }) => {
                if matches!(self.timer, Some((_, Timer::StartDelay))) {
                    self.timer = None;
                }
                self.delayed = false;
                self.state = Blocked;
                self.reason = Some(reason);
                self.stuck = stuck;
            }
            (Starting | Running | Stopping | Exited | Failed, Input::Block { .. }) => {}

            (Starting, Input::Spawned(pid)) => {
                if self.pid.is_some() {
                    stray(spec, pid, &mut out);
                } else {
                    self.pid = Some(pid);
                    self.started_at = Some(now);
                    if !spec.start_timeout.is_zero() {
                        self.timer = Some((later(now, spec.start_timeout), Timer::StartTimeout));
                    }
                }
            }
            (Inactive | Blocked | Running | Stopping | Exited | Failed, Input::Spawned(pid)) => {
                stray(spec, pid, &mut out);
            }

            (Starting, Input::ExecOk) => {
                if self.pid.is_some() && ready_rule(spec) == ReadyRule::Started {
                    self.become_ready();
                }
            }
            (Inactive | Blocked | Running | Stopping | Exited | Failed, Input::ExecOk) => {}

            (Starting, Input::SpawnFailed(error)) => {
                if self.pid.is_some() {
                    // Its Exited follows; this reason replaces "exit 127".
                    self.spawn_error = Some(error);
                } else {
                    // fork failed: no process, no Exited will come.
                    self.ended(spec, None, error, false, Retry::Policy, now, shutting_down, &mut out);
                }
            }
            (Inactive | Blocked | Running | Stopping | Exited | Failed, Input::SpawnFailed(_)) => {}

            (Starting | Running, Input::Exited(status)) => {
                let success = is_success(spec, status) && self.spawn_error.is_none();
                let reason = match (self.spawn_error.take(), self.kill.take()) {
                    (Some(e), _) => e,
                    (None, Some(k)) => k.reason,
                    (None, None) => describe(status),
                };
                self.ended(spec, Some(status), reason, success, Retry::Policy, now, shutting_down, &mut out);
            }
            (Stopping, Input::Exited(status)) => match self.kill.take() {
                Some(k) if self.want == Want::Up && !shutting_down => {
                    self.ended(spec, Some(status), k.reason, false, k.retry, now, false, &mut out);
                }
                Some(_) | None => {
                    self.clear_process(status);
                    self.state = Inactive;
                    self.reason = self.note.take();
                }
            },
            (Inactive | Blocked | Exited | Failed, Input::Exited(_)) => {}

            (Starting, Input::Ready) => {
                if self.pid.is_some() && ready_rule(spec) == ReadyRule::Signalled {
                    self.become_ready();
                }
            }
            (Inactive | Blocked | Running | Stopping | Exited | Failed, Input::Ready) => {}

            (Starting | Running, Input::Unhealthy(why)) => {
                let on = spec.health.as_ref().map_or(OnUnhealthy::Restart, |h| h.on_unhealthy);
                let retry = match on {
                    OnUnhealthy::Ignore => None,
                    OnUnhealthy::Restart => Some(Retry::Always),
                    OnUnhealthy::Stop => Some(Retry::Never),
                };
                if let (Some(retry), Some(pid)) = (retry, self.pid) {
                    self.kill = Some(Kill { reason: format!("unhealthy: {why}"), retry });
                    self.signal_stop(spec, pid, now, &mut out);
                }
            }
            (Inactive | Blocked | Stopping | Exited | Failed, Input::Unhealthy(_)) => {}

            (Starting | Running, Input::Stop) => match self.pid {
                Some(pid) => self.signal_stop(spec, pid, now, &mut out),
                // A target has no process; a spawn not yet reported waits for its pid.
                None if self.state == Running => {
                    self.state = Inactive;
                    self.reason = self.note.take();
                }
                None => {}
            },
            (Stopping, Input::Stop) => {}
            (Inactive | Blocked | Exited | Failed, Input::Stop) => {
                self.timer = None;
                self.delayed = false;
                self.stuck = false;
                self.state = Inactive;
                self.reason = self.note.take();
            }

            (Starting | Running | Stopping, Input::Kill) => {
                if let Some(pid) = self.pid {
                    self.sigkill(pid, &mut out);
                    self.state = Stopping;
                }
            }
            (Inactive | Blocked | Exited | Failed, Input::Kill) => {}

            (Blocked, Input::Fired(Timer::StartDelay)) => self.delayed = true,
            (Failed | Exited, Input::Fired(Timer::Backoff)) => {
                self.state = Inactive;
                self.restarts = self.restarts.saturating_add(1);
            }
            (Starting, Input::Fired(Timer::StartTimeout)) => {
                if let Some(pid) = self.pid {
                    self.kill = Some(Kill { reason: "start timeout".to_string(), retry: Retry::Policy });
                    self.sigkill(pid, &mut out);
                    self.state = Stopping;
                }
            }
            (Stopping, Input::Fired(Timer::StopKill)) => {
                if let Some(pid) = self.pid {
                    self.sigkill(pid, &mut out);
                }
            }
            // A timer of the wrong kind for the state: stale, nothing to do.
            (Inactive | Running | Exited | Failed | Stopping | Starting, Input::Fired(Timer::StartDelay))
            | (Inactive | Blocked | Starting | Running | Stopping, Input::Fired(Timer::Backoff))
            | (
                Inactive | Blocked | Running | Stopping | Exited | Failed,
                Input::Fired(Timer::StartTimeout),
            )
            | (Inactive | Blocked | Starting | Running | Exited | Failed, Input::Fired(Timer::StopKill)) => {}

            (Exited | Failed, Input::Reset) => {
                self.fails = 0;
                self.streak = 0;
                self.timer = None;
                self.state = Inactive;
                self.reason = None;
            }
            (Inactive | Blocked | Starting | Running | Stopping, Input::Reset) => {
                self.fails = 0;
                self.streak = 0;
            }
        }
        out
    }

    fn launch(&mut self, spec: &ServiceSpec, now: Instant, out: &mut Vec<Output>) {
        self.stuck = false;
        self.blocked_on = None;
        if spec.kind == Kind::Target {
            self.state = State::Running;
            self.reason = None;
            return;
        }
        if matches!(self.timer, Some((_, Timer::StartDelay))) {
            return; // still serving the delay
        }
        if !spec.start_delay.is_zero() && !self.delayed {
            self.state = State::Blocked;
            self.reason = Some(format!("start delay {}", fmt_duration(spec.start_delay)));
            self.timer = Some((later(now, spec.start_delay), Timer::StartDelay));
            return;
        }
        self.delayed = false;
        self.state = State::Starting;
        self.pid = None;
        self.reason = None;
        self.spawn_error = None;
        self.kill = None;
        self.killed = false;
        out.push(Output::Spawn);
    }

    fn become_ready(&mut self) {
        self.state = State::Running;
        self.reason = None;
        if matches!(self.timer, Some((_, Timer::StartTimeout))) {
            self.timer = None;
        }
    }

    fn signal_stop(&mut self, spec: &ServiceSpec, pid: i32, now: Instant, out: &mut Vec<Output>) {
        out.push(Output::Signal { pid, signal: spec.termination.signal });
        self.state = State::Stopping;
        self.timer = Some((later(now, spec.termination.wait), Timer::StopKill));
    }

    fn sigkill(&mut self, pid: i32, out: &mut Vec<Output>) {
        if !self.killed {
            self.killed = true;
            out.push(Output::Signal { pid, signal: SIGKILL });
        }
        if matches!(self.timer, Some((_, Timer::StopKill | Timer::StartTimeout))) {
            self.timer = None;
        }
    }

    fn clear_process(&mut self, status: ExitStatus) {
        self.pid = None;
        self.timer = None;
        self.killed = false;
        self.started_at = None;
        self.spawn_error = None;
        self.restart_requested = false;
        self.last_status = Some(status);
    }

    /// A run ended on its own (or never began: `status` None). Decides Exited / Failed / restart.
    #[allow(clippy::too_many_arguments)]
    fn ended(
        &mut self,
        spec: &ServiceSpec,
        status: Option<ExitStatus>,
        reason: String,
        success: bool,
        retry: Retry,
        now: Instant,
        shutting_down: bool,
        out: &mut Vec<Output>,
    ) {
        let ran = self.started_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.pid = None;
        self.timer = None;
        self.killed = false;
        self.started_at = None;
        self.spawn_error = None;
        self.kill = None;
        self.restart_requested = false;
        self.last_status = status;
        let r = &spec.restart;
        if !r.reset_after.is_zero() && ran >= r.reset_after {
            self.fails = 0;
            self.streak = 0;
        }
        if shutting_down || self.want == Want::Down {
            // Asked to go away (or going away anyway): not a failure, nothing restarts.
            self.state = if success { State::Exited } else { State::Inactive };
            self.reason = Some(self.note.take().unwrap_or(reason));
            return;
        }
        if success {
            self.fails = 0;
            if !spec.oneshot && r.strategy == RestartStrategy::Always && retry == Retry::Policy {
                self.schedule_restart(spec, State::Exited, reason, now);
            } else {
                self.state = State::Exited;
                self.reason = Some(reason);
            }
            return;
        }
        self.fails = self.fails.saturating_add(1);
        let restarts = match retry {
            Retry::Policy => matches!(r.strategy, RestartStrategy::Always | RestartStrategy::OnFailure),
            Retry::Always => true,
            Retry::Never => false,
        };
        if restarts && (r.attempts == 0 || self.fails < r.attempts) {
            self.schedule_restart(spec, State::Failed, reason, now);
            return;
        }
        self.state = State::Failed;
        self.reason = Some(if restarts && r.attempts > 0 {
            format!("gave up after {} attempts: {reason}", self.fails)
        } else {
            reason
        });
        out.push(Output::GaveUp { code: status.map_or(1, ExitStatus::code) });
    }

    fn schedule_restart(&mut self, spec: &ServiceSpec, state: State, reason: String, now: Instant) {
        let d = backoff::delay(&spec.restart, self.streak);
        self.streak = self.streak.saturating_add(1);
        self.state = state;
        self.timer = Some((later(now, d), Timer::Backoff));
        self.reason = Some(format!("{reason}; restarting in {}", fmt_duration(d)));
    }
}

/// Spawned arrived for a service not expecting one: never lose a process, kill it.
fn stray(spec: &ServiceSpec, pid: i32, out: &mut Vec<Output>) {
    log::warn!("{}: unexpected process {pid}: killing it", spec.name);
    out.push(Output::Signal { pid, signal: SIGKILL });
}

/// `now + d` that cannot overflow (durations are bounded at validation; this is the belt).
pub fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).or_else(|| now.checked_add(MAX_DURATION)).unwrap_or(now)
}

pub fn is_success(spec: &ServiceSpec, status: ExitStatus) -> bool {
    match status {
        ExitStatus::Code(c) => spec.failure.successful_exit_codes.contains(&c),
        ExitStatus::Signal(_) => false,
    }
}

/// "exit 3", "killed by SIGKILL".
pub fn describe(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(c) => format!("exit {c}"),
        ExitStatus::Signal(s) => format!("killed by {}", crate::signals::signal_name(s)),
    }
}

/// "100ms", "2s", "1.5s", "3m".
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
    }
}
