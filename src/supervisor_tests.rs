//! Tests of the pure core: a fake clock (an `Instant` base plus offsets), fake pids, and a fake
//! reactor that answers `Spawn` with `Spawned` (and, unless told otherwise, `ExecOk`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use super::*;
use crate::service::Want;
use crate::spec::{FailureStrategy, Ready, RestartStrategy, ServiceSpec};

const MS: Duration = Duration::from_millis(1);

#[derive(Clone)]
pub(super) struct Sim {
    pub sup: Supervisor,
    pub t0: Instant,
    pub now: Instant,
    next_pid: i32,
    /// Feed `ExecOk` right after `Spawned`.
    pub auto_exec: bool,
    /// Every action taken, with the time it was taken.
    pub log: Vec<(Duration, Action)>,
    /// Services whose fork "fails" (SpawnFailed without a pid).
    pub fork_fails: Vec<Svc>,
    /// The specs it began with, sorted (the Reload words toggle them).
    pub base: Vec<ServiceSpec>,
    /// (time, name, action) for every action: indices change with a reload, names do not.
    pub named: Vec<(Duration, String, Action)>,
    /// Fill `named` (off in the exhaustive tests: cloning it at every step costs).
    pub record_names: bool,
}

pub(super) fn svc(name: &str) -> ServiceSpec {
    ServiceSpec::new(name, vec![format!("/bin/{name}")])
}

impl Sim {
    pub fn new(specs: Vec<ServiceSpec>) -> Sim {
        Sim::with_mode(specs, Mode::Container)
    }

    pub fn with_mode(mut specs: Vec<ServiceSpec>, mode: Mode) -> Sim {
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        let t0 = Instant::now();
        let sup = Supervisor::new(Config { services: specs.clone() }, mode, t0);
        Sim {
            sup,
            t0,
            now: t0,
            next_pid: 100,
            auto_exec: true,
            log: Vec::new(),
            fork_fails: Vec::new(),
            base: specs,
            named: Vec::new(),
            record_names: true,
        }
    }

    pub fn boot(mut self) -> Sim {
        self.sup.boot(self.now);
        self.run();
        self
    }

    pub fn id(&self, name: &str) -> Svc {
        self.sup.find(name).unwrap_or_else(|| panic!("no service {name}"))
    }

    pub fn at(&self) -> Duration {
        self.now - self.t0
    }

    /// Carries out actions like the reactor: spawns get pids at once.
    pub fn run(&mut self) {
        loop {
            let actions = self.sup.take_actions();
            if actions.is_empty() {
                return;
            }
            for a in actions {
                self.check_action(&a);
                self.log.push((self.at(), a.clone()));
                let name = match a {
                    Action::Spawn(x) | Action::SignalGroup { svc: x, .. } => self.sup.name(x).to_string(),
                    Action::SignalOrphans { .. } | Action::Exit(_) => String::new(),
                };
                if self.record_names {
                    self.named.push((self.at(), name, a.clone()));
                }
                if let Action::Spawn(svc) = a {
                    if self.fork_fails.contains(&svc) {
                        self.sup.handle(Event::SpawnFailed { svc, error: "fork: EAGAIN".into() }, self.now);
                        continue;
                    }
                    let pid = self.next_pid;
                    self.next_pid += 1;
                    self.sup.handle(Event::Spawned { svc, pid }, self.now);
                    if self.auto_exec {
                        self.sup.handle(Event::ExecOk { svc }, self.now);
                    }
                }
            }
        }
    }

    /// Reloads with these specs (sorted here, as the loader does).
    pub fn reload(&mut self, mut specs: Vec<ServiceSpec>) -> ReloadSummary {
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        let r = self.sup.reload(Config { services: specs }, self.now);
        self.run();
        r
    }

    /// Actions taken for the service called `name` (a removed one included), in order.
    pub fn actions_of(&self, name: &str) -> Vec<Action> {
        self.named.iter().filter(|(_, n, _)| n == name).map(|(_, _, a)| a.clone()).collect()
    }

    pub fn event(&mut self, e: Event) {
        self.sup.handle(e, self.now);
        self.run();
    }

    pub fn pid(&self, name: &str) -> i32 {
        self.sup.status(self.id(name)).pid.unwrap_or_else(|| panic!("{name} has no pid"))
    }

    pub fn exit(&mut self, name: &str, status: ExitStatus) {
        let pid = self.pid(name);
        self.event(Event::Exited { pid, status });
    }

    pub fn code(&mut self, name: &str, c: i32) {
        self.exit(name, ExitStatus::Code(c));
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.sup.tick(self.now);
        self.run();
    }

    /// Jumps to the next deadline and fires it; false when there is none.
    pub fn fire_next(&mut self) -> bool {
        match self.sup.next_deadline() {
            Some(t) => {
                self.now = self.now.max(t);
                self.sup.tick(self.now);
                self.run();
                true
            }
            None => false,
        }
    }

    pub fn state(&self, name: &str) -> State {
        self.sup.status(self.id(name)).state
    }

    pub fn reason(&self, name: &str) -> String {
        self.sup.status(self.id(name)).reason.unwrap_or_default()
    }

    /// Times at which `name` was spawned.
    pub fn spawns(&self, name: &str) -> Vec<Duration> {
        let id = self.id(name);
        self.log.iter().filter(|(_, a)| *a == Action::Spawn(id)).map(|(t, _)| *t).collect()
    }

    /// Signals sent to `name`'s group, with times.
    pub fn signals(&self, name: &str) -> Vec<(Duration, i32)> {
        let id = self.id(name);
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::SignalGroup { svc, signal, .. } if *svc == id => Some((*t, *signal)),
                _ => None,
            })
            .collect()
    }

    pub fn exits(&self) -> Vec<i32> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Exit(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    pub fn orphan_signals(&self) -> Vec<i32> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::SignalOrphans { signal } => Some(*signal),
                _ => None,
            })
            .collect()
    }

    /// Position in the log of the first action matching.
    pub fn first(&self, f: impl Fn(&Action) -> bool) -> Option<usize> {
        self.log.iter().position(|(_, a)| f(a))
    }

    /// Plays the part of every process: dies of whatever signal it gets (None: ignores the
    /// stop signal and dies of SIGKILL only), reports NoChildren when none is left, until Exit.
    pub fn finish_shutdown(&mut self, obey: bool) -> i32 {
        for _ in 0..5000 {
            if let Some(&c) = self.exits().first() {
                return c;
            }
            let signalled: Vec<(i32, i32)> = self
                .log
                .iter()
                .filter_map(|(_, a)| match a {
                    Action::SignalGroup { pid, signal, .. } => Some((*pid, *signal)),
                    _ => None,
                })
                .collect();
            let mut progressed = false;
            for (pid, signal) in signalled {
                if self.sup.service_of_pid(pid).is_some() && (obey || signal == 9) {
                    self.event(Event::Exited { pid, status: ExitStatus::Signal(signal) });
                    progressed = true;
                }
            }
            if progressed {
                continue;
            }
            if self.sup.waiting_for_orphans() && self.sup.pids.is_empty() {
                self.event(Event::NoChildren);
                continue;
            }
            if !self.fire_next() {
                break;
            }
        }
        self.exits().first().copied().unwrap_or_else(|| panic!("no Exit; log: {:#?}", self.log))
    }
}

fn requires(mut s: ServiceSpec, deps: &[&str]) -> ServiceSpec {
    s.deps.requires = deps.iter().map(|d| d.to_string()).collect();
    s
}

fn restarting(
    mut s: ServiceSpec,
    strategy: RestartStrategy,
    backoff_ms: u64,
    max_ms: u64,
    attempts: u32,
) -> ServiceSpec {
    s.restart.strategy = strategy;
    s.restart.backoff = Duration::from_millis(backoff_ms);
    s.restart.max_backoff = Duration::from_millis(max_ms);
    s.restart.attempts = attempts;
    s
}

fn oneshot(mut s: ServiceSpec) -> ServiceSpec {
    s.oneshot = true;
    s
}

// ---- dependencies --------------------------------------------------------------------------

#[test]
fn requires_starts_the_dependency_first_and_waits_until_it_is_ready() {
    let mut db = svc("db");
    db.ready = Ready::Notify;
    let mut s = Sim::new(vec![db, requires(svc("web"), &["db"])]).boot();
    assert_eq!(s.state("db"), State::Starting);
    assert_eq!(s.state("web"), State::Blocked);
    assert_eq!(s.reason("web"), "waiting for db");
    assert!(s.spawns("web").is_empty());
    let db = s.id("db");
    s.event(Event::Ready { svc: db });
    assert_eq!(s.state("db"), State::Running);
    assert_eq!(s.state("web"), State::Running);
    assert!(s.first(|a| *a == Action::Spawn(db)) < s.first(|a| *a == Action::Spawn(s.id("web"))));
    assert_eq!(s.sup.summary(), "db is running (pid 100)\nweb is running (pid 101)");
}

#[test]
fn started_readiness_is_exec_success_not_fork() {
    let mut s = Sim::new(vec![svc("db"), requires(svc("web"), &["db"])]);
    s.auto_exec = false;
    let mut s = s.boot();
    assert_eq!(s.state("db"), State::Starting);
    assert!(s.spawns("web").is_empty());
    let db = s.id("db");
    s.event(Event::ExecOk { svc: db });
    assert_eq!(s.spawns("web").len(), 1);
}

#[test]
fn oneshot_gates_its_dependents_until_it_exits_successfully() {
    let mut s = Sim::new(vec![oneshot(svc("migrate")), requires(svc("web"), &["migrate"])]).boot();
    assert_eq!(s.state("migrate"), State::Starting, "a oneshot is not ready at exec");
    assert_eq!(s.state("web"), State::Blocked);
    s.advance(Duration::from_secs(2));
    s.code("migrate", 0);
    assert_eq!(s.state("migrate"), State::Exited);
    assert_eq!(s.state("web"), State::Running);
    assert_eq!(s.spawns("web"), vec![Duration::from_secs(2)]);
}

