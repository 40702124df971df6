//! File targets: `stdout = "/path"` with `stdout-rotate-size` rotates and keeps
//! `stdout-rotate-keep` files; a full disk is logged once and neither init nor the other services
//! notice. Runs init as PID 1 of a PID namespace whose rootfs holds a 48 KiB tmpfs.
mod common;

use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn file_target_survives_a_full_disk() {
    if pidns_prereqs().is_none() {
        return;
    }
    let rootfs = Rootfs::new();
    // A small tmpfs, mounted by a shell that then becomes init's parent... simpler: the service
    // itself cannot mount; so the test mounts it on the rootfs before starting init.
    let logs = rootfs.host_path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48k", "tmpfs"])
        .arg(&logs)
        .status()
        .unwrap();
    if !st.success() {
        skip_or_fail("cannot mount a tmpfs (not root?)");
        return;
    }
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Umount(logs.clone());
    // 200 lines of 1 KiB: far more than the 48 KiB disk holds even with rotation.
    rootfs.service(
        "noisy",
        r#"command = ["/bin/sh", "-c", "i=0; while [ $$i -lt 200 ]; do printf '%01023d\n' $$i; i=$$((i+1)); done; echo done >&2; exec sleep 1000"]
stdout = "/logs/noisy.log"
stderr = "log"
stdout-rotate-size = "1 MiB"
"#,
    );
    rootfs.service(
        "steady",
        r#"command = ["/bin/sh", "-c", "sleep 0.5; echo still here; exec sleep 1000"]
"#,
    );
    let mut p = Pid1::start(rootfs, &[]);
    p.expect_output("noisy: done", WAIT);
    p.expect_output("steady: still here", WAIT);
    p.expect_output("No space left on device", WAIT);
    let out = p.output();
    assert_eq!(out.matches("No space left on device").count(), 1, "a full disk is logged once:\n{out}");
    let cur = std::fs::metadata(logs.join("noisy.log")).map(|m| m.len()).unwrap_or(0);
    assert!(cur > 40 * 1024, "the file took the disk: {cur} bytes");
    p.signal(Signal::TERM);
    assert_eq!(p.wait_exit(WAIT), Some(0), "{}", p.output());
}

#[test]
fn file_target_rotates_and_keeps_n_files() {
    if pidns_prereqs().is_none() {
        return;
    }
    let rootfs = Rootfs::new();
    std::fs::create_dir_all(rootfs.host_path("logs")).unwrap();
    // 100 lines of 1 KiB through a 16 KiB limit keeping 2 rotated files.
    rootfs.service(
        "noisy",
        r#"command = ["/bin/sh", "-c", "i=0; while [ $$i -lt 100 ]; do printf '%01023d\n' $$i; i=$$((i+1)); done; echo done >&2; exec sleep 1000"]
stdout = "/logs/noisy.log"
stderr = "log"
stdout-rotate-size = "16 KiB"
stdout-rotate-keep = 2
"#,
    );
    let mut p = Pid1::start(rootfs, &[]);
    p.expect_output("noisy: done", WAIT);
    let logs = p.rootfs.host_path("logs");
    // The last line is in the current file once init has copied the pipe: wait for it.
    let last = format!("{:01023}\n", 99);
    assert!(
        poll_until(WAIT, || std::fs::read_to_string(logs.join("noisy.log"))
            .is_ok_and(|t| t.ends_with(&last))),
        "the last line reaches the current file"
    );
    for f in ["noisy.log", "noisy.log.1", "noisy.log.2"] {
        let len = std::fs::metadata(logs.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0 && len <= 16 * 1024, "{f}: {len} bytes");
    }
    assert!(!logs.join("noisy.log.3").exists(), "keep = 2");
    p.signal(Signal::TERM);
    assert_eq!(p.wait_exit(WAIT), Some(0), "{}", p.output());
}
