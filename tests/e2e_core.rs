//! End-to-end tests of the supervisor core with real processes (issue 4, "How it is checked"): the
//! static binary as PID 1 of a new PID namespace in a busybox rootfs (`common::Pid1`), and as an
//! ordinary process (`common::Standalone`) where only that can tell (processes left behind after
//! init exits are visible only when init is not the namespace's PID 1).
//!
//! States are read from init's output: service lines `name: ...` on stdout, init's own
//! `init: ...` lines on stderr, and the status dump init logs on SIGUSR1. Every wait polls with a
//! deadline; no test sleeps a fixed time or asserts a duration (ratios of restart gaps only, with a
//! generous tolerance). Deterministic orders are read from files the services append to, or from
//! pids (a fresh PID namespace hands out pids in increasing order), not from the interleaving of
//! several pipes.
//!
//! Run: `cargo build --release && cargo test --release --test e2e_core` (as root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;

use common::{DOCKER_ENV, Pid1, QUICK, Rootfs, SLOW, Signal, Standalone, alive, pidns_prereqs, poll_until};
use std::fs;
use std::time::Duration;

// ---------------------------------------------------------------------------------------- helpers

/// A rootfs with Docker's /dev: busybox `sh` needs /dev/null for `cmd &`.
fn rootfs() -> Rootfs {
    let r = Rootfs::new();
    r.docker_dev();
    r
}

/// A long-running service: `sh -c SCRIPT` (the script should end in a loop or an `exec`). Values
/// are expanded (`${VAR}`, docs/config.md): write `$$$$` for the shell's `$$`.
fn sh(script: &str) -> String {
    format!("command = [\"/bin/sh\", \"-c\", {}]\n", toml_str(script))
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The lines of `out` that start with `prefix`, with the prefix removed.
fn lines_after<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter_map(|l| l.strip_prefix(prefix)).collect()
}

/// Position of `needle` in `out`, panicking with the output when it is missing.
fn pos(out: &str, needle: &str) -> usize {
    out.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the output:\n{out}"))
}

/// Host pids of the zombies among `pids`.
fn zombies(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/status"))
                .is_ok_and(|s| s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
        })
        .collect()
}

/// `comm` of a host pid ("" when gone).
fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// Ask PID 1 for its status dump (SIGUSR1 in container mode) and wait until it names `name` in
/// `state` (e.g. `"nope: Failed"`). Repeats the request: a dump taken before the state was reached
/// does not count.
fn wait_state(p: &Pid1, line: &str) {
    let ok = poll_until(QUICK, || {
        let before = p.stderr().matches(line).count();
        p.signal(Signal::USR1);
        poll_until(Duration::from_millis(500), || p.stderr().matches(line).count() > before)
    });
    assert!(ok, "no status line containing {line:?} after SIGUSR1; output:\n{}", p.output());
}

/// SIGTERM to PID 1, then its exit code (unshare passes a normal exit code through).
fn terminate(p: &mut Pid1) -> i32 {
    p.signal(Signal::TERM);
    p.wait_exit(SLOW).unwrap_or_else(|| panic!("init did not exit after SIGTERM; output:\n{}", p.output()))
}

/// Reads `/tmp/NAME` of the rootfs (a file services append to), one entry per line.
fn rootfs_lines(p: &Pid1, rel: &str) -> Vec<String> {
    fs::read_to_string(p.rootfs.host_path(rel)).unwrap_or_default().lines().map(String::from).collect()
}

// ---------------------------------------------------------------------------------------- dependencies

