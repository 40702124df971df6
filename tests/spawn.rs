//! Real processes through `spawn`: argv, environment, cwd, umask, credentials, rlimits, signal
//! state, fds, process groups, stdio and exec failures. The children are busybox applets.
//!
//! Tests run in parallel threads of one process, so each test reaps only its own children, by
//! pid, and never waits for "any child".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ankh::signals::Inherited;
use ankh::spawn::{ExecStatus, Group, Io, Plan, Stdio, read_exec_status, spawn};
use ankh::spec::{Credentials, Rlimit, ServiceSpec};
use ankh::supervisor::ExitStatus;
use ankh::sys;

const BUSYBOX: &str = "/bin/busybox";

fn pipe() -> (OwnedFd, OwnedFd) {
    sys::pipe_cloexec().unwrap()
}

/// Waits (with a deadline) until the exec-status pipe says Ok or Failed.
fn exec_status(fd: &OwnedFd) -> ExecStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match read_exec_status(fd) {
            ExecStatus::Pending => {}
            done => return done,
        }
        assert!(Instant::now() < deadline, "exec status still pending");
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let ts = rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 };
        let _ = rustix::event::poll(&mut fds, Some(&ts));
    }
}

fn wait(pid: i32) -> ExitStatus {
    sys::waitpid(pid, false).unwrap().unwrap().1
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

struct Run {
    exec: ExecStatus,
    exit: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Spawns `plan` with stdout and stderr on pipes and stdin on /dev/null; waits for it.
fn run(plan: &Plan, group: Group) -> Run {
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let stdio = Stdio { stdin: Io::Null, stdout: Io::Fd(out_w), stderr: Io::Fd(err_w), extra: vec![] };
    let child = spawn(plan, stdio, group).unwrap();
    let exec = exec_status(&child.status);
    let stdout = read_all(out_r);
    let stderr = read_all(err_r);
    let exit = wait(child.pid);
    Run { exec, exit, stdout, stderr }
}

fn service(argv: &[&str]) -> ServiceSpec {
    ServiceSpec::new("t", argv.iter().map(|s| s.to_string()).collect())
}

fn plan(spec: &ServiceSpec) -> Plan {
    Plan::for_service(spec, &[(OsString::from("PATH"), OsString::from("/bin:/usr/bin"))], None).unwrap()
}

/// The value of a `Key:` line in /proc/.../status text.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {key} in\n{status}"))
        .trim()
        .to_string()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ankh-spawn-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn argv_is_passed_exactly_and_argv0_is_found_in_path() {
    let spec = service(&[
        "busybox",
        "sh",
        "-c",
        r#"for a in "$@"; do echo "[$a]"; done"#,
        "sh",
        "a",
        "b c",
        "",
        "$HOME",
    ]);
    let r = run(&plan(&spec), Group::Session);
    assert_eq!(r.exec, ExecStatus::Ok);
    assert_eq!(r.exit, ExitStatus::Code(0));
    assert_eq!(r.stdout, "[a]\n[b c]\n[]\n[$HOME]\n");
}

#[test]
fn environment_is_exactly_the_computed_one() {
    let spec = service(&["busybox", "env"]);
    let inherited: Vec<(OsString, OsString)> = [
        ("PATH", "/usr/bin:/bin"),
        ("TERM", "xterm"),
        ("SECRET", "x"),
        ("NOTIFY_SOCKET", "/run/n"),
        ("LISTEN_FDS", "1"),
    ]
    .iter()
    .map(|(k, v)| (OsString::from(k), OsString::from(v)))
    .collect();
    let p = Plan::for_service(&spec, &inherited, None).unwrap();
    let r = run(&p, Group::Session);
    assert_eq!(r.exit, ExitStatus::Code(0), "{}", r.stderr);
    let mut keys: Vec<&str> = r.stdout.lines().map(|l| l.split('=').next().unwrap()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["HOME", "HOSTNAME", "PATH", "TERM", "USER"], "{}", r.stdout);
    assert!(r.stdout.contains("PATH=/usr/bin:/bin\n"));
    assert!(r.stdout.contains("TERM=xterm\n"));
    if sys::getuid() == 0 {
        assert!(r.stdout.contains("USER=root\n"), "{}", r.stdout);
    }

    let mut spec = service(&["busybox", "env"]);
    spec.env.keep_env = true;
    spec.env.additional = vec![("EXTRA".into(), "a b=c".into())];
    let r = run(&Plan::for_service(&spec, &inherited, None).unwrap(), Group::Session);
    assert!(r.stdout.contains("SECRET=x\n"));
    assert!(r.stdout.contains("EXTRA=a b=c\n"));
    assert!(!r.stdout.contains("NOTIFY_SOCKET"));
    assert!(!r.stdout.contains("LISTEN_"));
}

#[test]
fn working_directory_and_umask_are_applied() {
    let dir = temp_dir("cwd");
    let mut spec = service(&[BUSYBOX, "sh", "-c", "pwd; grep Umask /proc/self/status"]);
    spec.working_directory = Some(dir.clone());
    spec.umask = Some(0o027);
    let r = run(&plan(&spec), Group::Session);
    assert_eq!(r.exit, ExitStatus::Code(0), "{}", r.stderr);
    assert_eq!(r.stdout, format!("{}\nUmask:\t0027\n", dir.display()));
}

#[test]
fn uid_gid_and_groups_are_switched() {
    if sys::getuid() != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let mut spec = service(&[BUSYBOX, "cat", "/proc/self/status"]);
    spec.user = Some(Credentials { uid: 65534, gid: 65534, groups: Box::new([65534, 100]) });
    let r = run(&plan(&spec), Group::Session);
    assert_eq!(r.exit, ExitStatus::Code(0), "{}", r.stderr);
    assert_eq!(status_field(&r.stdout, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&r.stdout, "Gid"), "65534\t65534\t65534\t65534");
    let groups = status_field(&r.stdout, "Groups");
    let mut g: Vec<&str> = groups.split_whitespace().collect();
    g.sort_unstable();
    assert_eq!(g, ["100", "65534"]);
}

#[test]
fn chdir_failure_is_reported_with_the_path_and_exit_1() {
    let mut spec = service(&[BUSYBOX, "true"]);
    spec.working_directory = Some("/nonexistent/dir".into());
    let r = run(&plan(&spec), Group::Session);
    assert_eq!(
        r.exec,
        ExecStatus::Failed {
            message: "unable to chdir to /nonexistent/dir: No such file or directory".into(),
            errno: 2
        }
    );
    assert_eq!(r.exit, ExitStatus::Code(1));
}

#[test]
fn signal_mask_and_ignores_are_clean_even_when_the_parent_blocks_and_ignores() {
    // Block everything in this thread and ignore SIGINT (process-wide; SIGPIPE is already
    // ignored by the Rust runtime), as init runs.
    let old = sys::sigprocmask_set(sys::full_sigset()).unwrap();
    sys::set_disposition(2, sys::Disposition::Ignore).unwrap();
    sys::set_disposition(13, sys::Disposition::Ignore).unwrap();
    let spec = service(&[BUSYBOX, "cat", "/proc/self/status"]);
    let r = run(&plan(&spec), Group::Session);
    sys::sigprocmask_set(old).unwrap();
    assert_eq!(r.exit, ExitStatus::Code(0), "{}", r.stderr);
    assert_eq!(hex(&status_field(&r.stdout, "SigBlk")), 0, "{}", r.stdout);
    assert_eq!(hex(&status_field(&r.stdout, "SigIgn")), 0, "{}", r.stdout);
}

#[test]
fn tini_mode_restores_the_inherited_signal_state() {
    let blocked = sys::sig_bit(21) | sys::sig_bit(4) | sys::sig_bit(15) | sys::sig_bit(37);
    let ignored = sys::sig_bit(22) | sys::sig_bit(11) | sys::sig_bit(2) | sys::sig_bit(34);
    let mut p = Plan::for_argv(
        vec![OsString::from(BUSYBOX), OsString::from("cat"), OsString::from("/proc/self/status")],
        &[],
    )
    .unwrap();
    p.restore_signals(Inherited { mask: blocked, ignored });
    let r = run(&p, Group::Foreground);
    assert_eq!(r.exit, ExitStatus::Code(0), "{}", r.stderr);
    assert_eq!(hex(&status_field(&r.stdout, "SigBlk")), blocked);
    assert_eq!(hex(&status_field(&r.stdout, "SigIgn")), ignored);
}

#[test]
fn tini_mode_passes_env_untouched_and_rewrites_listen_pid_naming_init() {
    let env: Vec<(OsString, OsString)> = [
        ("A", "1".to_string()),
        ("LISTEN_FDS", "1".to_string()),
        ("LISTEN_PID", sys::getpid().to_string()),
        ("NOTIFY_SOCKET", "/n".to_string()),
    ]
    .iter()
    .map(|(k, v)| (OsString::from(k), OsString::from(v)))
    .collect();
    let p = Plan::for_argv(
        ["busybox", "sh", "-c", r#"echo "$A $LISTEN_FDS $LISTEN_PID $$ $NOTIFY_SOCKET""#]
            .iter()
            .map(OsString::from)
            .collect(),
        &env,
    )
    .unwrap();
    let r = run(&p, Group::Foreground);
    assert_eq!(r.exit, ExitStatus::Code(0), "{}", r.stderr);
    let f: Vec<&str> = r.stdout.split_whitespace().collect();
    assert_eq!(f.len(), 5, "{}", r.stdout);
    assert_eq!((f[0], f[1], f[4]), ("1", "1", "/n"));
    assert_eq!(f[2], f[3], "LISTEN_PID must be the child's pid");
}

#[test]
fn fds_above_the_passed_ones_are_closed_and_extra_fds_land_at_3() {
    // A non-CLOEXEC fd in the parent must still not reach the child.
    let (leak_r, _leak_w) = pipe();
    let leaked = rustix::io::dup(&leak_r).unwrap();
    let (extra_r, extra_w) = pipe();
    let (out_r, out_w) = pipe();
    let spec = service(&[BUSYBOX, "sh", "-c", "echo via3 >&3; exec busybox sleep 30"]);
    let stdio = Stdio { stdin: Io::Null, stdout: Io::Fd(out_w), stderr: Io::Inherit, extra: vec![extra_w] };
    let child = spawn(&plan(&spec), stdio, Group::Session).unwrap();
    assert_eq!(exec_status(&child.status), ExecStatus::Ok);
    let mut line = [0u8; 5];
    std::fs::File::from(extra_r).read_exact(&mut line).unwrap();
    assert_eq!(&line, b"via3\n");

    // The sh execs sleep; wait until /proc shows sleep (its fds are then final).
    let deadline = Instant::now() + Duration::from_secs(20);
    let fd_dir = format!("/proc/{}/fd", child.pid);
    let fds = loop {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.pid)).unwrap_or_default();
        if cmdline.split(|&b| b == 0).any(|a| a == b"sleep") {
            let mut fds: Vec<i32> = std::fs::read_dir(&fd_dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
                .collect();
            fds.sort_unstable();
            break fds;
        }
        assert!(Instant::now() < deadline, "child never exec'd sleep");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(fds, [0, 1, 2, 3], "leaked fd was {}", leaked.as_raw_fd());

    // Own session and process group.
    assert_eq!(sys::getpgid(child.pid).unwrap(), child.pid);
    assert_eq!(sys::getsid(child.pid).unwrap(), child.pid);
    sys::kill(child.pid, 9).unwrap();
    assert_eq!(wait(child.pid), ExitStatus::Signal(9));
    drop(out_r);
}

#[test]
fn foreground_group_is_its_own_process_group_in_our_session() {
    let p = Plan::for_argv(vec![OsString::from(BUSYBOX), OsString::from("sleep"), OsString::from("30")], &[])
        .unwrap();
    let stdio = Stdio { stdin: Io::Null, stdout: Io::Null, stderr: Io::Inherit, extra: vec![] };
    let child = spawn(&p, stdio, Group::Foreground).unwrap();
    // The parent's setpgid makes the group exist as soon as spawn returns.
    assert_eq!(sys::getpgid(child.pid).unwrap(), child.pid);
    assert_eq!(exec_status(&child.status), ExecStatus::Ok);
    assert_eq!(sys::getsid(child.pid).unwrap(), sys::getsid(0).unwrap());
    sys::kill(-child.pid, 15).unwrap();
    assert_eq!(wait(child.pid), ExitStatus::Signal(15));
}

#[test]
fn missing_binary_fails_with_enoent_and_127() {
    for prog in ["/nonexistent/web", "no-such-program-ankh"] {
        let r = run(&plan(&service(&[prog, "x"])), Group::Session);
        assert_eq!(
            r.exec,
            ExecStatus::Failed {
                message: format!("unable to exec {prog}: No such file or directory"),
                errno: 2
            }
        );
        assert_eq!(r.exit, ExitStatus::Code(127));
        assert_eq!(r.exit.code(), 127);
    }
}

#[test]
fn not_executable_fails_with_eacces_and_126() {
    let dir = temp_dir("noexec");
    let file = dir.join("script");
    std::fs::write(&file, "#!/bin/busybox sh\necho hi\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    for prog in [file.to_str().unwrap(), "/etc"] {
        let r = run(&plan(&service(&[prog])), Group::Session);
        assert_eq!(
            r.exec,
            ExecStatus::Failed { message: format!("unable to exec {prog}: Permission denied"), errno: 13 }
        );
        assert_eq!(r.exit, ExitStatus::Code(126));
    }
}

#[test]
fn stdout_and_stderr_go_through_their_pipes() {
    let spec = service(&[BUSYBOX, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    let r = run(&plan(&spec), Group::Session);
    assert_eq!(r.exec, ExecStatus::Ok);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    assert_eq!(r.exit, ExitStatus::Code(3));
}

#[test]
fn null_output_is_dev_null() {
    let (err_r, err_w) = pipe();
    let spec = service(&[
        BUSYBOX,
        "sh",
        "-c",
        "a=$(readlink /proc/$$/fd/0); b=$(readlink /proc/$$/fd/1); echo $a $b >&2; echo lost",
    ]);
    let stdio = Stdio { stdin: Io::Null, stdout: Io::Null, stderr: Io::Fd(err_w), extra: vec![] };
    let child = spawn(&plan(&spec), stdio, Group::Session).unwrap();
    assert_eq!(exec_status(&child.status), ExecStatus::Ok);
    assert_eq!(read_all(err_r), "/dev/null /dev/null\n");
    assert_eq!(wait(child.pid), ExitStatus::Code(0));
}

#[test]
fn rlimits_are_set_and_nofile_is_restored() {
    let (_, hard) = sys::getrlimit(sys::Resource::Nofile).unwrap();
    let spec = service(&[BUSYBOX, "cat", "/proc/self/limits"]);
    let p = Plan::for_service(&spec, &[], Some((200, hard))).unwrap();
    let r = run(&p, Group::Session);
    let line = r.stdout.lines().find(|l| l.starts_with("Max open files")).unwrap().to_string();
    assert_eq!(line.split_whitespace().nth(3), Some("200"), "{line}");

    let mut spec = service(&[BUSYBOX, "cat", "/proc/self/limits"]);
    spec.limits.rlimits = vec![(Rlimit::Nofile, 100), (Rlimit::Core, 0)];
    let r = run(&Plan::for_service(&spec, &[], Some((200, hard))).unwrap(), Group::Session);
    let line = r.stdout.lines().find(|l| l.starts_with("Max open files")).unwrap().to_string();
    assert_eq!(line.split_whitespace().skip(3).take(2).collect::<Vec<_>>(), ["100", "100"]);
    let core = r.stdout.lines().find(|l| l.starts_with("Max core file size")).unwrap().to_string();
    assert_eq!(core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(), ["0", "0"]);
}

#[test]
fn set_env_reaches_the_child() {
    let mut p = plan(&service(&[BUSYBOX, "sh", "-c", "echo $NOTIFY_SOCKET"]));
    p.set_env("NOTIFY_SOCKET", OsStr::new("/run/init/notify")).unwrap();
    let r = run(&p, Group::Session);
    assert_eq!(r.stdout, "/run/init/notify\n");
}

#[test]
fn signalfd_reads_blocked_signals_with_the_sender_and_drains_to_none() {
    // Thread-directed signals (tgkill) to this thread: process-directed ones could go to any
    // other thread of the test harness.
    let old = sys::sigprocmask_block(ankh::signals::handled_set()).unwrap();
    let sfd = ankh::signals::SignalFd::new().unwrap();
    assert_eq!(sfd.read(), None);
    for sig in [12, 37, 64] {
        sys::tgkill(sys::getpid(), sys::gettid(), sig).unwrap();
    }
    let mut got = Vec::new();
    while let Some(info) = sfd.read() {
        got.push(info);
    }
    sys::sigprocmask_set(old).unwrap();
    let pid = sys::getpid();
    assert_eq!(
        got,
        [12, 37, 64].map(|signo| ankh::signals::SigInfo { signo, pid }),
        "standard signals first, then real-time ones in order"
    );
}

#[test]
fn many_extra_fds_land_in_order_even_when_their_numbers_collide_with_the_targets() {
    // 24 pipes: the write ends' numbers are spread over the target range 3..27, so some
    // sources sit on other sources' targets and must be moved out of the way first.
    let pipes: Vec<(OwnedFd, OwnedFd)> = (0..24).map(|_| pipe()).collect();
    // Reversed: the lowest-numbered sources go to the highest targets, so placing the first
    // ones in order would clobber the last ones' sources.
    let (readers, writers): (Vec<OwnedFd>, Vec<OwnedFd>) = pipes.into_iter().rev().unzip();
    let spec =
        service(&[BUSYBOX, "sh", "-c", r#"i=3; while [ $i -le 26 ]; do echo "fd$i" >&$i; i=$((i+1)); done"#]);
    let stdio = Stdio { stdin: Io::Null, stdout: Io::Null, stderr: Io::Inherit, extra: writers };
    let child = spawn(&plan(&spec), stdio, Group::Session).unwrap();
    assert_eq!(exec_status(&child.status), ExecStatus::Ok);
    for (i, r) in readers.into_iter().enumerate() {
        assert_eq!(read_all(r), format!("fd{}\n", i + 3));
    }
    assert_eq!(wait(child.pid), ExitStatus::Code(0));
}

#[test]
fn block_all_blocks_the_handled_signals_and_reports_sigpipe_as_default() {
    let before = sys::sigprocmask_get().unwrap();
    let inherited = ankh::signals::block_all().unwrap();
    let during = sys::sigprocmask_get().unwrap();
    sys::sigprocmask_set(before).unwrap();
    assert_eq!(inherited.mask, before);
    assert_eq!(inherited.ignored & sys::sig_bit(13), 0, "SIGPIPE is ignored by the Rust runtime only");
    assert_eq!(during & ankh::signals::handled_set(), ankh::signals::handled_set());
    assert_eq!(during & sys::sig_bit(11), before & sys::sig_bit(11), "SIGSEGV stays as it was");
}
