//! End-to-end tests of tini mode (`init [-e CODE] -- CMD ARGS...`) with the static binary as PID 1
//! of a new PID namespace in a busybox rootfs: exit codes (docs/exit-codes.md), every forwardable
//! signal reaching CMD, orphans reaped, CMD's signal state.
//!
//! unshare passes PID 1's exit code through when it exits normally, which init always does here
//! (it exits *with* 128+N, it is not killed), so `Pid1::wait_exit` is exact.
//!
//! Run: `cargo build --release && cargo test --release --test e2e_tini` (as root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;

use common::{DOCKER_ENV, Pid1, QUICK, Rootfs, SLOW, Signal, pidns_prereqs, poll_until};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn rootfs() -> Rootfs {
    let r = Rootfs::new();
    r.docker_dev();
    r
}

/// `init [flags] -- CMD...` as PID 1; its exit code.
fn tini(flags: &[&str], cmd: &[&str]) -> (i32, Pid1) {
    tini_in(rootfs(), flags, cmd)
}

fn tini_in(r: Rootfs, flags: &[&str], cmd: &[&str]) -> (i32, Pid1) {
    let mut args: Vec<&str> = flags.to_vec();
    args.push("--");
    args.extend_from_slice(cmd);
    let mut p = Pid1::start(r, &args);
    let code =
        p.wait_exit(SLOW).unwrap_or_else(|| panic!("init {args:?} did not exit; output:\n{}", p.output()));
    (code, p)
}

/// The host pid of CMD (PID 1's only child) once it runs.
fn child_of(p: &Pid1) -> i32 {
    assert!(poll_until(QUICK, || !p.processes().is_empty()), "no child; output:\n{}", p.output());
    p.processes()[0]
}

#[test]
fn exit_code_of_cmd_is_passed_through() {
    let Some(_) = pidns_prereqs() else { return };
    for n in [0, 1, 7, 255] {
        let (code, p) = tini(&[], &["/bin/sh", "-c", &format!("exit {n}")]);
        assert_eq!(code, n, "{}", p.output());
    }
}

#[test]
fn cmd_output_is_not_prefixed() {
    let Some(_) = pidns_prereqs() else { return };
    let (code, p) = tini(&[], &["/bin/sh", "-c", "echo plain out; echo plain err >&2"]);
    assert_eq!(code, 0);
    assert!(p.stdout().lines().any(|l| l == "plain out"), "{}", p.output());
    assert!(p.stderr().lines().any(|l| l == "plain err"), "{}", p.output());
}

#[test]
fn cmd_killed_by_its_own_sigterm_exits_143() {
    let Some(_) = pidns_prereqs() else { return };
    let (code, p) = tini(&[], &["/bin/sh", "-c", "kill -TERM $$"]);
    assert_eq!(code, 128 + 15, "{}", p.output());
}

#[test]
fn cmd_killed_by_sigkill_from_another_process_exits_137() {
    let Some(_) = pidns_prereqs() else { return };
    let mut p = Pid1::start(rootfs(), &["--", "/bin/sh", "-c", "echo ready; exec sleep 1000"]);
    p.expect_output("ready", QUICK);
    let child = child_of(&p);
    rustix::process::kill_process(rustix::process::Pid::from_raw(child).unwrap(), Signal::KILL).unwrap();
    assert_eq!(p.wait_exit(SLOW), Some(128 + 9), "{}", p.output());
}

#[test]
fn sigterm_to_pid1_is_forwarded_and_the_default_action_gives_143() {
    let Some(_) = pidns_prereqs() else { return };
    let mut p = Pid1::start(rootfs(), &["--", "/bin/sh", "-c", "echo ready; exec sleep 1000"]);
    p.expect_output("ready", QUICK);
    child_of(&p);
    p.signal(Signal::TERM);
    assert_eq!(p.wait_exit(SLOW), Some(128 + 15), "{}", p.output());
}

