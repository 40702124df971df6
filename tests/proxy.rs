//! `[proxy]` (zinit's xinet): init accepts, starts the backend on demand, copies both ways.
//! init runs as an ordinary process; the backends are python3 (the host's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{ConfigDir, QUICK, SLOW, Standalone, free_port, poll_until, python};

fn start(dir: &ConfigDir) -> Standalone {
    common::start_in(dir)
}

/// Backend modes: `echo` (copy back until EOF), `count` (read to EOF, answer "got N", close),
/// `source N` (send N bytes, close), `die` (send 64 KiB, then SIGKILL itself), `flood` (send
/// forever; report when the peer is gone).
const BACKEND: &str = r#"
import os, signal, socket, sys, threading
path, mode = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except OSError:
    pass
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(512)
print("backend up", flush=True)
def serve(c):
    try:
        if mode == "echo":
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        elif mode == "count":
            n = 0
            while True:
                d = c.recv(65536)
                if not d:
                    break
                n += len(d)
            c.sendall(b"got %d" % n)
        elif mode == "source":
            n = int(sys.argv[3])
            chunk = b"x" * 1048576
            while n > 0:
                c.sendall(chunk[:n])
                n -= min(n, len(chunk))
        elif mode == "die":
            c.sendall(b"y" * 65536)
            os.kill(os.getpid(), signal.SIGKILL)
        elif mode == "flood":
            try:
                while True:
                    c.sendall(b"z" * 65536)
            except OSError as e:
                print("peer gone: %s" % type(e).__name__, flush=True)
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

fn proxy_service(dir: &ConfigDir, port: u16, mode: &str, extra: &str) {
    dir.file("backend.py", BACKEND);
    let sock = dir.path().join("backend.sock");
    dir.service(
        "db",
        &format!(
            "command = [\"python3\", \"{}\", \"{}\", {mode}]\nstart = \"on-demand\"\n{extra}\n[proxy]\nlisten = \"tcp:127.0.0.1:{port}\"\nbackend = \"unix:{}\"\n",
            dir.path().join("backend.py").display(),
            sock.display(),
            sock.display()
        ),
    );
}

fn connect(port: u16) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(SLOW)).unwrap();
    c
}