/// c-store <- b-db <- a-web (`requires`): names sort against the dependency order, so a start in
/// name order would be caught. pids in a fresh namespace increase, so they show the spawn order;
/// on SIGTERM each service appends its name to /tmp/stopped in its trap before it exits, and the
/// next one is signalled only after that exit, so the file shows the stop order.
#[test]
fn requires_chain_starts_in_dependency_order_and_stops_in_reverse() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    for (name, dep) in [("a-web", Some("b-db")), ("b-db", Some("c-store")), ("c-store", None)] {
        let script = format!(
            "trap 'echo {name} >> /tmp/stopped; echo {name} stopping; exit 0' TERM; \
             echo {name} up pid=$$$$; while :; do sleep 1; done"
        );
        let mut toml = sh(&script);
        if let Some(d) = dep {
            toml.push_str(&format!("requires = [\"{d}\"]\n"));
        }
        r.service(name, &toml);
    }
    let mut p = Pid1::start(r, &[]);
    for name in ["a-web", "b-db", "c-store"] {
        p.expect_output(&format!("{name}: {name} up"), QUICK);
    }
    let out = p.stdout();
    let pid_of = |name: &str| -> i32 {
        let l = lines_after(&out, &format!("{name}: {name} up pid="));
        l.first().unwrap_or_else(|| panic!("no pid line for {name}:\n{out}")).parse().unwrap()
    };
    let (store, db, web) = (pid_of("c-store"), pid_of("b-db"), pid_of("a-web"));
    assert!(store < db && db < web, "spawn order by pid: c-store {store}, b-db {db}, a-web {web}\n{out}");

    assert_eq!(terminate(&mut p), 0, "a requested shutdown ends with 0; output:\n{}", p.output());
    assert_eq!(
        rootfs_lines(&p, "tmp/stopped"),
        ["a-web", "b-db", "c-store"],
        "stop order; output:\n{}",
        p.output()
    );
    let out = p.stdout();
    assert!(
        pos(&out, "a-web: a-web stopping") < pos(&out, "c-store: c-store stopping"),
        "reverse order in the output too:\n{out}"
    );
}

/// A oneshot gates its dependent: `db` starts only after `migrate` has exited 0 (db sees the file
/// migrate writes as its last act, and db's pid is higher than migrate's last child's).
#[test]
fn oneshot_gates_its_dependent_until_it_exits_successfully() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service(
        "migrate",
        &(sh("echo migrating; sleep 0.3; echo migrated > /tmp/migrated; echo migrate done")
            + "oneshot = true\n"),
    );
    r.service(
        "db",
        &(sh(
            "if [ -f /tmp/migrated ]; then echo db saw the migration; else echo db started too early; fi; \
              exec sleep 1000",
        ) + "requires = [\"migrate\"]\n"),
    );
    let mut p = Pid1::start(r, &[]);
    p.expect_output("db: db ", QUICK);
    let out = p.stdout();
    assert!(out.contains("db: db saw the migration"), "db must start after migrate exits 0:\n{out}");
    assert!(out.contains("migrate: migrate done"), "{out}");
    wait_state(&p, "migrate: Exited");
    wait_state(&p, "db: Running");
    assert_eq!(terminate(&mut p), 0, "{}", p.output());
}

/// A oneshot that fails blocks its dependent for good, and init says why; with nothing else to
/// run, init exits by itself with 1 (a service failed for good, docs/exit-codes.md).
#[test]
fn failing_oneshot_blocks_its_dependent_and_init_says_why() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("setup", &(sh("echo setup failing; exit 3") + "oneshot = true\n"));
    r.service("app", &(sh("echo app started; exec sleep 1000") + "requires = [\"setup\"]\n"));
    r.service("other", &sh("echo other up; exec sleep 1000"));
    let mut p = Pid1::start(r, &[]);
    p.expect_output("setup: setup failing", QUICK);
    p.expect_output("other: other up", QUICK);
    wait_state(&p, "setup: Failed");
    wait_state(&p, "app: Blocked (dependency setup failed)");
    assert!(!p.output().contains("app started"), "app must never start:\n{}", p.output());
    // Stop the independent one: the loop runs out of work with a failure: 1.
    let code = terminate(&mut p);
    assert!(!p.output().contains("app started"), "{}", p.output());
    assert_eq!(code, 1, "SIGTERM after a failure for good; output:\n{}", p.output());
}

// ---------------------------------------------------------------------------------------- restarts

