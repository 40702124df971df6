//! cgroup v2 enforcement, in the one place it can be checked here: the qemu guest, where init is
//! PID 1, mounts cgroup2 at /sys/fs/cgroup and owns the root cgroup. ONE boot runs every
//! scenario: `pids-max` enforced, `memory` enforced (the OOM killer ends the service), a forking
//! service whose child escaped into its own session fully killed on stop, `status` showing the
//! memory and CPU used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Rootfs, boot, boot_prereqs};

#[test]
fn cgroup_limits_are_enforced_and_a_stop_leaves_nothing_behind() {
    let Some(kernel) = boot_prereqs() else { return };
    let rootfs = Rootfs::new();
    // Ten background sleeps under pids-max = 4 (this shell is one): the inner shell's forks
    // fail ("can't fork") and it dies; what it started stays, up to the limit.
    rootfs.file(
        "pids.sh",
        "cat /proc/self/cgroup\nsh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 100 & done'\n\
         echo PIDS-MAX=$(cat /sys/fs/cgroup/pids/pids.max) PIDS-CURRENT=$(cat /sys/fs/cgroup/pids/pids.current)\n\
         exec sleep 1000\n",
    );
    rootfs.service(
        "pids",
        "command = [\"/bin/sh\", \"/pids.sh\"]\n[resource-limit]\npids-max = 4\nrequired = true\n",
    );
    // 40 MB into a shell variable under memory = 16 MiB: the OOM killer ends it.
    rootfs.file(
        "mem.sh",
        "echo MEM-MAX=$(cat /sys/fs/cgroup/mem/memory.max) CPU-MAX=$(cat /sys/fs/cgroup/mem/cpu.max)\nx=$(head -c 40000000 /dev/zero | tr '\\0' a)\necho MEM-SURVIVED\n",
    );
    rootfs.service(
        "mem",
        "command = [\"/bin/sh\", \"/mem.sh\"]\n[resource-limit]\nmemory = \"16 MiB\"\ncpu = 0.5\nrequired = true\n",
    );
    // A child that escapes into its own session: only the cgroup still knows it.
    rootfs
        .file("forker.sh", "setsid sh -c 'echo $$ > /run/escaped.pid; exec sleep 1000' &\nexec sleep 1000\n");
    rootfs.service("forker", "command = [\"/bin/sh\", \"/forker.sh\"]\n");
    rootfs.file(
        "driver.sh",
        r#"for i in $(seq 1 100); do [ -s /run/escaped.pid ] && break; sleep 0.1; done
e=$(cat /run/escaped.pid)
echo ESCAPED-PID=$e CGROUP=$(cat /proc/$e/cgroup)
/init status forker
/init stop forker
for i in $(seq 1 100); do kill -0 $e 2>/dev/null || break; sleep 0.1; done
if kill -0 $e 2>/dev/null; then echo ESCAPED-ALIVE; else echo ESCAPED-KILLED; fi
for i in $(seq 1 100); do /init status mem | grep -q failed && break; sleep 0.1; done
/init status mem
kill -USR2 1
"#,
    );
    rootfs
        .service("driver", "command = [\"/bin/sh\", \"/driver.sh\"]\noneshot = true\nstart-delay = \"1s\"\n");
    let b = boot(&kernel, &rootfs, "", Duration::from_secs(120));
    let c = &b.console;
    assert!(c.contains("pids: 0::/pids"), "the service runs in its own cgroup: {b:#?}");
    assert!(c.contains("PIDS-MAX=4 PIDS-CURRENT=4"), "pids-max enforced: {b:#?}");
    assert!(c.contains("MEM-MAX=16777216 CPU-MAX=50000 100000"), "{b:#?}");
    assert!(!c.contains("MEM-SURVIVED"), "memory limit not enforced: {b:#?}");
    assert!(c.contains("Memory cgroup out of memory"), "the cgroup's OOM killer: {b:#?}");
    assert!(c.contains("mem: failed: killed by SIGKILL"), "{b:#?}");
    assert!(c.contains("CGROUP=0::/forker"), "the escaped child is still in the service's cgroup: {b:#?}");
    assert!(c.contains("ESCAPED-KILLED"), "a stop leaves nothing behind: {b:#?}");
    assert!(c.contains("reason:     memory "), "status shows the memory and CPU used: {b:#?}");
    assert!(b.powered_off(), "no clean power-off: {b:#?}");
}