#[test]
fn cmd_not_found_exits_127_with_the_reason() {
    let Some(_) = pidns_prereqs() else { return };
    let (code, p) = tini(&[], &["/nope"]);
    assert_eq!(code, 127, "{}", p.output());
    assert!(p.stderr().contains("unable to exec /nope: No such file or directory"), "{}", p.output());
}

#[test]
fn cmd_not_executable_exits_126() {
    let Some(_) = pidns_prereqs() else { return };
    let r = rootfs();
    r.file("notexec", "#!/bin/sh\necho should not run\n");
    fs::set_permissions(r.host_path("notexec"), fs::Permissions::from_mode(0o644)).unwrap();
    let (code, p) = tini_in(r, &[], &["/notexec"]);
    assert_eq!(code, 126, "{}", p.output());
    assert!(!p.output().contains("should not run"), "{}", p.output());
}

#[test]
fn remapped_exit_code_becomes_0_and_others_pass_through() {
    let Some(_) = pidns_prereqs() else { return };
    let (code, p) = tini(&["-e", "7"], &["/bin/sh", "-c", "exit 7"]);
    assert_eq!(code, 0, "-e 7 maps 7 to 0; output:\n{}", p.output());
    let (code, p) = tini(&["-e", "7", "-e", "143"], &["/bin/sh", "-c", "kill -TERM $$"]);
    assert_eq!(code, 0, "-e 143 maps death by SIGTERM to 0; output:\n{}", p.output());
    let (code, p) = tini(&["-e", "7"], &["/bin/sh", "-c", "exit 8"]);
    assert_eq!(code, 8, "{}", p.output());
}

/// Every signal a user can send to PID 1 reaches CMD, which traps each and says so. Sent one at a
/// time, each after the previous one was seen; TERM last (its trap exits 0). Real-time signals are
/// sent by number with kill(1) (rustix has no name for them). Not forwarded, as with tini: the
/// synchronous ones (SEGV BUS FPE ILL TRAP ABRT SYS), which init leaves unblocked (src/signals.rs),
/// and CHLD (init reaps); KILL and STOP cannot be caught.
#[test]
fn every_forwardable_signal_reaches_cmd() {
    let Some(_) = pidns_prereqs() else { return };
    let names = [
        "HUP", "INT", "QUIT", "USR1", "USR2", "WINCH", "ALRM", "CONT", "URG", "PWR", "TSTP", "TTIN", "TTOU",
        "PIPE", "VTALRM", "PROF", "XCPU", "XFSZ",
    ];
    let rt = [40, 50, 64];
    let mut script = String::new();
    for n in names {
        script.push_str(&format!("trap 'echo got {n}' {n}; "));
    }
    for n in rt {
        script.push_str(&format!("trap 'echo got {n}' {n}; "));
    }
    script.push_str("trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done");
    let mut p = Pid1::start(rootfs(), &["--", "/bin/sh", "-c", &script]);
    p.expect_output("ready", QUICK);
    let host = p.host_pid().unwrap();
    let signals = [
        Signal::HUP,
        Signal::INT,
        Signal::QUIT,
        Signal::USR1,
        Signal::USR2,
        Signal::WINCH,
        Signal::ALARM,
        Signal::CONT,
        Signal::URG,
        Signal::POWER,
        Signal::TSTP,
        Signal::TTIN,
        Signal::TTOU,
        Signal::PIPE,
        Signal::VTALARM,
        Signal::PROF,
        Signal::XCPU,
        Signal::XFSZ,
    ];
    let mut missing = Vec::new();
    for (name, sig) in names.iter().zip(signals) {
        p.signal(sig);
        if !p.wait_output(&format!("got {name}\n"), QUICK) {
            missing.push(*name);
        }
    }
    for n in rt {
        let ok = Command::new("kill").arg(format!("-{n}")).arg(host.to_string()).status().unwrap();
        assert!(ok.success(), "kill -{n} {host}");
        if !p.wait_output(&format!("got {n}\n"), QUICK) {
            missing.push(Box::leak(n.to_string().into_boxed_str()));
        }
    }
    p.signal(Signal::TERM);
    let code = p.wait_exit(SLOW);
    assert!(missing.is_empty(), "not forwarded: {missing:?}; output:\n{}", p.output());
    assert!(p.output().contains("got TERM"), "{}", p.output());
    assert_eq!(code, Some(0), "{}", p.output());
}