#[test]
fn oneshot_failure_blocks_dependents_with_a_reason_and_why_explains() {
    let mut s = Sim::new(vec![oneshot(svc("migrate")), requires(svc("web"), &["migrate"])]).boot();
    s.code("migrate", 3);
    assert_eq!(s.state("migrate"), State::Failed);
    assert_eq!(s.reason("migrate"), "exit 3");
    assert_eq!(s.state("web"), State::Blocked);
    assert_eq!(s.reason("web"), "dependency migrate failed");
    let why = s.sup.why(s.id("web"));
    assert_eq!(why, "web is blocked: dependency migrate failed\nmigrate failed: exit 3");
    // Nothing left to run: init shuts down and exits 1 (a service failed for good).
    assert_eq!(s.finish_shutdown(true), 1);
}

#[test]
fn start_after_waits_for_exit_or_ready_and_ignores_later_failure() {
    let mut web = svc("web");
    web.deps.start_after = vec!["db".into()];
    let db = restarting(svc("db"), RestartStrategy::Never, 100, 1000, 0);
    let mut s = Sim::new(vec![db, web]).boot();
    assert_eq!(s.state("web"), State::Running);
    s.code("db", 1);
    assert_eq!(s.state("db"), State::Failed);
    assert_eq!(s.state("web"), State::Running, "start-after: a later failure does not stop it");
}

#[test]
fn start_after_dependency_failing_before_ready_blocks_with_reason() {
    let mut web = svc("web");
    web.deps.start_after = vec!["db".into()];
    let mut db = svc("db");
    db.ready = Ready::Notify;
    let mut s = Sim::new(vec![db, web]).boot();
    s.code("db", 1);
    assert_eq!(s.state("web"), State::Blocked);
    assert_eq!(s.reason("web"), "dependency db failed");
}

#[test]
fn after_is_order_only_and_ignored_when_the_other_is_not_started() {
    let mut web = svc("web");
    web.deps.after = vec!["logger".into(), "manual".into()];
    let mut manual = svc("manual");
    manual.autostart = false;
    let mut logger = svc("logger");
    logger.ready = Ready::Notify;
    let mut s = Sim::new(vec![logger, manual, web]).boot();
    assert_eq!(s.state("web"), State::Blocked, "waits for logger, which is starting");
    let logger = s.id("logger");
    s.event(Event::Ready { svc: logger });
    assert_eq!(s.state("web"), State::Running);
    assert_eq!(s.state("manual"), State::Inactive, "after does not pull in");
    // logger failing later does not touch web.
    s.code("logger", 1);
    assert_eq!(s.state("web"), State::Running);
}

#[test]
fn wants_starts_the_other_and_ignores_its_failure() {
    let mut web = svc("web");
    web.deps.wants = vec!["metrics".into()];
    let mut metrics = svc("metrics");
    metrics.autostart = false;
    let mut s = Sim::new(vec![metrics, web]).boot();
    assert_eq!(s.state("metrics"), State::Running);
    s.code("metrics", 1);
    assert_eq!(s.state("metrics"), State::Failed);
    assert_eq!(s.state("web"), State::Running);
}

#[test]
fn autostart_false_stays_inactive_unless_required_or_started() {
    let mut manual = svc("manual");
    manual.autostart = false;
    let mut lib = svc("lib");
    lib.autostart = false;
    let mut s = Sim::new(vec![manual, lib, requires(svc("web"), &["lib"])]).boot();
    assert_eq!(s.state("manual"), State::Inactive);
    assert!(s.sup.why(s.id("manual")).contains("autostart = false"));
    assert_eq!(s.state("lib"), State::Running, "pulled in by web's requires");
    let manual = s.id("manual");
    s.event(Event::Start { svc: manual });
    assert_eq!(s.state("manual"), State::Running);
}

#[test]
fn a_target_runs_when_its_dependencies_are_ready() {
    let mut t = requires(svc("multi-user"), &["db", "web"]);
    t.kind = Kind::Target;
    t.command = vec![];
    let mut db = svc("db");
    db.autostart = false;
    db.ready = Ready::Notify;
    let mut web = svc("web");
    web.autostart = false;
    let mut s = Sim::new(vec![db, t, web]).boot();
    assert_eq!(s.state("multi-user"), State::Blocked);
    let db = s.id("db");
    s.event(Event::Ready { svc: db });
    assert_eq!(s.state("multi-user"), State::Running);
    assert_eq!(s.sup.status(s.id("multi-user")).pid, None);
    assert!(s.spawns("multi-user").is_empty());
    // A dependency that stops for good takes the target down with it.
    s.code("web", 1);
    assert_eq!(s.state("multi-user"), State::Blocked);
    assert_eq!(s.reason("multi-user"), "dependency web failed");
}

#[test]
fn conflicts_first_by_name_wins_then_start_switches() {
    let mut a = svc("a");
    a.deps.conflicts = vec!["b".into()];
    let mut s = Sim::new(vec![a, svc("b")]).boot();
    assert_eq!(s.state("a"), State::Running);
    assert_eq!(s.state("b"), State::Blocked);
    assert_eq!(s.reason("b"), "conflicts with a");
    let b = s.id("b");
    s.event(Event::Start { svc: b });
    assert_eq!(s.state("a"), State::Stopping);
    assert_eq!(s.state("b"), State::Blocked, "waits until a has stopped");
    s.exit("a", ExitStatus::Signal(15));
    assert_eq!(s.state("a"), State::Inactive);
    assert_eq!(s.reason("a"), "stopped: conflicts with b");
    assert_eq!(s.state("b"), State::Running);
}

#[test]
fn conflict_loser_starts_when_the_winner_fails_for_good() {
    let mut a = svc("a");
    a.deps.conflicts = vec!["b".into()];
    let mut s = Sim::new(vec![a, svc("b")]).boot();
    s.code("a", 1);
    assert_eq!(s.state("b"), State::Running);
}

// ---- restarts ------------------------------------------------------------------------------

#[test]
fn restart_gaps_double_from_the_100ms_floor_up_to_the_cap() {
    let crash = restarting(svc("crash"), RestartStrategy::OnFailure, 0, 1000, 0);
    let mut s = Sim::new(vec![crash]).boot();
    for _ in 0..7 {
        s.code("crash", 1);
        assert_eq!(s.state("crash"), State::Failed);
        assert!(s.reason("crash").starts_with("exit 1; restarting in"), "{}", s.reason("crash"));
        assert!(s.fire_next());
        assert_eq!(s.state("crash"), State::Running);
    }
    let t = s.spawns("crash");
    let gaps: Vec<u128> = t.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    assert_eq!(gaps, [100, 200, 400, 800, 1000, 1000, 1000]);
    assert_eq!(s.sup.status(s.id("crash")).restarts, 7);
}

#[test]
fn an_instantly_crashing_service_does_not_spin() {
    let crash = restarting(svc("crash"), RestartStrategy::Always, 0, 60_000, 0);
    let mut s = Sim::new(vec![crash]).boot();
    while s.at() < Duration::from_secs(10) {
        if s.state("crash") == State::Running {
            s.code("crash", 0);
        }
        assert!(s.fire_next());
    }
    assert!(s.spawns("crash").len() <= 8, "{} spawns in 10 s", s.spawns("crash").len());
}

#[test]
fn gives_up_after_attempts_and_stops_requires_dependents() {
    let db = restarting(svc("db"), RestartStrategy::OnFailure, 100, 10_000, 3);
    let mut s = Sim::new(vec![db, requires(svc("web"), &["db"]), svc("keep")]).boot();
    assert_eq!(s.state("web"), State::Running);
    s.code("db", 1);
    assert_eq!(s.state("web"), State::Running, "a restart in progress does not stop dependents");
    assert!(s.fire_next());
    s.code("db", 1);
    assert!(s.fire_next());
    assert!(s.signals("web").is_empty());
    s.code("db", 1);
    assert_eq!(s.state("db"), State::Failed);
    assert_eq!(s.reason("db"), "gave up after 3 attempts: exit 1");
    assert_eq!(s.spawns("db").len(), 3);
    assert_eq!(s.signals("web").iter().map(|x| x.1).collect::<Vec<_>>(), [15]);
    assert_eq!(s.state("web"), State::Stopping);
    s.exit("web", ExitStatus::Signal(15));
    assert_eq!(s.state("web"), State::Blocked);
    assert_eq!(s.reason("web"), "dependency db failed");
    // Operator brings db back: web starts again by itself.
    let db = s.id("db");
    s.event(Event::Start { svc: db });
    assert_eq!(s.state("db"), State::Running);
    assert_eq!(s.state("web"), State::Running);
    assert_eq!(s.spawns("web").len(), 2);
}

#[test]
fn reset_after_a_long_run_resets_count_and_delay() {
    let mut crash = restarting(svc("crash"), RestartStrategy::OnFailure, 100, 10_000, 3);
    crash.restart.reset_after = Duration::from_secs(10);
    let mut s = Sim::new(vec![crash]).boot();
    s.code("crash", 1);
    assert!(s.fire_next()); // +100 ms
    s.code("crash", 1);
    assert!(s.fire_next()); // +200 ms
    s.advance(Duration::from_secs(10));
    s.code("crash", 1); // long run: count and delay reset
    assert_eq!(s.state("crash"), State::Failed);
    assert!(s.reason("crash").ends_with("restarting in 100ms"), "{}", s.reason("crash"));
    assert!(s.fire_next());
    s.code("crash", 1);
    assert!(s.fire_next());
    s.code("crash", 1);
    assert_eq!(s.reason("crash"), "gave up after 3 attempts: exit 1");
}

