//! health: when to probe a service and what the results mean (readiness, thresholds, liveness).
//!
//! Pure: no fds, `now` is an argument. One `HealthCheck` per service with a `[healthiness]`
//! table; the reactor runs the probes (`crate::probe`) and feeds the results back here. The rules
//! are written out in `docs/health.md`; in short:
//!
//! - `on_start(now)` (the service was spawned): the first probe is due at once.
//! - At most one probe is in flight; it is given `timeout`, then it counts as a failure.
//! - Before the first passing probe, probes run every `min(interval, 1s)` and failures never make
//!   the service unhealthy: they only mean "not ready yet" (`start-timeout` bounds that wait).
//! - The first pass gives `HealthEvent::Ready`; from then on probes run every `interval`.
//! - After that, `max-failed` consecutive failures (not counting those within `start-period` of
//!   the start) give `HealthEvent::Unhealthy` once, with the last probe's error; a later pass gives
//!   `HealthEvent::Recovered`.
//!
//! Usage from the loop:
//! ```text
//! if check.due(now)        { start the probe; check.probe_started(now) }
//! if check.timed_out(now)  { cancel the probe; check.on_result(now, false, "...: timed out") }
//! probe finished           { check.on_result(now, ok, detail) -> Option<HealthEvent> }
//! loop timeout             = min(.., check.next_deadline())
//! ```

use std::time::{Duration, Instant};

use crate::spec::{Health, Ready};
use crate::supervisor::{Event, Svc};

/// Probe cadence before the first pass (Docker's `--start-interval`), when `interval` is longer:
/// a service that listens 200 ms after its start is seen ready within a second, not an interval.
pub const START_INTERVAL: Duration = Duration::from_secs(1);

/// Longest time a probe may start early to share a wake-up with another (see `due`).
pub const MAX_SLACK: Duration = Duration::from_millis(50);

/// What a probe result changed, for the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// The first passing probe since the service started (readiness for `ready = "healthy"`).
    Ready,
    /// `max-failed` consecutive failures after the service was ready; `reason` is the last error.
    Unhealthy { reason: String },
    /// A passing probe after `Unhealthy` (only seen when `on-unhealthy = "ignore"`).
    Recovered,
}

/// What `status` shows about a service's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthStatus<'a> {
    /// A probe has passed since the service started.
    pub ready: bool,
    /// `Unhealthy` was reported and no probe has passed since.
    pub unhealthy: bool,
    /// Consecutive failures that count (see the module doc).
    pub failures: u32,
    /// The last probe's error, kept until a probe passes.
    pub last_error: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    max_failed: u32,
    /// Some while the service runs (between `on_start` and `on_stop`).
    started: Option<Instant>,
    /// When the next probe is due (meaningful while started and nothing is in flight).
    next: Instant,
    /// Deadline of the probe in flight.
    in_flight: Option<Instant>,
    ready: bool,
    failures: u32,
    unhealthy: bool,
    last_error: Option<String>,
}

fn add(t: Instant, d: Duration) -> Instant {
    // Durations are bounded at validation (spec::MAX_DURATION); never panic regardless.
    t.checked_add(d).unwrap_or(t)
}

impl HealthCheck {
    pub fn new(spec: &Health, now: Instant) -> HealthCheck {
        HealthCheck {
            interval: spec.interval.max(Duration::from_millis(1)),
            timeout: spec.timeout.max(Duration::from_millis(1)),
            start_period: spec.start_period,
            // Zero would mean "unhealthy before any failure": treat it as 1.
            max_failed: spec.max_failed.max(1),
            started: None,
            next: now,
            in_flight: None,
            ready: false,
            failures: 0,
            unhealthy: false,
            last_error: None,
        }
    }

    /// The service was spawned: forget the previous run, probe at once.
    pub fn on_start(&mut self, now: Instant) {
        self.started = Some(now);
        self.next = now;
        self.in_flight = None;
        self.ready = false;
        self.failures = 0;
        self.unhealthy = false;
        self.last_error = None;
    }

    /// The service's process is gone (or stopping): no more probes until the next `on_start`.
    /// The caller cancels a probe in flight.
    pub fn on_stop(&mut self) {
        self.started = None;
        self.in_flight = None;
    }