/// Orphans handed to PID 1 in tini mode are reaped: after CMD's subshells leave 20 background
/// processes behind, which exit at once, no zombie is left below PID 1.
#[test]
fn orphans_are_reaped_in_tini_mode() {
    let Some(_) = pidns_prereqs() else { return };
    let script =
        "i=0; while [ $i -lt 20 ]; do ( sleep 0 & ); i=$((i+1)); done; echo spawned; exec sleep 1000";
    let mut p = Pid1::start(rootfs(), &["--", "/bin/sh", "-c", script]);
    p.expect_output("spawned", QUICK);
    let settled = poll_until(QUICK, || {
        let ps = p.processes();
        ps.len() == 1 && !ps.iter().any(|&q| !common::alive(q))
    });
    assert!(settled, "left below PID 1: {:?}", p.processes());
    p.signal(Signal::TERM);
    assert_eq!(p.wait_exit(SLOW), Some(143), "{}", p.output());
}

fn status_hex(out: &str, key: &str) -> u64 {
    let v =
        out.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("no {key} in:\n{out}")).trim();
    u64::from_str_radix(v, 16).unwrap()
}

/// What a process started by this test harness finds ignored, measured by running grep itself
/// as PID 1: the harness's own spawn (musl's posix_spawn, behind std's `Command`) hands its
/// children signals 32 and 33 (musl-internal) ignored. Tini mode passes on what init inherited, as
/// tini does, so CMD is compared against this baseline rather than against 0.
fn harness_sigign() -> u64 {
    let argv = ["/bin/grep", "-E", "SigBlk|SigIgn", "/proc/self/status"];
    let mut p = Pid1::start_argv(rootfs(), &argv, DOCKER_ENV);
    assert_eq!(p.wait_exit(SLOW), Some(0), "{}", p.output());
    status_hex(&p.stdout(), "SigIgn:")
}

/// CMD starts with an empty signal mask (init itself runs with every signal blocked) and with no
/// ignored signal beyond what init inherited.
#[test]
fn cmd_signal_mask_is_clean() {
    let Some(_) = pidns_prereqs() else { return };
    let inherited = harness_sigign();
    let (code, p) = tini(&[], &["/bin/grep", "-E", "SigBlk|SigIgn", "/proc/self/status"]);
    assert_eq!(code, 0, "{}", p.output());
    assert_eq!(status_hex(&p.stdout(), "SigBlk:"), 0, "{}", p.output());
    assert_eq!(status_hex(&p.stdout(), "SigIgn:"), inherited, "{}", p.output());
}

/// When init inherits SIGINT ignored, CMD still gets no blocked signal (init's own mask is not
/// leaked). As with tini, the inherited ignored set is passed on: SIGINT stays ignored, nothing
/// else is added.
#[test]
fn cmd_signal_mask_is_clean_when_init_inherits_ignored_sigint() {
    let Some(_) = pidns_prereqs() else { return };
    let inherited = harness_sigign();
    let argv = ["/bin/sh", "-c", "trap '' INT; exec /init -- /bin/grep -E 'SigBlk|SigIgn' /proc/self/status"];
    let mut p = Pid1::start_argv(rootfs(), &argv, DOCKER_ENV);
    assert_eq!(p.wait_exit(SLOW), Some(0), "{}", p.output());
    assert_eq!(status_hex(&p.stdout(), "SigBlk:"), 0, "{}", p.output());
    let sigint = 1 << (2 - 1);
    assert_eq!(status_hex(&p.stdout(), "SigIgn:"), inherited | sigint, "SIGINT as inherited: {}", p.output());
}