/// `flap` fails at once on every run; its restarts are `backoff × 2^k` apart. Starts are stamped
/// with /proc/uptime (10 ms resolution); each gap must be roughly twice the previous one. After
/// `attempts` runs it is Failed for good and `app`, which `requires` it, is stopped.
#[test]
fn restart_gaps_double_and_give_up_after_attempts_stops_requires_dependents() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service(
        "flap",
        &(sh("read up idle < /proc/uptime; echo start $up; exit 1")
            + "[restart]\nstrategy = \"on-failure\"\nbackoff = \"250ms\"\nmax-backoff = \"10s\"\nattempts = 5\n"),
    );
    r.service(
        "app",
        &(sh("trap 'echo app stopping; exit 0' TERM; echo app up; while :; do sleep 1; done")
            + "requires = [\"flap\"]\n"),
    );
    r.service("keeper", &sh("exec sleep 1000"));
    let mut p = Pid1::start(r, &[]);
    assert!(
        poll_until(SLOW, || lines_after(&p.stdout(), "flap: start ").len() >= 5),
        "five runs expected; output:\n{}",
        p.output()
    );
    wait_state(&p, "flap: Failed");
    p.expect_output("app: app stopping", QUICK);
    let out = p.output();
    assert!(out.contains("gave up after 5 attempts"), "init names the give-up:\n{out}");
    let starts: Vec<f64> =
        lines_after(&p.stdout(), "flap: start ").iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(starts.len(), 5, "no run after giving up: {starts:?}\n{out}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    for w in gaps.windows(2) {
        let ratio = w[1] / w[0];
        assert!((1.5..=2.8).contains(&ratio), "gaps should double: {gaps:?} (ratio {ratio:.2})\n{out}");
    }
    // It stays wanted: Blocked with the reason, and would start again if flap became ready.
    wait_state(&p, "app: Blocked (dependency flap failed)");
    assert_eq!(terminate(&mut p), 1, "a service failed for good; output:\n{}", p.output());
}

/// A service that exits at once with `backoff = "0s"` (Horust's default) does not spin: the floor
/// of 100 ms holds, so a run of a second sees no more than a handful of starts.
#[test]
fn zero_backoff_is_floored_and_does_not_spin() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service(
        "spin",
        &(sh("read up idle < /proc/uptime; echo start $up; exit 1")
            + "[restart]\nstrategy = \"always\"\nbackoff = \"0s\"\nmax-backoff = \"100ms\"\n"),
    );
    let mut p = Pid1::start(r, &[]);
    assert!(poll_until(SLOW, || lines_after(&p.stdout(), "spin: start ").len() >= 6), "{}", p.output());
    let starts: Vec<f64> =
        lines_after(&p.stdout(), "spin: start ").iter().map(|s| s.parse().unwrap()).collect();
    for w in starts.windows(2) {
        assert!(w[1] - w[0] >= 0.09, "restarts closer than the 100 ms floor: {starts:?}");
    }
    terminate(&mut p);
}

// ---------------------------------------------------------------------------------------- shutdown

/// SIGTERM to PID 1: each service gets its own `[termination] signal` (USR1 here, trapped), in
/// reverse dependency order; init exits 0.
#[test]
fn ordered_shutdown_sends_each_service_its_own_signal() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service(
        "base",
        &(sh("trap 'echo base got TERM; echo base >> /tmp/stopped; exit 0' TERM; \
              trap 'echo base got USR1 >> /tmp/stopped; exit 0' USR1; echo base up; while :; do sleep 1; done")),
    );
    r.service(
        "top",
        &(sh("trap 'echo top got USR1; echo top >> /tmp/stopped; exit 0' USR1; \
              trap 'echo top got TERM; echo top-TERM >> /tmp/stopped; exit 0' TERM; echo top up; while :; do sleep 1; done")
            + "requires = [\"base\"]\n[termination]\nsignal = \"USR1\"\nwait = \"5s\"\n"),
    );
    let mut p = Pid1::start(r, &[]);
    p.expect_output("top: top up", QUICK);
    p.expect_output("base: base up", QUICK);
    assert_eq!(terminate(&mut p), 0, "{}", p.output());
    let out = p.stdout();
    assert!(out.contains("top: top got USR1"), "top stops on its own signal:\n{out}");
    assert!(out.contains("base: base got TERM"), "base stops on TERM:\n{out}");
    assert_eq!(rootfs_lines(&p, "tmp/stopped"), ["top", "base"], "dependent first:\n{out}");
}

const STUBBORN: &str = "trap '' TERM; sleep 1000 & sleep 1001 & echo stubborn up; while :; do sleep 1; done";