#[test]
fn restart_strategies_always_on_failure_never() {
    let always = restarting(svc("always"), RestartStrategy::Always, 100, 1000, 0);
    let onf = restarting(svc("onf"), RestartStrategy::OnFailure, 100, 1000, 0);
    let never = svc("never");
    let mut s = Sim::new(vec![always, never, onf]).boot();
    s.code("always", 0);
    s.code("onf", 0);
    s.code("never", 1);
    assert_eq!(s.state("always"), State::Exited);
    assert_eq!(s.state("onf"), State::Exited);
    assert_eq!(s.reason("onf"), "exit 0");
    assert_eq!(s.state("never"), State::Failed);
    assert_eq!(s.reason("never"), "exit 1");
    s.advance(Duration::from_millis(100));
    assert_eq!(s.state("always"), State::Running);
    assert_eq!(s.spawns("onf").len(), 1);
}

#[test]
fn successful_exit_codes_and_signals() {
    let mut a = restarting(svc("a"), RestartStrategy::OnFailure, 100, 1000, 0);
    a.failure.successful_exit_codes = vec![0, 2];
    let mut s = Sim::new(vec![a, svc("keep")]).boot();
    s.code("a", 2);
    assert_eq!(s.state("a"), State::Exited);
    let a = s.id("a");
    s.event(Event::Start { svc: a });
    s.exit("a", ExitStatus::Signal(9));
    assert_eq!(s.state("a"), State::Failed);
    assert!(s.reason("a").starts_with("killed by SIGKILL"), "{}", s.reason("a"));
}

#[test]
fn stop_during_backoff_stays_stopped() {
    let crash = restarting(svc("crash"), RestartStrategy::Always, 3000, 10_000, 0);
    let mut s = Sim::new(vec![crash, svc("other")]).boot();
    s.code("crash", 1);
    s.advance(Duration::from_millis(800));
    let c = s.id("crash");
    s.event(Event::Stop { svc: c });
    assert_eq!(s.state("crash"), State::Inactive);
    s.advance(Duration::from_secs(30));
    assert_eq!(s.spawns("crash").len(), 1, "zinit bug: the pending timer respawned it");
    assert_eq!(s.state("crash"), State::Inactive);
}

#[test]
fn start_of_a_failed_service_resets_its_count() {
    let crash = restarting(svc("crash"), RestartStrategy::OnFailure, 100, 1000, 2);
    let mut s = Sim::new(vec![crash, svc("keep")]).boot();
    s.code("crash", 1);
    assert!(s.fire_next());
    s.code("crash", 1);
    assert_eq!(s.reason("crash"), "gave up after 2 attempts: exit 1");
    let c = s.id("crash");
    s.event(Event::Start { svc: c });
    assert_eq!(s.state("crash"), State::Running);
    s.code("crash", 1);
    assert_eq!(s.state("crash"), State::Failed);
    assert!(s.reason("crash").contains("restarting"), "count was reset: {}", s.reason("crash"));
}

#[test]
fn start_delay_applies_before_every_start() {
    let mut d = restarting(svc("d"), RestartStrategy::OnFailure, 100, 1000, 0);
    d.start_delay = Duration::from_secs(2);
    let mut s = Sim::new(vec![d]).boot();
    assert_eq!(s.state("d"), State::Blocked);
    assert_eq!(s.reason("d"), "start delay 2s");
    assert!(s.fire_next());
    assert_eq!(s.spawns("d"), vec![Duration::from_secs(2)]);
    s.code("d", 1);
    assert!(s.fire_next()); // backoff 100 ms
    assert_eq!(s.state("d"), State::Blocked);
    assert!(s.fire_next()); // start delay 2 s
    assert_eq!(s.spawns("d"), vec![Duration::from_secs(2), Duration::from_millis(4100)]);
}

#[test]
fn start_timeout_kills_and_fails() {
    let mut slow = svc("slow");
    slow.ready = Ready::Notify;
    slow.start_timeout = Duration::from_secs(1);
    let mut s = Sim::new(vec![slow]).boot();
    assert_eq!(s.sup.next_deadline(), Some(s.t0 + Duration::from_secs(1)));
    assert!(s.fire_next());
    assert_eq!(s.signals("slow"), vec![(Duration::from_secs(1), 9)]);
    s.exit("slow", ExitStatus::Signal(9));
    assert_eq!(s.state("slow"), State::Failed);
    assert_eq!(s.reason("slow"), "start timeout");
}

#[test]
fn exec_failure_reason_replaces_exit_127_and_fork_failure_fails_at_once() {
    let mut s = Sim::new(vec![svc("a"), svc("b")]);
    s.auto_exec = false;
    s.fork_fails = vec![1];
    let mut s = s.boot();
    assert_eq!(s.state("b"), State::Failed);
    assert_eq!(s.reason("b"), "fork: EAGAIN");
    let a = s.id("a");
    s.event(Event::SpawnFailed { svc: a, error: "unable to exec /bin/a: No such file or directory".into() });
    assert_eq!(s.state("a"), State::Starting);
    s.code("a", 127);
    assert_eq!(s.state("a"), State::Failed);
    assert_eq!(s.reason("a"), "unable to exec /bin/a: No such file or directory");
}

#[test]
fn exits_of_unknown_pids_are_ignored() {
    let mut s = Sim::new(vec![svc("a")]).boot();
    let before = s.sup.status(0);
    s.event(Event::Exited { pid: 99_999, status: ExitStatus::Code(1) });
    assert_eq!(s.sup.status(0), before);
    assert!(s.exits().is_empty());
}

#[test]
fn idle_supervisor_has_no_deadline() {
    let s = Sim::new(vec![svc("a"), requires(svc("b"), &["a"])]).boot();
    assert_eq!(s.sup.next_deadline(), None);
}

#[test]
fn unhealthy_restart_restarts_whatever_the_strategy_stop_fails_for_good_ignore_ignores() {
    use crate::spec::{Health, OnUnhealthy};
    let health = |on| Health {
        http: None,
        tcp: None,
        command: None,
        file: Some("/run/x".into()),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        start_period: Duration::ZERO,
        max_failed: 3,
        on_unhealthy: on,
    };
    let mut r = svc("r");
    r.health = Some(Box::new(health(OnUnhealthy::Restart)));
    let mut st = svc("st");
    st.health = Some(Box::new(health(OnUnhealthy::Stop)));
    let mut ig = svc("ig");
    ig.health = Some(Box::new(health(OnUnhealthy::Ignore)));
    let mut s = Sim::new(vec![ig, r, st]).boot();
    for name in ["ig", "r", "st"] {
        let x = s.id(name);
        assert_eq!(s.state(name), State::Starting, "ready = healthy: not ready at exec");
        s.event(Event::Ready { svc: x });
        assert_eq!(s.state(name), State::Running);
        s.event(Event::Unhealthy { svc: x, reason: "connection refused".into() });
    }
    assert_eq!(s.state("ig"), State::Running);
    assert_eq!(s.signals("r").iter().map(|x| x.1).collect::<Vec<_>>(), [15]);
    s.exit("r", ExitStatus::Signal(15));
    assert_eq!(s.state("r"), State::Failed);
    assert_eq!(s.reason("r"), "unhealthy: connection refused; restarting in 100ms");
    assert!(s.fire_next());
    assert_eq!(s.spawns("r").len(), 2);
    s.exit("st", ExitStatus::Code(0));
    assert_eq!(s.state("st"), State::Failed);
    assert_eq!(s.reason("st"), "unhealthy: connection refused");
}

// ---- failure propagation -------------------------------------------------------------------

#[test]
fn failure_strategy_shutdown_exits_with_the_service_code() {
    let mut a = svc("a");
    a.failure.strategy = FailureStrategy::Shutdown;
    let mut s = Sim::new(vec![a, svc("b")]).boot();
    s.code("a", 3);
    assert_eq!(s.signals("b").iter().map(|x| x.1).collect::<Vec<_>>(), [15]);
    assert_eq!(s.finish_shutdown(true), 3);

    let mut a = svc("a");
    a.failure.strategy = FailureStrategy::Shutdown;
    let mut s = Sim::new(vec![a, svc("b")]).boot();
    s.exit("a", ExitStatus::Signal(9));
    assert_eq!(s.finish_shutdown(true), 137);
}

#[test]
fn kill_dependents_stops_requires_and_start_after_dependents() {
    let mut db = svc("db");
    db.failure.strategy = FailureStrategy::KillDependents;
    let mut side = svc("side");
    side.deps.start_after = vec!["db".into()];
    let mut s = Sim::new(vec![db, side, requires(svc("web"), &["db"]), svc("other")]).boot();
    s.code("db", 1);
    assert_eq!(s.state("side"), State::Stopping);
    assert_eq!(s.state("web"), State::Stopping);
    assert_eq!(s.state("other"), State::Running);
    s.exit("side", ExitStatus::Signal(15));
    assert_eq!(s.state("side"), State::Inactive);
    assert_eq!(s.reason("side"), "stopped: dependency db failed");
}

#[test]
fn die_if_failed_stops_the_listing_service() {
    let mut w = svc("watcher");
    w.deps.die_if_failed = vec!["a".into()];
    let mut s = Sim::new(vec![svc("a"), w, svc("other")]).boot();
    s.code("a", 1);
    assert_eq!(s.signals("watcher").len(), 1);
    s.exit("watcher", ExitStatus::Signal(15));
    assert_eq!(s.reason("watcher"), "stopped: a failed (die-if-failed)");
    assert_eq!(s.state("other"), State::Running);
}

// ---- operator stop / restart ---------------------------------------------------------------