    pub fn is_active(&self) -> bool {
        self.started.is_some()
    }

    /// A probe is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The probe timeout, for messages ("timed out after 2s").
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// When the loop must wake for this check: the in-flight probe's deadline, else the next probe.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.started?;
        Some(self.in_flight.unwrap_or(self.next))
    }

    /// A probe should start now (active, none in flight, its time has come). A probe due within
    /// `slack` (1/16 of the interval, at most 50 ms) starts now too: when the loop wakes for one
    /// service, the probes of the others due about then go out in the same wake-up.
    pub fn due(&self, now: Instant) -> bool {
        let slack = (self.interval / 16).min(MAX_SLACK);
        self.started.is_some() && self.in_flight.is_none() && add(now, slack) >= self.next
    }

    /// A probe was started at `now`; it times out at `now + timeout`.
    pub fn probe_started(&mut self, now: Instant) {
        if self.started.is_some() {
            self.in_flight = Some(add(now, self.timeout));
        }
    }

    /// The probe in flight has passed its deadline: cancel it and report a failure.
    pub fn timed_out(&self, now: Instant) -> bool {
        self.in_flight.is_some_and(|deadline| now >= deadline)
    }

    /// A probe finished (or timed out: `ok = false`, `detail` says so). Returns what changed.
    pub fn on_result(&mut self, now: Instant, ok: bool, detail: String) -> Option<HealthEvent> {
        let started = self.started?;
        self.in_flight = None;
        if ok {
            self.failures = 0;
            self.last_error = None;
            self.next = add(now, self.interval);
            if !self.ready {
                self.ready = true;
                return Some(HealthEvent::Ready);
            }
            if self.unhealthy {
                self.unhealthy = false;
                return Some(HealthEvent::Recovered);
            }
            return None;
        }
        self.last_error = Some(detail);
        if !self.ready {
            // Not ready yet: keep trying at the start cadence; start-timeout bounds the wait.
            self.next = add(now, self.interval.min(START_INTERVAL));
            return None;
        }
        self.next = add(now, self.interval);
        if now < add(started, self.start_period) {
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.max_failed && !self.unhealthy {
            self.unhealthy = true;
            let reason = self.last_error.clone().unwrap_or_default();
            return Some(HealthEvent::Unhealthy { reason });
        }
        None
    }

    /// Shorthand for a timed-out probe: `on_result(now, false, detail)`.
    pub fn on_timeout(&mut self, now: Instant, detail: String) -> Option<HealthEvent> {
        self.on_result(now, false, detail)
    }

    pub fn status(&self) -> HealthStatus<'_> {
        HealthStatus {
            ready: self.ready,
            unhealthy: self.unhealthy,
            failures: self.failures,
            last_error: self.last_error.as_deref(),
        }
    }
}

/// What a health event means for the supervisor: `Ready` gates dependents only when the
/// service's readiness is `healthy` (`auto` with a check); `Unhealthy` always goes on (the
/// supervisor applies `on-unhealthy`); `Recovered` is for the log only.
pub fn supervisor_event(svc: Svc, ready: Ready, ev: HealthEvent) -> Option<Event> {
    match ev {
        HealthEvent::Ready if ready == Ready::Healthy => Some(Event::Ready { svc }),
        HealthEvent::Ready | HealthEvent::Recovered => None,
        HealthEvent::Unhealthy { reason } => Some(Event::Unhealthy { svc, reason }),
    }
}