/// A service that ignores SIGTERM (and so do its children, which inherit SIG_IGN) is SIGKILLed
/// with its whole process group after its `wait`. As PID 1 init then exits 0 (a requested
/// shutdown that had to kill still ends as configured).
#[test]
fn term_ignoring_service_is_killed_after_wait_with_its_children_as_pid1() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("stubborn", &(sh(STUBBORN) + "[termination]\nwait = \"500ms\"\n"));
    let mut p = Pid1::start(r, &[]);
    p.expect_output("stubborn: stubborn up", QUICK);
    assert!(poll_until(QUICK, || p.processes().iter().filter(|&&q| comm(q) == "sleep").count() >= 3));
    let before = p.processes();
    assert_eq!(terminate(&mut p), 0, "{}", p.output());
    assert!(poll_until(QUICK, || !before.iter().any(|&q| alive(q))), "left: {before:?}");
}

/// The same as an ordinary process: here nothing would kill a leftover when init exits (the
/// namespace trick does not apply), so every process of the service must be gone when init exits.
#[test]
fn term_ignoring_service_is_killed_after_wait_with_its_children_standalone() {
    let Some(bb) = common::busybox() else { return common::skip_or_fail("no static busybox") };
    let dir = common::ConfigDir::new();
    let script = STUBBORN.replace("sleep", &format!("{} sleep", bb.display()));
    let cmd = format!(
        "command = [\"{}\", \"sh\", \"-c\", {}]\n[termination]\nwait = \"500ms\"\n",
        bb.display(),
        toml_str(&script)
    );
    dir.service("stubborn", &cmd);
    let sock = dir.path().join("init.sock");
    let mut s =
        Standalone::start(&["--config", dir.path().to_str().unwrap(), "--socket", sock.to_str().unwrap()]);
    s.expect_output("stubborn: stubborn up", QUICK);
    assert!(poll_until(QUICK, || s.processes().len() >= 4), "{:?}", s.processes());
    let before = s.processes();
    s.signal(Signal::TERM);
    let code = s.wait_exit(SLOW);
    assert_eq!(code, Some(0), "output:\n{}", s.output());
    let left: Vec<i32> = before.iter().copied().filter(|&q| alive(q)).collect();
    assert!(left.is_empty(), "processes left after init exited: {left:?}\n{}", s.output());
}

// ---------------------------------------------------------------------------------------- reaping

/// A double-forking daemon: the service's shell starts a subshell that backgrounds a process and
/// exits, so that process is orphaned to PID 1. When it exits, init must reap it: no zombie is
/// left, and the service itself keeps running.
#[test]
fn double_forked_grandchild_is_reaped() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service(
        "daemon",
        &sh("( sh -c 'sleep 0.3; echo orphan exiting' & ); echo daemonized; exec sleep 1000"),
    );
    let mut p = Pid1::start(r, &[]);
    p.expect_output("daemon: daemonized", QUICK);
    p.expect_output("daemon: orphan exiting", QUICK);
    // Only the service's `sleep 1000` remains, and nothing is a zombie.
    let settled = poll_until(QUICK, || {
        let ps = p.processes();
        ps.len() == 1 && zombies(&ps).is_empty()
    });
    let ps = p.processes();
    assert!(
        settled,
        "left: {:?} (zombies {:?})",
        ps.iter().map(|&q| (q, comm(q))).collect::<Vec<_>>(),
        zombies(&ps)
    );
    assert_eq!(terminate(&mut p), 0, "{}", p.output());
}

/// A daemon whose service exits 0 after forking leaves an orphan that runs on: once nothing is
/// left to run, init (PID 1) ends the orphans too and exits 0.
#[test]
fn orphan_left_by_an_exited_service_is_stopped_at_the_end() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service(
        "forker",
        &sh("( sh -c 'trap \"echo orphan got TERM >> /tmp/orphan; exit 0\" TERM; touch /tmp/trapped; \
             while :; do sleep 1; done' & ); \
             while [ ! -f /tmp/trapped ]; do sleep 0.01; done; echo forked; exit 0"),
    );
    let mut p = Pid1::start(r, &[]);
    p.expect_output("forker: forked", QUICK);
    let code = p.wait_exit(SLOW);
    assert_eq!(code, Some(0), "init exits by itself when nothing is left to run; output:\n{}", p.output());
    assert_eq!(rootfs_lines(&p, "tmp/orphan"), ["orphan got TERM"], "the orphan is asked to stop first");
}