#[test]
fn stop_of_a_dependency_stops_its_dependents_first_and_start_brings_both_back() {
    let mut s = Sim::new(vec![svc("db"), requires(svc("web"), &["db"])]).boot();
    let db = s.id("db");
    s.event(Event::Stop { svc: db });
    assert_eq!(s.state("web"), State::Stopping);
    assert!(s.signals("db").is_empty(), "db waits for web to stop");
    s.exit("web", ExitStatus::Signal(15));
    assert_eq!(s.signals("db").len(), 1);
    assert_eq!(s.state("web"), State::Blocked);
    assert_eq!(s.reason("web"), "dependency db is stopped");
    s.exit("db", ExitStatus::Signal(15));
    assert_eq!(s.state("db"), State::Inactive);
    // Not everything is gone: web is stuck but nothing runs, so init shuts down (exit 0).
    assert_eq!(s.exits(), Vec::<i32>::new());
    assert!(s.sup.is_shutting_down());
}

#[test]
fn stop_then_start_of_a_dependency_restarts_the_dependent() {
    let mut s = Sim::new(vec![svc("db"), requires(svc("web"), &["db"]), svc("keep")]).boot();
    let db = s.id("db");
    s.event(Event::Stop { svc: db });
    s.exit("web", ExitStatus::Signal(15));
    s.exit("db", ExitStatus::Signal(15));
    s.event(Event::Start { svc: db });
    assert_eq!(s.state("db"), State::Running);
    assert_eq!(s.state("web"), State::Running);
}

#[test]
fn restart_stops_and_starts_again_with_its_requires_dependents() {
    let mut s = Sim::new(vec![svc("db"), requires(svc("web"), &["db"])]).boot();
    let db = s.id("db");
    s.event(Event::Restart { svc: db });
    assert_eq!(s.state("web"), State::Stopping);
    s.exit("web", ExitStatus::Signal(15));
    assert_eq!(s.state("web"), State::Blocked);
    assert_eq!(s.reason("web"), "waiting for db");
    s.exit("db", ExitStatus::Signal(15));
    assert_eq!(s.state("db"), State::Running);
    assert_eq!(s.state("web"), State::Running);
    assert_eq!(s.spawns("db").len(), 2);
    assert_eq!(s.spawns("web").len(), 2);
    assert!(s.exits().is_empty());
}

#[test]
fn stop_sends_the_service_signal_then_sigkill_after_wait() {
    let mut a = svc("a");
    a.termination.signal = 2;
    a.termination.wait = Duration::from_millis(1500);
    let mut s = Sim::new(vec![a, svc("keep")]).boot();
    let a = s.id("a");
    s.event(Event::Stop { svc: a });
    assert!(s.fire_next());
    assert_eq!(s.signals("a"), vec![(Duration::ZERO, 2), (Duration::from_millis(1500), 9)]);
    s.exit("a", ExitStatus::Signal(9));
    assert_eq!(s.state("a"), State::Inactive);
    assert_eq!(s.sup.next_deadline(), None);
}

// ---- shutdown ------------------------------------------------------------------------------

#[test]
fn ordered_shutdown_reverse_dependency_order_parallel_own_signals() {
    let mut web = requires(svc("web"), &["db"]);
    web.termination.signal = 2;
    let mut db = svc("db");
    db.termination.wait = Duration::from_secs(3);
    let mut s = Sim::new(vec![db, svc("side"), web]).boot();
    s.event(Event::Shutdown { code: None });
    assert_eq!(s.signals("web"), vec![(Duration::ZERO, 2)]);
    assert_eq!(s.signals("side"), vec![(Duration::ZERO, 15)], "independent: in parallel");
    assert!(s.signals("db").is_empty());
    s.advance(Duration::from_millis(200));
    s.exit("web", ExitStatus::Signal(2));
    assert_eq!(s.signals("db"), vec![(Duration::from_millis(200), 15)]);
    s.exit("side", ExitStatus::Code(0));
    assert!(s.orphan_signals().is_empty());
    assert!(s.fire_next()); // db ignores TERM: SIGKILL after its wait
    assert_eq!(s.signals("db").last(), Some(&(Duration::from_millis(3200), 9)));
    s.exit("db", ExitStatus::Signal(9));
    assert_eq!(s.orphan_signals(), [15]);
    assert!(s.sup.waiting_for_orphans());
    s.event(Event::NoChildren);
    assert_eq!(s.orphan_signals(), [15, 9]);
    assert_eq!(s.exits(), [0], "stop signals and SIGKILL during shutdown are clean");
    assert_eq!(s.sup.next_deadline(), None);
    // Nothing more after Exit.
    s.event(Event::Shutdown { code: None });
    s.event(Event::NoChildren);
    assert_eq!(s.exits(), [0]);
}

#[test]
fn orphans_get_a_grace_then_sigkill_then_exit() {
    let mut s = Sim::new(vec![svc("a")]).boot();
    s.event(Event::Shutdown { code: None });
    s.exit("a", ExitStatus::Signal(15));
    assert_eq!(s.orphan_signals(), [15]);
    assert!(s.fire_next()); // 1 s grace
    assert_eq!(s.at(), Duration::from_secs(1));
    assert_eq!(s.orphan_signals(), [15, 9]);
    assert!(s.exits().is_empty());
    s.event(Event::NoChildren);
    assert_eq!(s.exits(), [0]);
}

#[test]
fn a_process_stuck_in_d_state_does_not_hold_the_exit_forever() {
    let mut s = Sim::new(vec![svc("a")]).boot();
    s.event(Event::Shutdown { code: None });
    s.exit("a", ExitStatus::Signal(15));
    assert!(s.fire_next());
    assert!(s.fire_next()); // no NoChildren ever: exit after the reap grace
    assert_eq!(s.exits(), [0]);
}

#[test]
fn shutdown_honours_shutdown_after() {
    let mut b = svc("b");
    b.deps.shutdown_after = vec!["a".into()];
    let mut s = Sim::new(vec![svc("a"), b]).boot();
    s.event(Event::Shutdown { code: None });
    assert_eq!(s.signals("a").len(), 1);
    assert!(s.signals("b").is_empty());
    s.exit("a", ExitStatus::Signal(15));
    assert_eq!(s.signals("b").len(), 1);
}

#[test]
fn stop_timeout_clips_the_whole_shutdown() {
    let mut a = svc("a");
    a.termination.wait = Duration::from_secs(60);
    let mut s = Sim::new(vec![a, requires(svc("b"), &["a"])]).boot();
    s.sup.set_stop_timeout(Duration::from_secs(3));
    s.event(Event::Shutdown { code: None });
    assert!(s.fire_next());
    assert_eq!(s.at(), Duration::from_secs(3));
    assert_eq!(s.signals("b"), vec![(Duration::ZERO, 15), (Duration::from_secs(3), 9)]);
    assert_eq!(s.signals("a"), vec![(Duration::from_secs(3), 9)]);
    assert_eq!(s.orphan_signals(), [9]);
    assert_eq!(s.finish_shutdown(false), 0);
}

#[test]
fn second_shutdown_request_kills_everything_at_once() {
    let mut s = Sim::new(vec![svc("a"), requires(svc("b"), &["a"])]).boot();
    s.event(Event::Shutdown { code: None });
    s.event(Event::Shutdown { code: None });
    assert_eq!(s.signals("a"), vec![(Duration::ZERO, 9)]);
    assert_eq!(s.signals("b"), vec![(Duration::ZERO, 15), (Duration::ZERO, 9)]);
}

#[test]
fn blocked_and_waiting_services_go_inactive_on_shutdown() {
    let crash = restarting(svc("crash"), RestartStrategy::Always, 5000, 10_000, 0);
    let mut delayed = svc("delayed");
    delayed.start_delay = Duration::from_secs(10);
    let mut s = Sim::new(vec![crash, delayed]).boot();
    s.code("crash", 1);
    s.event(Event::Shutdown { code: None });
    assert_eq!(s.state("crash"), State::Inactive);
    assert_eq!(s.state("delayed"), State::Inactive);
    assert_eq!(s.orphan_signals(), [15]);
    s.event(Event::NoChildren);
    assert_eq!(s.exits(), [0]);
    assert!(s.spawns("delayed").is_empty());
}

#[test]
fn shutdown_exit_codes() {
    // Given code wins.
    let mut s = Sim::new(vec![svc("a")]).boot();
    s.event(Event::Shutdown { code: Some(7) });
    assert_eq!(s.finish_shutdown(true), 7);
    // A service failed for good earlier: 1.
    let mut s = Sim::new(vec![svc("a"), svc("b")]).boot();
    s.code("a", 4);
    s.event(Event::Shutdown { code: None });
    assert_eq!(s.finish_shutdown(true), 1);
    // Everything ended as configured, even a service that exits non-zero on SIGTERM: 0.
    let mut s = Sim::new(vec![svc("a")]).boot();
    s.event(Event::Shutdown { code: None });
    s.code("a", 143);
    assert_eq!(s.finish_shutdown(true), 0);
    // Ran out of work with only clean exits: 0.
    let mut s = Sim::new(vec![oneshot(svc("a")), oneshot(svc("b"))]).boot();
    s.code("a", 0);
    assert!(s.exits().is_empty() && !s.sup.is_shutting_down());
    s.code("b", 0);
    assert!(s.sup.is_shutting_down());
    assert_eq!(s.finish_shutdown(true), 0);
}

#[test]
fn tini_style_main_exit_then_shutdown_with_its_code() {
    // The reactor sends Exited then Shutdown{Some(code)}: the automatic shutdown that the exit
    // began takes the code; it is not a "second request".
    let mut s = Sim::new(vec![svc("main")]).boot();
    s.code("main", 5);
    s.event(Event::Shutdown { code: Some(5) });
    assert_eq!(s.finish_shutdown(true), 5);
}

#[test]
fn system_mode_never_shuts_down_by_itself() {
    let mut specs = vec![oneshot(svc("a"))];
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    let t0 = Instant::now();
    let mut sup = Supervisor::new(Config { services: specs }, Mode::System, t0);
    sup.boot(t0);
    let acts = sup.take_actions();
    assert_eq!(acts, [Action::Spawn(0)]);
    sup.handle(Event::Spawned { svc: 0, pid: 5 }, t0);
    sup.handle(Event::Exited { pid: 5, status: ExitStatus::Code(0) }, t0);
    assert!(!sup.is_shutting_down());
    assert!(sup.take_actions().is_empty());
}