/// Deterministic bytes that differ per connection.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn hundred_parallel_connections_of_one_megabyte_are_copied_byte_for_byte() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    let port = free_port();
    proxy_service(&dir, port, "\"echo\"", "");
    let init = start(&dir);
    assert!(poll_until(QUICK, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    let clients: Vec<_> = (0..100u32)
        .map(|i| {
            std::thread::spawn(move || {
                let data = pattern(i, 1 << 20);
                let c = connect(port);
                let mut w = c.try_clone().unwrap();
                let sent = data.clone();
                let writer = std::thread::spawn(move || {
                    w.write_all(&sent).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut got = Vec::with_capacity(1 << 20);
                (&c).read_to_end(&mut got).unwrap();
                writer.join().unwrap();
                got == data
            })
        })
        .collect();
    let ok = clients.into_iter().map(|c| c.join().unwrap()).filter(|ok| *ok).count();
    assert_eq!(ok, 100, "connections with byte-exact echoes\n{}", init.output());
    assert_eq!(init.output().matches("db: connection waiting, starting it").count(), 1, "{}", init.output());
}

#[test]
fn half_close_reaches_the_backend_and_its_answer_comes_back() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    let port = free_port();
    proxy_service(&dir, port, "\"count\"", "");
    let _init = start(&dir);
    assert!(poll_until(QUICK, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    let mut c = connect(port);
    c.write_all(&vec![7u8; 300_000]).unwrap();
    // The backend answers only after EOF: it must see our half-close through the proxy.
    c.shutdown(Shutdown::Write).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert_eq!(out, "got 300000");
}

#[test]
fn backend_killed_mid_stream_ends_the_connection_and_the_next_one_starts_it_again() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    let port = free_port();
    proxy_service(&dir, port, "\"die\"", "");
    let init = start(&dir);
    assert!(poll_until(QUICK, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    for round in 1..=2 {
        let mut c = connect(port);
        let mut got = Vec::new();
        // EOF or a reset: either way the connection ends, and never hangs.
        match c.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
        assert!(got.len() <= 65536 && got.iter().all(|b| *b == b'y'), "round {round}: {} bytes", got.len());
        assert!(
            poll_until(QUICK, || init.output().matches("db: failed").count() >= round),
            "{}",
            init.output()
        );
    }
    assert_eq!(init.output().matches("db: connection waiting, starting it").count(), 2, "{}", init.output());
}

#[test]
fn client_gone_mid_stream_closes_the_backend_side_and_idle_stops_the_service() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    let port = free_port();
    proxy_service(&dir, port, "\"flood\"", "idle-timeout = \"1s\"");
    let init = start(&dir);
    assert!(poll_until(QUICK, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    {
        let mut c = connect(port);
        let mut buf = vec![0u8; 100_000];
        c.read_exact(&mut buf).unwrap();
    } // dropped with unread data: a reset
    init.expect_output("db: peer gone", QUICK);
    // No connection left: the idle timeout stops the service.
    init.expect_output("db: idle for 1s, stopping", QUICK);
    init.expect_output("db: stopped", QUICK);
}

#[test]
fn a_backend_that_never_comes_up_times_out_without_hurting_init() {
    let dir = ConfigDir::new();
    let port = free_port();
    let nowhere = dir.path().join("nowhere.sock");
    dir.service(
        "db",
        &format!(
            "command = [\"sleep\", \"100\"]\nstart = \"on-demand\"\n[proxy]\nlisten = \"tcp:127.0.0.1:{port}\"\nbackend = \"unix:{}\"\n",
            nowhere.display()
        ),
    );
    dir.service("other", "command = [\"sleep\", \"100\"]\n");
    let init = start(&dir);
    assert!(poll_until(QUICK, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    init.expect_output("db: running", QUICK);
    init.expect_output("other: running", QUICK);
    // init keeps retrying the backend (every 100 ms) while the loop serves everything else.
    let sock = dir.path().join("init.sock");
    let status = common::run_init(&["status", "--socket", sock.to_str().unwrap()]);
    assert_eq!(status.code, 0, "{status:?}");
}

/// Throughput of one connection through the proxy against a direct connection to the same
/// backend (printed; `cargo test --release --test proxy throughput -- --nocapture`).
#[test]
fn throughput_through_the_proxy_and_direct() {
    if !python() {
        return;
    }
    let dir = ConfigDir::new();
    let port = free_port();
    let total: usize = 512 << 20;
    proxy_service(&dir, port, &format!("\"source\", \"{total}\""), "");
    let init = start(&dir);
    assert!(poll_until(QUICK, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    let drain = |mut r: Box<dyn Read>| -> (usize, Duration) {
        let t = Instant::now();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => panic!("{e}"),
            }
        }
        (n, t.elapsed())
    };
    // Warm-up: starts the backend.
    let (n, _) = drain(Box::new(connect(port)));
    assert_eq!(n, total);
    let (n, via) = drain(Box::new(connect(port)));
    assert_eq!(n, total);
    let direct = std::os::unix::net::UnixStream::connect(dir.path().join("backend.sock")).unwrap();
    let (n2, straight) = drain(Box::new(direct));
    assert_eq!(n2, total);
    let mb = total as f64 / 1e6;
    println!(
        "throughput, one connection, {} MB: proxy {:.0} MB/s, direct {:.0} MB/s ({:.2}x)",
        total >> 20,
        mb / via.as_secs_f64(),
        mb / straight.as_secs_f64(),
        straight.as_secs_f64() / via.as_secs_f64()
    );
    drop(init);
}