/// 1,000 orphans: a service starts 1,000 `sleep 0` in the background and exits at once, handing
/// them (and the zombies among them) to PID 1. None may be left.
#[test]
fn thousand_orphans_are_reaped_with_no_zombie_left() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service(
        "spawner",
        &(sh("i=0; while [ $i -lt 1000 ]; do sleep 0 & i=$((i+1)); done; echo spawned $i; exit 0")
            + "oneshot = true\n"),
    );
    r.service("keeper", &sh("exec sleep 1000"));
    let mut p = Pid1::start(r, &[]);
    p.expect_output("spawner: spawned 1000", SLOW);
    let settled = poll_until(SLOW, || {
        let ps = p.processes();
        ps.len() == 1 && zombies(&ps).is_empty()
    });
    let ps = p.processes();
    assert!(settled, "{} processes left below PID 1, {} zombies", ps.len(), zombies(&ps).len());
    assert_eq!(terminate(&mut p), 0, "{}", p.output());
}

// ---------------------------------------------------------------------------------------- exec failures

/// A missing binary: init says `NAME: unable to exec /nope: No such file or directory`, the
/// service is Failed, and the others run.
#[test]
fn missing_binary_fails_that_service_only() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("nope", "command = [\"/nope\"]\n");
    r.service("fine", &sh("echo fine up; exec sleep 1000"));
    let mut p = Pid1::start(r, &[]);
    p.expect_output("fine: fine up", QUICK);
    p.expect_output("nope: unable to exec /nope: No such file or directory", QUICK);
    let err = p.stderr();
    let line = err.lines().find(|l| l.contains("unable to exec /nope")).unwrap();
    assert!(line.starts_with("init: "), "init's own line: {line:?}");
    assert!(!p.output().contains("exit 127"), "the reason is the exec error, not exit 127:\n{}", p.output());
    wait_state(&p, "nope: Failed");
    wait_state(&p, "fine: Running");
    terminate(&mut p);
}

/// The message grammar of DESIGN.md §3/STYLE.md, exactly: `init: web: unable to exec ...`, with no
/// level word between `init:` and the service name.
#[test]
fn missing_binary_message_has_the_exact_grammar() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("nope", "command = [\"/nope\"]\n");
    r.service("fine", &sh("exec sleep 1000"));
    let mut p = Pid1::start(r, &[]);
    p.expect_output("unable to exec /nope", QUICK);
    assert!(
        p.stderr().lines().any(|l| l == "init: nope: unable to exec /nope: No such file or directory"),
        "{}",
        p.stderr()
    );
    terminate(&mut p);
}

// ---------------------------------------------------------------------------------------- signal state

fn assert_clean_mask(out: &str, prefix: &str) {
    let blk = lines_after(out, &format!("{prefix}SigBlk:"));
    let ign = lines_after(out, &format!("{prefix}SigIgn:"));
    assert_eq!(blk.len(), 1, "{out}");
    assert_eq!(ign.len(), 1, "{out}");
    assert_eq!(u64::from_str_radix(blk[0].trim(), 16).unwrap(), 0, "SigBlk not empty:\n{out}");
    assert_eq!(u64::from_str_radix(ign[0].trim(), 16).unwrap(), 0, "SigIgn not empty:\n{out}");
}

const MASK_SERVICE: &str =
    "command = [\"/bin/grep\", \"-E\", \"SigBlk|SigIgn\", \"/proc/self/status\"]\noneshot = true\n";

/// A service's signal mask and ignored set are empty (init runs with every signal blocked).
#[test]
fn service_signal_mask_is_clean() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("mask", MASK_SERVICE);
    let mut p = Pid1::start(r, &[]);
    assert_eq!(p.wait_exit(SLOW), Some(0), "{}", p.output());
    assert_clean_mask(&p.stdout(), "mask: ");
}

/// Even when init itself was started with SIGINT and SIGQUIT ignored (what `cmd &` in a
/// non-interactive shell does), a service starts with default dispositions: a shell as PID 1
/// ignores them and execs init.
#[test]
fn service_signal_mask_is_clean_when_init_inherits_ignored_sigint() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("mask", MASK_SERVICE);
    let mut p = Pid1::start_argv(r, &["/bin/sh", "-c", "trap '' INT QUIT; exec /init"], DOCKER_ENV);
    assert_eq!(p.wait_exit(SLOW), Some(0), "{}", p.output());
    assert_clean_mask(&p.stdout(), "mask: ");
}