#[test]
fn start_and_restart_are_refused_during_shutdown() {
    let mut s = Sim::new(vec![svc("a"), svc("b")]).boot();
    s.event(Event::Shutdown { code: None });
    let b = s.id("b");
    s.exit("b", ExitStatus::Signal(15));
    s.event(Event::Start { svc: b });
    s.event(Event::Restart { svc: b });
    assert_eq!(s.spawns("b").len(), 1);
}

// ---- scale ---------------------------------------------------------------------------------

#[test]
fn a_thousand_services_in_a_chain_start_and_stop() {
    let n = 1000;
    let mut specs = vec![svc("s0000")];
    for i in 1..n {
        specs.push(requires(svc(&format!("s{i:04}")), &[&format!("s{:04}", i - 1)]));
    }
    let start = std::time::Instant::now();
    let mut s = Sim::new(specs).boot();
    assert!((0..n).all(|i| s.sup.status(i).state == State::Running));
    s.event(Event::Shutdown { code: None });
    assert_eq!(s.finish_shutdown(true), 0);
    // Reverse order: the last of the chain was signalled first.
    let first_signal = s.log.iter().find_map(|(_, a)| match a {
        Action::SignalGroup { svc, .. } => Some(*svc),
        _ => None,
    });
    assert_eq!(first_signal, Some(n - 1));
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
}

#[test]
fn a_thousand_independent_services_start_and_stop_in_parallel() {
    let specs: Vec<ServiceSpec> = (0..1000).map(|i| svc(&format!("s{i:04}"))).collect();
    let mut s = Sim::new(specs).boot();
    s.event(Event::Shutdown { code: None });
    let signalled = s.log.iter().filter(|(_, a)| matches!(a, Action::SignalGroup { .. })).count();
    assert_eq!(signalled, 1000);
    assert_eq!(s.finish_shutdown(true), 0);
}

#[test]
fn unused_ms_const_is_a_millisecond() {
    assert_eq!(MS.as_millis(), 1);
}

// ---- reload --------------------------------------------------------------------------------

fn changed_command(mut s: ServiceSpec) -> ServiceSpec {
    s.command.push("--new".into());
    s
}

/// `SignalGroup` actions for `name`, as (pid, signal).
fn group_signals(s: &Sim, name: &str) -> Vec<(i32, i32)> {
    s.actions_of(name)
        .iter()
        .filter_map(|a| match a {
            Action::SignalGroup { pid, signal, .. } => Some((*pid, *signal)),
            _ => None,
        })
        .collect()
}

fn spawn_count(s: &Sim, name: &str) -> usize {
    s.actions_of(name).iter().filter(|a| matches!(a, Action::Spawn(_))).count()
}

#[test]
fn reload_leaves_unchanged_services_untouched() {
    let mut s =
        Sim::new(vec![svc("a"), svc("b"), restarting(svc("c"), RestartStrategy::OnFailure, 100, 100, 0)]);
    s = s.boot();
    s.code("c", 1); // c waits on its backoff: that timer must survive too
    let (pa, pb) = (s.pid("a"), s.pid("b"));
    let before = (s.sup.status(s.id("a")), s.sup.status(s.id("b")), s.sup.status(s.id("c")));
    let deadline = s.sup.next_deadline();
    let acted = s.named.len();
    let r = s.reload(vec![svc("a"), svc("b"), restarting(svc("c"), RestartStrategy::OnFailure, 100, 100, 0)]);
    assert_eq!(r, ReloadSummary { unchanged: 3, ..ReloadSummary::default() });
    assert!(r.is_empty());
    assert_eq!(s.named.len(), acted, "a reload that changes nothing acts");
    assert_eq!((s.sup.status(s.id("a")), s.sup.status(s.id("b")), s.sup.status(s.id("c"))), before);
    assert_eq!(s.sup.next_deadline(), deadline);

    let r = s.reload(vec![
        svc("a"),
        changed_command(svc("b")),
        restarting(svc("c"), RestartStrategy::OnFailure, 100, 100, 0),
    ]);
    assert_eq!((r.changed, r.unchanged), (vec!["b".to_string()], 2));
    assert_eq!(s.pid("a"), pa);
    assert_eq!(s.actions_of("a").len(), 1, "only a's first spawn");
    assert_eq!(group_signals(&s, "b"), vec![(pb, 15)]);
    s.event(Event::Exited { pid: pb, status: ExitStatus::Signal(15) });
    assert_ne!(s.pid("b"), pb);
    // c's backoff still fires on time and restarts it.
    s.advance(100 * MS);
    assert_eq!(s.state("c"), State::Running);
    assert_eq!(s.sup.status(s.id("c")).restarts, 1);
}

#[test]
fn changed_service_is_stopped_with_its_old_signal_then_started_with_the_new_spec() {
    let mut web = svc("web");
    web.termination.signal = 2;
    web.termination.wait = Duration::from_secs(3);
    let mut s = Sim::new(vec![web.clone(), svc("x")]).boot();
    let old = s.pid("web");
    let mut new = changed_command(web);
    new.termination.signal = 3;
    let r = s.reload(vec![new.clone(), svc("x")]);
    assert_eq!(r.changed, vec!["web".to_string()]);
    // The old process gets the signal it was started with, and no spawn yet.
    assert_eq!(group_signals(&s, "web"), vec![(old, 2)]);
    assert_eq!(spawn_count(&s, "web"), 1);
    assert_eq!(s.state("web"), State::Stopping);
    // It ignores it: SIGKILL after its old wait (3 s).
    s.advance(Duration::from_secs(2));
    assert_eq!(group_signals(&s, "web").len(), 1);
    s.advance(Duration::from_secs(1));
    assert_eq!(group_signals(&s, "web"), vec![(old, 2), (old, 9)]);
    s.event(Event::Exited { pid: old, status: ExitStatus::Signal(9) });
    assert_eq!(spawn_count(&s, "web"), 2);
    let id = s.id("web");
    assert_eq!(s.sup.config().services[id].command, new.command);
    assert_eq!(s.state("web"), State::Running);
    assert_ne!(s.pid("web"), old);
    // The new process is stopped with the new signal.
    s.event(Event::Stop { svc: id });
    assert_eq!(group_signals(&s, "web").last().map(|x| x.1), Some(3));
}

#[test]
fn removed_service_is_stopped_its_late_exit_handled_then_it_is_gone() {
    // "aaa" sorts first: removing it shifts web's index.
    let mut aaa = svc("aaa");
    aaa.termination.wait = Duration::from_secs(2);
    let mut s = Sim::with_mode(vec![aaa, svc("web")], Mode::System).boot();
    let (pa, pw) = (s.pid("aaa"), s.pid("web"));
    let r = s.reload(vec![svc("web")]);
    assert_eq!((r.removed, r.unchanged), (vec!["aaa".to_string()], 1));
    assert_eq!(s.sup.find("aaa"), None);
    assert_eq!(s.sup.len(), 1);
    assert_eq!(s.sup.svc_names().collect::<Vec<_>>(), vec!["web"]);
    // A retiring pid maps past the live services, under its old name.
    let retiring = s.sup.service_of_pid(pa).unwrap();
    assert!(retiring >= s.sup.len());
    assert_eq!(s.sup.name(retiring), "aaa");
    assert_eq!(s.sup.status(retiring).reason.as_deref(), Some("no such service"));
    // Requests for it are ignored: it goes away all the same.
    s.event(Event::Start { svc: retiring });
    s.event(Event::Restart { svc: retiring });
    assert_eq!(s.sup.svcs[retiring].want, Want::Down);
    assert_eq!(s.sup.service_of_pid(pw), Some(s.id("web")));
    assert_eq!(group_signals(&s, "aaa"), vec![(pa, 15)]);
    assert!(s.sup.summary().contains("aaa (removed) is stopping"), "{}", s.sup.summary());
    // Its group still gets SIGKILL after its wait.
    s.advance(Duration::from_secs(2));
    assert_eq!(group_signals(&s, "aaa"), vec![(pa, 15), (pa, 9)]);
    // Its late exit disturbs nobody, and then it is gone.
    s.event(Event::Exited { pid: pa, status: ExitStatus::Signal(9) });
    assert_eq!((s.state("web"), s.pid("web")), (State::Running, pw));
    assert_eq!(s.sup.svcs.len(), 1);
    assert!(!s.sup.summary().contains("aaa"));
    assert_eq!(s.sup.next_deadline(), None);
    assert!(group_signals(&s, "web").is_empty());
    // web's exit still reaches web.
    s.code("web", 0);
    assert_eq!(s.state("web"), State::Exited);
}

#[test]
fn removed_service_without_a_process_is_forgotten_at_once() {
    let mut m = svc("m");
    m.autostart = false;
    let mut s = Sim::with_mode(vec![m, svc("web")], Mode::System).boot();
    let r = s.reload(vec![svc("web")]);
    assert_eq!(r.removed, vec!["m".to_string()]);
    assert_eq!(s.sup.svcs.len(), 1);
    assert!(s.actions_of("m").is_empty());
}

#[test]
fn new_services_start_when_autostart() {
    let mut s = Sim::with_mode(vec![svc("web")], Mode::System).boot();
    let pw = s.pid("web");
    let mut manual = svc("manual");
    manual.autostart = false;
    let r = s.reload(vec![svc("aaa"), manual, svc("web")]);
    assert_eq!(r.added, vec!["aaa".to_string(), "manual".to_string()]);
    assert_eq!(s.state("aaa"), State::Running);
    assert_eq!(s.state("manual"), State::Inactive);
    assert_eq!((s.pid("web"), s.state("web")), (pw, State::Running));
    // web's index moved from 0 to 2: its pid still maps to it, and its exit reaches it.
    assert_eq!(s.id("web"), 2);
    assert_eq!(s.sup.name(s.sup.service_of_pid(pw).unwrap()), "web");
    s.code("web", 1);
    assert_eq!(s.state("web"), State::Failed);
    assert_eq!(s.state("aaa"), State::Running);
}