/// "2s", "1500ms": a duration as a config file would write it, for messages.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::spec::OnUnhealthy;

    fn spec(interval: u64, timeout: u64, start_period: u64, max_failed: u32) -> Health {
        Health {
            http: None,
            tcp: None,
            command: None,
            file: None,
            interval: Duration::from_millis(interval),
            timeout: Duration::from_millis(timeout),
            start_period: Duration::from_millis(start_period),
            max_failed,
            on_unhealthy: OnUnhealthy::Restart,
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Runs one probe at `at` with result `ok`, asserting it was due.
    fn probe(c: &mut HealthCheck, at: Instant, ok: bool) -> Option<HealthEvent> {
        assert!(c.due(at), "probe not due at {at:?}: next {:?}", c.next_deadline());
        c.probe_started(at);
        assert!(!c.due(at), "a second probe must not start while one is in flight");
        c.on_result(at, ok, format!("err at {at:?}"))
    }

    #[test]
    fn inactive_check_has_no_deadline_and_is_never_due() {
        let t0 = Instant::now();
        let c = HealthCheck::new(&spec(1000, 500, 0, 3), t0);
        assert_eq!(c.next_deadline(), None);
        assert!(!c.due(ms(t0, 100_000)));
    }

    #[test]
    fn first_probe_is_due_at_start_and_first_pass_is_ready() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(10_000, 500, 0, 3), t0);
        c.on_start(t0);
        assert_eq!(c.next_deadline(), Some(t0));
        assert_eq!(probe(&mut c, t0, true), Some(HealthEvent::Ready));
        assert_eq!(c.next_deadline(), Some(ms(t0, 10_000)));
        assert!(!c.due(ms(t0, 9_949)));
        assert_eq!(probe(&mut c, ms(t0, 10_000), true), None);
    }

    #[test]
    fn probes_due_within_the_slack_start_early_to_share_a_wake_up() {
        let t0 = Instant::now();
        // 10 s interval: 50 ms slack (the cap); 320 ms interval: 20 ms (1/16).
        let mut a = HealthCheck::new(&spec(10_000, 500, 0, 3), t0);
        let mut b = HealthCheck::new(&spec(320, 100, 0, 3), t0);
        for c in [&mut a, &mut b] {
            c.on_start(t0);
            probe(c, t0, true);
        }
        assert!(!a.due(ms(t0, 9_949)));
        assert!(a.due(ms(t0, 9_950)));
        assert!(!b.due(ms(t0, 299)));
        assert!(b.due(ms(t0, 300)));
        // The deadline the loop sleeps until is still the exact one.
        assert_eq!(a.next_deadline(), Some(ms(t0, 10_000)));
    }

    #[test]
    fn failures_before_ready_never_make_it_unhealthy_and_retry_at_start_interval() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(10_000, 500, 0, 2), t0);
        c.on_start(t0);
        let mut t = t0;
        for _ in 0..20 {
            assert_eq!(probe(&mut c, t, false), None);
            assert_eq!(c.next_deadline(), Some(t + START_INTERVAL));
            t += START_INTERVAL;
        }
        assert!(!c.status().ready);
        assert_eq!(c.status().failures, 0);
        assert!(c.status().last_error.is_some());
        assert_eq!(probe(&mut c, t, true), Some(HealthEvent::Ready));
        assert_eq!(c.status().last_error, None);
    }

    #[test]
    fn short_interval_is_kept_before_ready() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(200, 100, 0, 2), t0);
        c.on_start(t0);
        probe(&mut c, t0, false);
        assert_eq!(c.next_deadline(), Some(ms(t0, 200)));
    }

    #[test]
    fn max_failed_consecutive_failures_after_ready_is_unhealthy_once() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(1000, 500, 0, 3), t0);
        c.on_start(t0);
        assert_eq!(probe(&mut c, t0, true), Some(HealthEvent::Ready));
        assert_eq!(probe(&mut c, ms(t0, 1000), false), None);
        assert_eq!(probe(&mut c, ms(t0, 2000), false), None);
        let ev = probe(&mut c, ms(t0, 3000), false);
        assert_eq!(ev, Some(HealthEvent::Unhealthy { reason: format!("err at {:?}", ms(t0, 3000)) }));
        assert!(c.status().unhealthy);
        // Still probing (on-unhealthy = ignore keeps it running); no repeated event.
        assert_eq!(probe(&mut c, ms(t0, 4000), false), None);
        assert_eq!(probe(&mut c, ms(t0, 5000), true), Some(HealthEvent::Recovered));
        assert_eq!(probe(&mut c, ms(t0, 6000), true), None);
    }

    #[test]
    fn a_pass_resets_the_consecutive_count() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(1000, 500, 0, 2), t0);
        c.on_start(t0);
        probe(&mut c, t0, true);
        let mut t = 1000;
        for _ in 0..10 {
            assert_eq!(probe(&mut c, ms(t0, t), false), None);
            assert_eq!(probe(&mut c, ms(t0, t + 1000), true), None);
            t += 2000;
        }
    }

    #[test]
    fn failures_within_start_period_do_not_count() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(1000, 500, 5000, 1), t0);
        c.on_start(t0);
        probe(&mut c, t0, true);
        for t in [1000, 2000, 3000, 4000] {
            assert_eq!(probe(&mut c, ms(t0, t), false), None, "t={t}");
        }
        assert_eq!(c.status().failures, 0);
        assert!(matches!(probe(&mut c, ms(t0, 5000), false), Some(HealthEvent::Unhealthy { .. })));
    }

    #[test]
    fn timeout_deadline_and_timeout_counts_as_failure() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(1000, 300, 0, 1), t0);
        c.on_start(t0);
        probe(&mut c, t0, true);
        let t1 = ms(t0, 1000);
        assert!(c.due(t1));
        c.probe_started(t1);
        assert_eq!(c.next_deadline(), Some(ms(t0, 1300)));
        assert!(!c.timed_out(ms(t0, 1299)));
        assert!(c.timed_out(ms(t0, 1300)));
        let ev = c.on_timeout(ms(t0, 1300), "GET /: timed out after 300ms".into());
        assert_eq!(ev, Some(HealthEvent::Unhealthy { reason: "GET /: timed out after 300ms".into() }));
        // Next probe one interval after the timeout, not after its start.
        assert_eq!(c.next_deadline(), Some(ms(t0, 2300)));
    }

    #[test]
    fn restart_forgets_previous_run() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(1000, 500, 0, 1), t0);
        c.on_start(t0);
        probe(&mut c, t0, true);
        assert!(matches!(probe(&mut c, ms(t0, 1000), false), Some(HealthEvent::Unhealthy { .. })));
        c.on_stop();
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.on_result(ms(t0, 1100), true, String::new()), None);
        c.on_start(ms(t0, 2000));
        assert!(!c.status().ready);
        assert!(!c.status().unhealthy);
        assert_eq!(probe(&mut c, ms(t0, 2000), true), Some(HealthEvent::Ready));
    }

    #[test]
    fn result_after_stop_is_ignored_and_in_flight_cleared() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(1000, 500, 0, 1), t0);
        c.on_start(t0);
        c.probe_started(t0);
        c.on_stop();
        assert!(!c.in_flight());
        assert!(!c.timed_out(ms(t0, 10_000)));
        assert_eq!(c.on_result(t0, true, String::new()), None);
    }

    #[test]
    fn zero_max_failed_is_treated_as_one() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(1000, 500, 0, 0), t0);
        c.on_start(t0);
        probe(&mut c, t0, true);
        assert!(matches!(probe(&mut c, ms(t0, 1000), false), Some(HealthEvent::Unhealthy { .. })));
    }

    #[test]
    fn huge_durations_do_not_panic() {
        let t0 = Instant::now();
        let mut c = HealthCheck::new(&spec(u64::MAX / 2, u64::MAX / 2, u64::MAX / 2, 3), t0);
        c.on_start(t0);
        c.probe_started(t0);
        c.on_result(t0, true, String::new());
        c.on_result(t0, false, String::new());
        assert!(c.next_deadline().is_some());
    }

    #[test]
    fn ready_gates_only_healthy_readiness() {
        assert_eq!(supervisor_event(2, Ready::Healthy, HealthEvent::Ready), Some(Event::Ready { svc: 2 }));
        assert_eq!(supervisor_event(2, Ready::Notify, HealthEvent::Ready), None);
        assert_eq!(supervisor_event(2, Ready::Healthy, HealthEvent::Recovered), None);
        assert_eq!(
            supervisor_event(2, Ready::Notify, HealthEvent::Unhealthy { reason: "x".into() }),
            Some(Event::Unhealthy { svc: 2, reason: "x".into() })
        );
    }

    #[test]
    fn fmt_duration_reads_like_config() {
        assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
    }
}