// ---------------------------------------------------------------------------------------- scale

/// 100 services start (each prints a marker) and stop on SIGTERM; init exits 0.
#[test]
fn hundred_services_start_and_stop() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    for i in 0..100 {
        r.service(&format!("s{i:03}"), &sh(&format!("echo marker-{i}; exec sleep 1000")));
    }
    let mut p = Pid1::start(r, &[]);
    let all = poll_until(SLOW, || {
        let out = p.stdout();
        (0..100).all(|i| out.contains(&format!("s{i:03}: marker-{i}\n")))
    });
    assert!(all, "not every marker arrived:\n{}", p.output());
    assert!(poll_until(QUICK, || p.processes().len() == 100), "{} processes", p.processes().len());
    assert_eq!(terminate(&mut p), 0, "{}", p.output());
}

// ---------------------------------------------------------------------------------------- exit codes

/// `[failure] strategy = "shutdown"`: init exits with that service's code, after stopping the rest.
#[test]
fn failure_strategy_shutdown_exits_with_the_service_code() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    // boom fails once other's trap is set (other's file says so).
    let boom = "while [ ! -f /tmp/other-up ]; do sleep 0.01; done; exit 42";
    r.service("boom", &(sh(boom) + "[failure]\nstrategy = \"shutdown\"\n"));
    r.service(
        "other",
        &sh("trap 'echo other stopped; exit 0' TERM; touch /tmp/other-up; while :; do sleep 1; done"),
    );
    let mut p = Pid1::start(r, &[]);
    assert_eq!(p.wait_exit(SLOW), Some(42), "{}", p.output());
    assert!(p.output().contains("other: other stopped"), "the others are stopped first:\n{}", p.output());
}

/// ... and 128+N when that service was killed by signal N.
#[test]
fn failure_strategy_shutdown_with_a_signal_exits_128_plus_n() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("boom", &(sh("sleep 0.2; kill -USR2 $$$$") + "[failure]\nstrategy = \"shutdown\"\n"));
    r.service("other", &sh("exec sleep 1000"));
    let mut p = Pid1::start(r, &[]);
    assert_eq!(p.wait_exit(SLOW), Some(128 + 12), "{}", p.output());
}

/// 3: no service could be loaded (an empty config dir; every file invalid).
#[test]
fn no_loadable_service_exits_3() {
    let Some(_) = pidns_prereqs() else { return };
    let mut p = Pid1::start(rootfs(), &[]);
    assert_eq!(p.wait_exit(QUICK), Some(3), "empty /etc/init; output:\n{}", p.output());

    let r = rootfs();
    r.service("bad", "command = 12\n");
    let mut p = Pid1::start(r, &[]);
    assert_eq!(p.wait_exit(QUICK), Some(3), "only a bad file; output:\n{}", p.output());
    assert!(p.stderr().contains("bad.toml:1:"), "the error has its position:\n{}", p.output());
}

/// A bad file does not stop the good ones.
#[test]
fn bad_file_refuses_that_service_only() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("bad", "command = 12\n");
    r.service("good", &sh("echo good up; exec sleep 1000"));
    let mut p = Pid1::start(r, &[]);
    p.expect_output("good: good up", QUICK);
    assert!(p.stderr().contains("bad.toml:1:"), "{}", p.output());
    terminate(&mut p);
}

/// 1: the loop ran out of work and some service failed for good.
#[test]
fn failed_for_good_and_out_of_work_exits_1() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("bad", &sh("exit 5"));
    r.service("ok", &(sh("echo ok done") + "oneshot = true\n"));
    let mut p = Pid1::start(r, &[]);
    assert_eq!(p.wait_exit(SLOW), Some(1), "{}", p.output());
}

/// 0: everything ended as configured (oneshots done, nothing failed), by itself.
#[test]
fn everything_finished_exits_0() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.service("one", &(sh("echo one done") + "oneshot = true\n"));
    r.service("two", &(sh("echo two done") + "requires = [\"one\"]\n"));
    let mut p = Pid1::start(r, &[]);
    assert_eq!(p.wait_exit(SLOW), Some(0), "{}", p.output());
    assert!(p.output().contains("two: two done"), "{}", p.output());
}