#[test]
fn new_service_that_requires_a_running_one_starts_and_leaves_it_alone() {
    let mut s = Sim::with_mode(vec![svc("db")], Mode::System).boot();
    let pd = s.pid("db");
    let mut api = requires(svc("api"), &["db"]);
    api.deps.wants = vec!["cache".into()];
    let mut cache = svc("cache");
    cache.autostart = false;
    let r = s.reload(vec![api, cache, svc("db")]);
    assert_eq!(r.added.len(), 2);
    assert_eq!(s.state("api"), State::Running);
    assert_eq!(s.state("cache"), State::Running, "wants pulls it in");
    assert_eq!(s.pid("db"), pd);
    assert_eq!(s.actions_of("db").len(), 1);
}

#[test]
fn new_service_requiring_a_stopped_one_pulls_it_in_first() {
    let mut db = svc("db");
    db.autostart = false;
    db.ready = Ready::Notify;
    let mut s = Sim::with_mode(vec![db.clone()], Mode::System).boot();
    assert_eq!(s.state("db"), State::Inactive);
    s.reload(vec![requires(svc("api"), &["db"]), db]);
    assert_eq!((s.state("db"), s.state("api")), (State::Starting, State::Blocked));
    s.event(Event::Ready { svc: s.id("db") });
    assert_eq!(s.state("api"), State::Running);
}

/// The loader refuses a set where a service requires one that is not in it, and the reactor
/// rejects such a reload whole; the supervisor still copes when handed one.
#[test]
fn removed_dependency_stops_its_requires_dependent_first_and_blocks_it() {
    let mut s = Sim::with_mode(vec![svc("db"), requires(svc("web"), &["db"])], Mode::System).boot();
    let (pd, pw) = (s.pid("db"), s.pid("web"));
    s.reload(vec![requires(svc("web"), &["db"])]);
    // web is stopped first; db waits for it.
    assert_eq!(group_signals(&s, "web"), vec![(pw, 15)]);
    assert!(group_signals(&s, "db").is_empty());
    s.event(Event::Exited { pid: pw, status: ExitStatus::Signal(15) });
    assert_eq!(group_signals(&s, "db"), vec![(pd, 15)]);
    assert_eq!(s.state("web"), State::Blocked);
    assert_eq!(s.reason("web"), "dependency db was removed");
    s.event(Event::Exited { pid: pd, status: ExitStatus::Signal(15) });
    assert_eq!(s.sup.svcs.len(), 1);
    assert_eq!((s.state("web"), s.reason("web")), (State::Blocked, "dependency db was removed".to_string()));
    assert!(s.sup.why(s.id("web")).contains("dependency db was removed"));
    assert_eq!(spawn_count(&s, "web"), 1, "web must not start without db");
    // db back: web starts again by itself once db is ready.
    let r = s.reload(vec![svc("db"), requires(svc("web"), &["db"])]);
    assert_eq!(r.added, vec!["db".to_string()]);
    assert_eq!((s.state("db"), s.state("web")), (State::Running, State::Running));
}

#[test]
fn removing_a_service_and_its_dependent_stops_them_in_order() {
    let mut s = Sim::with_mode(vec![svc("db"), requires(svc("web"), &["db"]), svc("x")], Mode::System).boot();
    let (pd, pw) = (s.pid("db"), s.pid("web"));
    let r = s.reload(vec![svc("x")]);
    assert_eq!(r.removed, vec!["db".to_string(), "web".to_string()]);
    assert_eq!(group_signals(&s, "web"), vec![(pw, 15)]);
    assert!(group_signals(&s, "db").is_empty(), "db before its dependent web");
    s.event(Event::Exited { pid: pw, status: ExitStatus::Code(0) });
    assert_eq!(group_signals(&s, "db"), vec![(pd, 15)]);
    assert_eq!(s.sup.svcs.len(), 3, "db still stopping");
    s.event(Event::Exited { pid: pd, status: ExitStatus::Code(0) });
    assert_eq!(s.sup.svcs.len(), 1);
}

#[test]
fn changed_dependency_restarts_its_requires_dependents_with_it() {
    let mut s = Sim::with_mode(vec![svc("db"), requires(svc("web"), &["db"]), svc("x")], Mode::System).boot();
    let (pd, pw, px) = (s.pid("db"), s.pid("web"), s.pid("x"));
    s.reload(vec![changed_command(svc("db")), requires(svc("web"), &["db"]), svc("x")]);
    assert_eq!(group_signals(&s, "web"), vec![(pw, 15)]);
    assert!(group_signals(&s, "db").is_empty());
    s.event(Event::Exited { pid: pw, status: ExitStatus::Signal(15) });
    s.event(Event::Exited { pid: pd, status: ExitStatus::Signal(15) });
    assert_eq!((s.state("db"), s.state("web")), (State::Running, State::Running));
    assert_eq!((spawn_count(&s, "db"), spawn_count(&s, "web")), (2, 2));
    assert_eq!(s.pid("x"), px);
}

#[test]
fn changed_service_that_dropped_a_requirement_still_stops_before_it() {
    // web's old process requires db; the new web does not, and db is removed.
    let mut s = Sim::with_mode(vec![svc("db"), requires(svc("web"), &["db"])], Mode::System).boot();
    let (pd, pw) = (s.pid("db"), s.pid("web"));
    s.reload(vec![svc("web")]);
    assert_eq!(group_signals(&s, "web"), vec![(pw, 15)]);
    assert!(group_signals(&s, "db").is_empty());
    s.event(Event::Exited { pid: pw, status: ExitStatus::Signal(15) });
    assert_eq!(s.state("web"), State::Running, "the new web needs nothing");
    assert_eq!(group_signals(&s, "db"), vec![(pd, 15)]);
}

#[test]
fn changed_service_pulls_in_what_its_new_spec_names_not_its_old_one() {
    let mut old_dep = svc("old");
    old_dep.autostart = false;
    let mut new_dep = svc("new");
    new_dep.autostart = false;
    let mut s = Sim::with_mode(vec![new_dep.clone(), old_dep.clone(), svc("web")], Mode::System).boot();
    s.event(Event::Stop { svc: s.id("web") });
    s.exit("web", ExitStatus::Signal(15));
    s.event(Event::Start { svc: s.id("web") });
    let mut web = svc("web");
    web.deps.wants = vec!["old".into()];
    s.reload(vec![new_dep.clone(), old_dep.clone(), web]);
    s.exit("web", ExitStatus::Signal(15));
    assert_eq!((s.state("old"), s.state("web")), (State::Running, State::Running));
    s.event(Event::Stop { svc: s.id("old") });
    s.exit("old", ExitStatus::Signal(15));
    let mut web = svc("web");
    web.deps.wants = vec!["new".into()];
    s.reload(vec![new_dep, old_dep, web]);
    assert_eq!(s.state("new"), State::Running);
    assert_eq!(s.state("old"), State::Inactive, "the old process's wants pull nothing in");
}

#[test]
fn changed_service_that_failed_or_waits_on_a_backoff_runs_the_new_spec_now() {
    let mut a = svc("a");
    a.restart.attempts = 1;
    let b = restarting(svc("b"), RestartStrategy::OnFailure, 10_000, 10_000, 0);
    let mut s = Sim::with_mode(vec![a.clone(), b.clone()], Mode::System).boot();
    s.code("a", 1);
    s.code("b", 1);
    assert_eq!(s.state("a"), State::Failed);
    assert!(s.reason("b").contains("restarting in"));
    s.reload(vec![changed_command(a), changed_command(b)]);
    assert_eq!((s.state("a"), s.state("b")), (State::Running, State::Running));
    assert_eq!(s.at(), Duration::ZERO);
}

#[test]
fn changed_service_that_is_stopped_stays_stopped_unless_newly_autostart() {
    let mut s = Sim::with_mode(vec![svc("a"), svc("b")], Mode::System).boot();
    s.event(Event::Stop { svc: s.id("a") });
    s.exit("a", ExitStatus::Signal(15));
    let mut b = svc("b");
    b.autostart = false;
    s.reload(vec![changed_command(svc("a")), b.clone()]);
    assert_eq!(s.state("a"), State::Inactive);
    s.exit("b", ExitStatus::Signal(15));
    assert_eq!(s.state("b"), State::Running, "b was wanted up: restarted");
    s.event(Event::Stop { svc: s.id("b") });
    s.exit("b", ExitStatus::Signal(15));
    let mut b2 = changed_command(b);
    b2.autostart = true;
    s.reload(vec![changed_command(svc("a")), b2]);
    assert_eq!(s.state("b"), State::Running, "autostart now: started");
}

#[test]
fn service_back_while_its_removed_predecessor_stops_starts_after_it_exited() {
    let mut s = Sim::with_mode(vec![svc("db"), svc("x")], Mode::System).boot();
    let pd = s.pid("db");
    s.reload(vec![svc("x")]);
    let r = s.reload(vec![changed_command(svc("db")), svc("x")]);
    assert_eq!(r.added, vec!["db".to_string()]);
    assert_eq!(s.sup.svcs.len(), 2, "the retiring entry is the new db's");
    assert_eq!((s.state("db"), s.sup.service_of_pid(pd)), (State::Stopping, Some(s.id("db"))));
    assert_eq!(s.sup.len(), 2);
    assert_eq!(spawn_count(&s, "db"), 1);
    s.event(Event::Exited { pid: pd, status: ExitStatus::Signal(15) });
    assert_eq!(s.state("db"), State::Running);
    assert_eq!(spawn_count(&s, "db"), 2);
    assert_eq!(s.sup.config().services[s.id("db")].command.len(), 2);
}

