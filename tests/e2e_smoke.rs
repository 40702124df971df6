//! First end-to-end checks of the real binary: `--version` as PID 1 of a PID namespace in a scratch
//! rootfs, and `--check` as an ordinary process (an empty directory, a bad file, the README demo).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;

use common::{ConfigDir, Pid1, QUICK, Rootfs, check, pidns_prereqs, run_init};
use std::path::Path;

/// `--version` prints one line naming the program and exits 0, whatever it takes itself for.
fn assert_version_line(out: &str) {
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("init ") || first.starts_with("ankh "),
        "--version should start with \"init \" or \"ankh \"; got:\n{out}"
    );
}

#[test]
fn version_as_pid1_of_a_pid_namespace() {
    let Some(_) = pidns_prereqs() else { return };
    let mut p = Pid1::start(Rootfs::new(), &["--version"]);
    let code = p.wait_exit(QUICK);
    assert_eq!(code, Some(0), "init --version as PID 1 should exit 0; output:\n{}", p.output());
    assert_version_line(&p.stdout());
}

#[test]
fn version_as_an_ordinary_process() {
    let r = run_init(&["--version"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_version_line(&r.stdout);
}

#[test]
fn check_rejects_an_empty_directory() {
    // A CI step pointed at a directory with no service file is almost always a wrong path.
    let dir = ConfigDir::new();
    let r = check(dir.path());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("no service files (*.toml) in this directory"), "{r:?}");
}

#[test]
fn check_reports_a_bad_value_with_file_line_and_column() {
    let dir = ConfigDir::new();
    dir.service("web", "command = [\"/bin/sleep\", \"1000\"]\n[restart]\nstrategy = \"alway\"\n");
    let r = check(dir.path());
    assert_ne!(r.code, 0, "a bad value must fail --check: {r:?}");
    // design §4: `web.toml:3:12: restart.strategy: expected one of ..., found "alway"`
    assert!(r.output.contains("web.toml:3:"), "error should say web.toml:3:COL: {r:?}");
    assert!(r.output.contains("alway"), "error should quote the bad value: {r:?}");
}

#[test]
fn check_reports_every_bad_file_not_only_the_first() {
    let dir = ConfigDir::new();
    dir.service("a", "command = [\"/bin/true\"]\nrestrat = 1\n");
    dir.service("b", "command = [\"/bin/true\"]\n[restart]\nattempts = \"ten\"\n");
    let r = check(dir.path());
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.output.contains("a.toml:2:"), "a.toml's error is missing: {r:?}");
    assert!(r.output.contains("b.toml:3:"), "b.toml's error is missing: {r:?}");
}

#[test]
fn check_accepts_the_readme_demo() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let r = check(&demo);
    assert_eq!(r.code, 0, "examples/demo must pass --check: {r:?}");
}

// ------------------------------------------------------------------------------------------------
// The harness itself, with busybox in the place of init, so a broken helper is not mistaken for a
// broken init (these pass whatever state the binary is in).

mod harness {
    use super::common::{
        DOCKER_ENV, Pid1, QUICK, Rootfs, Signal, Standalone, alive, init_bin, is_static_elf, pidns_prereqs,
        poll_until,
    };
    use std::process::Command;

    #[test]
    fn the_init_binary_under_test_is_static() {
        let bin = init_bin().expect("cargo builds the static musl binary (.cargo/config.toml)");
        assert!(is_static_elf(&bin), "{}", bin.display());
    }

    #[test]
    fn pid1_signal_reaches_the_namespace_pid1_and_its_exit_code_comes_back() {
        let Some(_) = pidns_prereqs() else { return };
        let script = "trap 'echo got TERM; exit 3' TERM; echo pid=$$ ready; \
                      while :; do sleep 0.05; done";
        let mut p = Pid1::start_argv(Rootfs::new(), &["/bin/sh", "-c", script], DOCKER_ENV);
        p.expect_output("pid=1 ready", QUICK);
        let host = p.host_pid().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{host}/status")).unwrap();
        assert!(status.lines().any(|l| l.starts_with("NSpid:") && l.ends_with("\t1")), "{status}");
        p.signal(Signal::TERM);
        assert_eq!(p.wait_exit(QUICK), Some(3), "{}", p.output());
        assert!(p.output().contains("got TERM"), "{}", p.output());
    }

    #[test]
    fn pid1_drop_kills_the_whole_namespace() {
        let Some(_) = pidns_prereqs() else { return };
        // ash opens /dev/null as a background job's stdin: give the rootfs Docker's /dev.
        let script = "sleep 1000 & sleep 1001 & echo started; wait";
        let rootfs = Rootfs::new();
        rootfs.docker_dev();
        let p = Pid1::start_argv(rootfs, &["/bin/sh", "-c", script], DOCKER_ENV);
        p.expect_output("started", QUICK);
        assert!(poll_until(QUICK, || p.processes().len() == 2), "{:?}", p.processes());
        let mut all = p.processes();
        all.push(p.host_pid().unwrap());
        drop(p);
        assert!(poll_until(QUICK, || !all.iter().any(|&q| alive(q))), "left: {all:?}");
    }

    #[test]
    fn standalone_drop_kills_descendants_in_other_sessions() {
        // setsid: the grandchild leaves the process group, as a service under init does.
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "setsid sleep 1000 & echo started; wait"]);
        let s = Standalone::start_cmd(cmd);
        s.expect_output("started", QUICK);
        assert!(poll_until(QUICK, || !s.processes().is_empty()));
        let mut all = s.processes();
        all.push(s.pid());
        drop(s);
        assert!(poll_until(QUICK, || !all.iter().any(|&q| alive(q))), "left: {all:?}");
    }
}

#[test]
fn boots_as_initramfs_init_and_powers_off() {
    let Some(kernel) = common::boot_prereqs() else {
        return;
    };
    let rootfs = Rootfs::new();
    rootfs.service(
        "halt",
        "command = [\"/bin/sh\", \"-c\", \"echo BOOT-SERVICE-RAN; kill -USR2 1\"]\noneshot = true\n",
    );
    let boot = common::boot(&kernel, &rootfs, "", std::time::Duration::from_secs(120));
    assert!(boot.console.contains("BOOT-SERVICE-RAN"), "the service never ran: {boot:#?}");
    assert!(boot.powered_off(), "no clean power-off: {boot:#?}");
}

mod harness_boot {
    use super::common::{Rootfs, boot, boot_prereqs};
    use std::time::Duration;

    /// The boot harness itself (kernel, cpio writer, qemu line, console capture) with a shell
    /// script as /init: `poweroff -f` is busybox's direct reboot(RB_POWER_OFF) inside the VM.
    #[test]
    fn boot_harness_runs_a_script_init_and_sees_the_power_off() {
        let Some(kernel) = boot_prereqs() else { return };
        let rootfs = Rootfs::new();
        std::fs::remove_file(rootfs.host_path("init")).unwrap();
        rootfs.file("init", "#!/bin/sh\necho HARNESS-BOOT-OK \"$@\"\npoweroff -f\n");
        let init = rootfs.host_path("init");
        std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let b = boot(&kernel, &rootfs, "one two", Duration::from_secs(120));
        assert!(b.console.contains("HARNESS-BOOT-OK one two"), "{b:#?}");
        assert!(b.powered_off(), "{b:#?}");
    }
}