#[test]
fn reload_of_a_thousand_services_in_a_chain_changes_them_all() {
    let names: Vec<String> = (0..1000).map(|i| format!("s{i:04}")).collect();
    let specs = |extra: bool| -> Vec<ServiceSpec> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut s = svc(n);
                if i > 0 {
                    s.deps.requires = vec![names[i - 1].clone()];
                }
                if extra {
                    s.command.push("--v2".into());
                }
                s
            })
            .collect()
    };
    let mut s = Sim::with_mode(specs(false), Mode::System).boot();
    let r = s.reload(specs(true));
    assert_eq!(r.changed.len(), 1000);
    // Most dependent first: answer each stop signal with an exit until everything runs again.
    for _ in 0..1000 {
        let stopping: Vec<i32> =
            s.sup.svcs.iter().filter(|x| x.state == State::Stopping).filter_map(|x| x.pid).collect();
        assert_eq!(stopping.len(), 1, "one at a time, in reverse order");
        s.event(Event::Exited { pid: stopping[0], status: ExitStatus::Signal(15) });
    }
    assert!(s.sup.svcs.iter().all(|x| x.state == State::Running));
    assert!(s.sup.config().services.iter().all(|x| x.command.len() == 2));
    assert_eq!(s.log.iter().filter(|(_, a)| matches!(a, Action::Spawn(_))).count(), 2000);
}

#[test]
fn reload_during_shutdown_is_refused() {
    let mut s = Sim::new(vec![svc("a")]).boot();
    s.event(Event::Shutdown { code: None });
    let r = s.reload(vec![svc("a"), svc("b")]);
    assert_eq!(r, ReloadSummary::default());
    assert_eq!(s.sup.len(), 1);
    assert_eq!(s.finish_shutdown(true), 0);
}

#[test]
fn removing_every_service_in_a_container_shuts_down_once_they_stopped() {
    let mut s = Sim::new(vec![svc("a")]).boot();
    let pa = s.pid("a");
    s.reload(vec![]);
    assert!(!s.sup.is_shutting_down());
    s.event(Event::Exited { pid: pa, status: ExitStatus::Signal(15) });
    assert!(s.sup.is_shutting_down());
    assert_eq!(s.finish_shutdown(true), 0);
}

#[test]
fn shutdown_with_a_retiring_service_stops_it_too() {
    let mut s = Sim::new(vec![svc("a"), svc("b")]).boot();
    let pa = s.pid("a");
    s.reload(vec![svc("b")]);
    s.event(Event::Shutdown { code: None });
    assert_eq!(s.finish_shutdown(false), 0);
    assert!(group_signals(&s, "a").contains(&(pa, 9)));
}

#[test]
fn pending_spawn_of_a_changed_service_is_cancelled_and_redone_with_the_new_spec() {
    let mut m = svc("m");
    m.autostart = false;
    let mut s = Sim::with_mode(vec![m.clone(), svc("x")], Mode::System).boot();
    // The operator's start is handled, but its Spawn is not taken yet when the reload comes.
    s.sup.handle(Event::Start { svc: s.id("m") }, s.now);
    let r = s.reload(vec![svc("aaa"), changed_command(m), svc("x")]);
    assert_eq!(r.changed, vec!["m".to_string()]);
    assert_eq!(spawn_count(&s, "m"), 1);
    assert_eq!(s.state("m"), State::Running);
    // x at boot, then aaa and the new m: the cancelled spawn never reached the reactor.
    assert_eq!(s.log.iter().filter(|(_, a)| matches!(a, Action::Spawn(_))).count(), 3);
}

#[test]
fn restart_of_a_running_target_starts_it_again_once() {
    let mut t = requires(svc("t"), &["a"]);
    t.kind = Kind::Target;
    t.command = vec![];
    let mut s = Sim::with_mode(vec![svc("a"), t], Mode::System).boot();
    assert_eq!(s.state("t"), State::Running);
    s.event(Event::Restart { svc: s.id("t") });
    assert_eq!(s.state("t"), State::Running);
    assert!(!s.sup.svcs[s.id("t")].restart_requested);
}

// ---- exhaustive ----------------------------------------------------------------------------

impl Sim {
    /// What the fake reactor checks about each action when it takes it.
    fn check_action(&self, a: &Action) {
        let sup = &self.sup;
        match *a {
            Action::Spawn(x) => {
                assert!(!sup.is_shutting_down(), "Spawn({x}) during shutdown");
                assert!(x < sup.len(), "Spawn({x}) of a removed service");
                assert!(sup.running_spec[x].is_none(), "Spawn({x}) with its old spec");
                let s = &sup.svcs[x];
                assert_eq!((s.state, s.pid), (State::Starting, None), "Spawn({x}) of {s:?}");
                for &(b, e) in &sup.graph.deps[x] {
                    match e {
                        Edge::Requires | Edge::StartAfter => {
                            assert!(sup.ready(b, e), "Spawn({x}) while its {e:?} dep {b} is not ready")
                        }
                        Edge::After => assert!(
                            sup.ready(b, e) || !sup.coming(b),
                            "Spawn({x}) while its after dep {b} is on its way"
                        ),
                        _ => {}
                    }
                }
            }
            Action::SignalGroup { svc, pid, signal } => {
                assert_eq!(sup.svcs[svc].pid, Some(pid), "signal to a pid that is not {svc}'s");
                // A stop signal goes out only once what must stop first has stopped.
                let forced = sup.shutdown.as_ref().is_some_and(|sd| sd.forced);
                // (An unhealthy service killed for a restart is not a stop: its dependents stay.)
                if signal != 9 && !forced && sup.svcs[svc].must_stop {
                    for &(d, e) in &sup.graph.dependents[svc] {
                        let first = e == Edge::Requires
                            || (sup.is_shutting_down() && matches!(e, Edge::StartAfter | Edge::After));
                        assert!(
                            !(first && sup.svcs[d].is_active()),
                            "{svc} signalled while its dependent {d} ({e:?}) is {:?}",
                            sup.svcs[d].state
                        );
                    }
                }
            }
            Action::SignalOrphans { .. } => assert!(sup.is_shutting_down()),
            Action::Exit(_) => assert!(self.exits().is_empty(), "a second Exit"),
        }
    }

    /// Invariants that hold after every event.
    fn check(&self) {
        let sup = &self.sup;
        let shutting = sup.is_shutting_down();
        let mut seen = std::collections::HashSet::new();
        for (a, s) in sup.svcs.iter().enumerate() {
            let spec = sup.spec(a).unwrap();
            if a >= sup.len() {
                assert_eq!(s.want, Want::Down, "retiring {a} wanted up");
                assert!(sup.running_spec[a].is_some(), "retiring {a} without its spec");
                assert!(sup.find(&spec.name).is_none(), "retiring {a} also live");
            } else if sup.running_spec[a].is_some() {
                assert!(s.pid.is_some(), "{a} keeps its old spec without a process");
            }
            if let Some(p) = s.pid {
                assert!(seen.insert(p), "pid {p} held twice");
                assert_eq!(sup.pids.get(&p), Some(&a), "pid map out of date for {a}");
                assert!(s.is_active(), "{a} has pid {p} in state {:?}", s.state);
            }
            match s.state {
                State::Starting | State::Stopping => {
                    assert!(s.pid.is_some(), "{a} {:?} without pid", s.state)
                }
                State::Running => {
                    assert!(s.pid.is_some() || spec.kind == Kind::Target, "{a} running without pid")
                }
                State::Blocked | State::Failed => {
                    assert!(s.reason.is_some(), "{a} {:?} without a reason", s.state)
                }
                State::Inactive | State::Exited => {}
            }
            if !s.is_active() {
                assert!(!s.must_stop, "{a} must_stop without a process");
            }
            if let Some((t, _)) = s.timer {
                assert!(sup.timers.contains(&(t, a)), "{a}'s timer not indexed");
                assert!(sup.next_deadline().is_some_and(|d| d <= t), "next_deadline misses {a}'s timer");
            }
            if matches!(s.state, State::Starting | State::Running) && !shutting && !s.must_stop {
                for &(b, e) in &sup.graph.deps[a] {
                    if e == Edge::Requires {
                        assert!(
                            sup.ready(b, e) || sup.coming(b),
                            "{a} {:?} while its requires dep {b} is {:?} and not coming back",
                            s.state,
                            sup.svcs[b].state
                        );
                    }
                }
            }
            if s.state == State::Blocked && !s.stuck && !shutting {
                let delay = matches!(s.timer, Some((_, crate::service::Timer::StartDelay)));
                // Independent of `coming`: what it waits on will move by itself.
                let moves = |b: Svc| {
                    let t = &sup.svcs[b];
                    t.is_active()
                        || t.timer.is_some()
                        || (t.state == State::Blocked && !t.stuck)
                        || (t.state == State::Inactive && t.want == Want::Up)
                };
                let on = s.blocked_on.map(moves);
                assert!(delay || on == Some(true), "{a} waits on nothing: {s:?}");
            }
        }
        // Nobody waits in silence: a service waiting (not stuck) implies something still moves.
        let waiting = sup.svcs.iter().any(|s| s.state == State::Blocked && !s.stuck);
        let moving = sup.svcs.iter().any(|s| s.is_active() || s.timer.is_some());
        assert!(!waiting || moving || shutting, "a service waits but nothing can wake it");
        for &(t, a) in &sup.timers {
            assert_eq!(sup.svcs[a].timer.map(|x| x.0), Some(t), "stale timer entry for {a}");
        }
        assert_eq!(sup.pids.len(), seen.len(), "pid map has extra entries");
        let n = sup.svcs.len();
        assert_eq!((sup.running_spec.len(), sup.queued.len(), sup.graph.len()), (n, n, n));
        assert_eq!(sup.lacks.len(), sup.len());
        if !sup.svcs.iter().skip(sup.len()).any(Service::is_active) {
            assert_eq!(n, sup.len(), "retired entries not dropped");
        }
        assert!(self.exits().len() <= 1);
        if !self.exits().is_empty() {
            assert_eq!(sup.next_deadline(), None, "a deadline after Exit");
        }
    }

    /// Applies vocabulary word `w`; None when it does not apply in this state.
    fn word(&mut self, w: usize) -> Option<String> {
        // Processes of removed services still stopping are in `svcs` too, after the live ones.
        let all = self.sup.svcs.len();
        let live: Vec<(Svc, i32)> = (0..all).filter_map(|i| self.sup.svcs[i].pid.map(|p| (i, p))).collect();
        let n = self.sup.len();
        let starting =
            (0..n).find(|&i| self.sup.svcs[i].state == State::Starting && self.sup.svcs[i].pid.is_some());
        let (desc, e) = match w {
            0 => live.first().map(|&(i, pid)| {
                (format!("exit0({i})"), Event::Exited { pid, status: ExitStatus::Code(0) })
            })?,
            1 => live.first().map(|&(i, pid)| {
                (format!("exit1({i})"), Event::Exited { pid, status: ExitStatus::Code(1) })
            })?,
            2 => live.last().map(|&(i, pid)| {
                (format!("kill9({i})"), Event::Exited { pid, status: ExitStatus::Signal(9) })
            })?,
            3 => starting.map(|svc| (format!("execok({svc})"), Event::ExecOk { svc }))?,
            4 => starting.map(|svc| (format!("ready({svc})"), Event::Ready { svc }))?,
            5 => ("stop(0)".into(), Event::Stop { svc: 0 }),
            6 => ("start(0)".into(), Event::Start { svc: 0 }),
            7 => (format!("restart({})", n.checked_sub(1)?), Event::Restart { svc: n - 1 }),
            8 => ("shutdown".into(), Event::Shutdown { code: None }),
            9 => {
                return self.fire_next().then(|| "fire".to_string());
            }
            10 => {
                self.advance(Duration::from_secs(30));
                return Some("+30s".into());
            }
            11 => ("nochildren".into(), Event::NoChildren),
            13 => {
                let up = (0..n)
                    .find(|&i| self.sup.svcs[i].state == State::Running && self.sup.svcs[i].pid.is_some());
                up.map(|svc| (format!("unhealthy({svc})"), Event::Unhealthy { svc, reason: "probe".into() }))?
            }
            12 => starting.map(|svc| {
                (
                    format!("execfail({svc})"),
                    Event::SpawnFailed { svc, error: "unable to exec: ENOENT".into() },
                )
            })?,
            14 => {
                // Change the last service's command (back and forth).
                let mut specs = self.sup.config().services.clone();
                let last = specs.last_mut()?;
                if last.command.len() > 1 {
                    last.command.truncate(1);
                } else {
                    last.command.push("--changed".into());
                }
                let name = last.name.clone();
                self.reload(specs);
                return Some(format!("reload(change {name})"));
            }
            15 => {
                // Remove the first service of the original set, or bring it back.
                let first = self.base.first()?.clone();
                let mut specs = self.sup.config().services.clone();
                let had = specs.iter().any(|s| s.name == first.name);
                specs.retain(|s| s.name != first.name);
                if !had {
                    specs.push(first.clone());
                }
                self.reload(specs);
                return Some(format!("reload({} {})", if had { "remove" } else { "add" }, first.name));
            }
            _ => return None,
        };
        self.event(e);
        Some(desc)
    }
}

/// The vocabulary: words 14 and 15 are reloads.
const WORDS: usize = 16;

/// Every sequence of up to `depth` words from boot; invariants after each step; and from every
/// reached state, a shutdown (processes that die only of SIGKILL) must end in exactly one Exit.
fn explore(sim: &Sim, depth: usize, words: usize, path: &mut Vec<String>, count: &mut usize) {
    let mut end = sim.clone();
    if !end.sup.is_shutting_down() {
        end.event(Event::Shutdown { code: None });
    }
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let code = end.finish_shutdown(false);
        end.check();
        code
    }));
    match done {
        Ok(code) => assert!((0..=255).contains(&code), "exit code {code} after {path:?}"),
        Err(_) => panic!("shutdown did not finish after {path:?}"),
    }
    if depth == 0 {
        return;
    }
    for w in 0..words {
        let mut next = sim.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let d = next.word(w);
            if d.is_some() {
                next.check();
            }
            d
        }));
        match r {
            Ok(Some(d)) => {
                *count += 1;
                path.push(d);
                explore(&next, depth - 1, words, path, count);
                path.pop();
            }
            Ok(None) => {}
            Err(_) => panic!("invariant broken after {path:?} + word {w}"),
        }
    }
}

/// In container mode (init shuts down by itself when nothing is left) and in system mode (it
/// never does, so a service waiting in silence would stay visible).
fn exhaustive(specs: Vec<ServiceSpec>, words: usize) -> usize {
    let mut count = 0;
    for mode in [Mode::Container, Mode::System] {
        let mut sim = Sim::with_mode(specs.clone(), mode);
        sim.auto_exec = false;
        sim.record_names = false;
        let sim = sim.boot();
        sim.check();
        explore(&sim, 4, words, &mut Vec::new(), &mut count);
    }
    count
}

#[test]
fn exhaustive_requires_oneshot_after() {
    let mut db = restarting(svc("db"), RestartStrategy::OnFailure, 100, 400, 2);
    db.termination.wait = Duration::from_secs(1);
    let migrate = oneshot(requires(svc("migrate"), &["db"]));
    let mut web = restarting(requires(svc("web"), &["db"]), RestartStrategy::Always, 100, 1000, 0);
    web.deps.start_after = vec!["migrate".into()];
    web.start_timeout = Duration::from_secs(2);
    let mut side = svc("side");
    side.deps.after = vec!["web".into()];
    side.termination.signal = 2;
    let n = exhaustive(vec![db, migrate, side, web], WORDS);
    assert!(n > 5000, "only {n} steps explored");
}

#[test]
fn exhaustive_conflicts_wants_target_notify() {
    let mut a = restarting(svc("a"), RestartStrategy::OnFailure, 100, 100, 2);
    a.deps.conflicts = vec!["b".into()];
    a.deps.wants = vec!["m".into()];
    a.failure.strategy = FailureStrategy::KillDependents;
    let mut b = svc("b");
    b.start_delay = Duration::from_millis(500);
    let mut m = svc("m");
    m.autostart = false;
    m.ready = Ready::Notify;
    m.start_timeout = Duration::from_secs(1);
    let mut t = requires(svc("t"), &["a"]);
    t.kind = Kind::Target;
    t.command = vec![];
    let mut w = requires(svc("w"), &["t"]);
    w.deps.die_if_failed = vec!["m".into()];
    w.deps.shutdown_after = vec!["b".into()];
    w.restart.strategy = RestartStrategy::OnFailure;
    let n = exhaustive(vec![a, b, m, t, w], WORDS);
    assert!(n > 5000, "only {n} steps explored");
}

#[test]
fn exhaustive_failure_shutdown_strategy() {
    let mut a = svc("a");
    a.failure.strategy = FailureStrategy::Shutdown;
    a.restart = restarting(svc("x"), RestartStrategy::OnFailure, 100, 100, 2).restart;
    let mut b = oneshot(svc("b"));
    b.deps.start_after = vec!["a".into()];
    let c = requires(svc("c"), &["b"]);
    // Without the two reload words: this one is about the shutdown strategy.
    exhaustive(vec![a, b, c], WORDS - 2);
}

/// Longer random walks over the same vocabulary (deterministic seed), same invariants.
#[test]
fn random_walks_keep_the_invariants() {
    let configs: Vec<Vec<ServiceSpec>> = vec![
        {
            let db = restarting(svc("db"), RestartStrategy::OnFailure, 100, 400, 3);
            let migrate = oneshot(requires(svc("migrate"), &["db"]));
            let mut web = restarting(requires(svc("web"), &["db"]), RestartStrategy::Always, 100, 800, 0);
            web.deps.start_after = vec!["migrate".into()];
            let mut side = svc("side");
            side.deps.after = vec!["web".into()];
            side.deps.wants = vec!["extra".into()];
            let mut extra = svc("extra");
            extra.autostart = false;
            extra.start_delay = Duration::from_millis(300);
            vec![db, extra, migrate, side, web]
        },
        {
            let mut a = restarting(svc("a"), RestartStrategy::Always, 100, 100, 0);
            a.deps.conflicts = vec!["b".into()];
            let mut b = requires(svc("b"), &["c"]);
            b.deps.die_if_failed = vec!["c".into()];
            let mut c = svc("c");
            c.failure.strategy = FailureStrategy::KillDependents;
            c.ready = Ready::Notify;
            let d = requires(svc("d"), &["a", "c"]);
            vec![a, b, c, d]
        },
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for specs in configs {
        for mode in [Mode::Container, Mode::System] {
            for _ in 0..300 {
                let mut sim = Sim::with_mode(specs.clone(), mode);
                sim.auto_exec = false;
                sim.record_names = false;
                let mut sim = sim.boot();
                let mut path = Vec::new();
                for _ in 0..40 {
                    let w = (next() % WORDS as u64) as usize;
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let d = sim.word(w);
                        sim.check();
                        d
                    }));
                    match r {
                        Ok(Some(d)) => path.push(d),
                        Ok(None) => {}
                        Err(_) => panic!("invariant broken after {path:?} + word {w}"),
                    }
                }
                let mut end = sim.clone();
                end.event(Event::Shutdown { code: None });
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| end.finish_shutdown(false)));
                assert!(r.is_ok(), "shutdown did not finish after {path:?}");
            }
        }
    }
}
