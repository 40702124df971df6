//! logbuf: what happens to a service's output when `stdout`/`stderr` is `"log"`.
//!
//! Bytes read from the service's pipe are cut into lines; each line goes to init's stdout as
//! `name: line` (so `docker logs` shows every service) and into a per-service ring buffer bounded
//! in bytes (for `init logs`). Bytes that are not UTF-8 pass through untouched. A line longer than
//! `MAX_LINE` is cut there, so nothing is buffered without bound. The ring is allocated on the
//! first byte of output: a silent service costs nothing.

use std::collections::VecDeque;

/// Longest line kept whole; longer ones are split (design §8).
pub const MAX_LINE: usize = 64 * 1024;

/// The last lines of one service's output, at most `cap` bytes (newlines included), kept in one
/// byte buffer: a line costs its bytes and its newline, nothing more (a `Vec` per line cost ~85
/// bytes of overhead each, 5× the ring's size for short lines).
#[derive(Debug, Default)]
pub struct Ring {
    buf: VecDeque<u8>,
    cap: usize,
    /// Lines pushed out to keep within `cap`.
    pub dropped: u64,
}

impl Ring {
    /// A ring of at most `cap` bytes. Sizes of 4 KiB and more give up 32 bytes so that the buffer
    /// plus the allocator's header fits musl's size class: a 16 KiB ring then costs 16 KiB, not
    /// 18.3 KiB (measured).
    pub fn new(cap: usize) -> Ring {
        let cap = if cap >= 4096 { cap - 32 } else { cap };
        Ring { buf: VecDeque::with_capacity(cap), cap, dropped: 0 }
    }

    /// Appends one line (without its newline; a line longer than the ring keeps its start).
    pub fn push(&mut self, line: &[u8]) {
        let keep = line.len().min(self.cap.saturating_sub(1));
        let line = line.get(..keep).unwrap_or(&[]);
        while !self.buf.is_empty() && self.buf.len() + line.len() + 1 > self.cap {
            let end = self.buf.iter().position(|&b| b == b'\n').map_or(self.buf.len(), |i| i + 1);
            self.buf.drain(..end);
            self.dropped += 1;
        }
        if self.cap == 0 {
            return;
        }
        self.buf.extend(line.iter().copied());
        self.buf.push_back(b'\n');
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        for &b in &self.buf {
            if b == b'\n' {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(b);
            }
        }
        out
    }

    pub fn bytes(&self) -> usize {
        self.buf.len()
    }
}

/// Line assembly for one output stream of one service.
#[derive(Debug, Default)]
pub struct Capture {
    partial: Vec<u8>,
}

impl Capture {
    /// Feeds bytes; calls `line` once per complete line (without its newline).
    pub fn feed(&mut self, mut data: &[u8], line: &mut dyn FnMut(&[u8])) {
        while !data.is_empty() {
            let room = MAX_LINE - self.partial.len();
            let window = data.get(..data.len().min(room)).unwrap_or(data);
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (head, tail) = data.split_at(i);
                    emit(&mut self.partial, head, line);
                    data = tail.get(1..).unwrap_or(&[]);
                }
                None if window.len() == room => {
                    let (head, tail) = data.split_at(room);
                    emit(&mut self.partial, head, line);
                    data = tail;
                }
                None => {
                    self.partial.extend_from_slice(data);
                    data = &[];
                }
            }
        }
    }

    /// End of stream: a last line without a newline is still a line.
    pub fn finish(&mut self, line: &mut dyn FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit(&mut self.partial, &[], line);
        }
        self.partial = Vec::new();
    }
}

fn emit(partial: &mut Vec<u8>, head: &[u8], line: &mut dyn FnMut(&[u8])) {
    if partial.is_empty() {
        line(head);
    } else {
        partial.extend_from_slice(head);
        line(partial);
        partial.clear();
    }
}

/// `name: line\n`, ready for one write(2).
pub fn prefixed(name: &str, line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + line.len() + 3);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(line);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut c = Capture::default();
        let mut out = Vec::new();
        for ch in chunks {
            c.feed(ch, &mut |l| out.push(l.to_vec()));
        }
        c.finish(&mut |l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn lines_across_reads_are_joined() {
        assert_eq!(lines_of(&[b"hel", b"lo\nwor", b"ld\n"]), vec![b"hello".to_vec(), b"world".to_vec()]);
    }

    #[test]
    fn last_line_without_newline_is_kept() {
        assert_eq!(lines_of(&[b"a\nb"]), vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn invalid_utf8_passes_through() {
        assert_eq!(lines_of(&[b"\xff\xfe ok\n"]), vec![b"\xff\xfe ok".to_vec()]);
    }

    #[test]
    fn long_lines_are_split_at_max_line() {
        let big = vec![b'x'; MAX_LINE * 2 + 10];
        let out = lines_of(&[&big[..100], &big[100..], b"\n"]);
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), vec![MAX_LINE, MAX_LINE, 10]);
    }

    #[test]
    fn ring_is_bounded_in_bytes() {
        let mut r = Ring::new(10);
        for l in [&b"aaaa"[..], b"bbbb", b"cccc"] {
            r.push(l);
        }
        assert!(r.bytes() <= 10);
        assert_eq!(r.lines(), vec![b"bbbb".to_vec(), b"cccc".to_vec()]);
        assert_eq!(r.dropped, 1);
    }
}

/// A file target (`stdout = "/path"`) that rotates: bytes are appended to `path`; when the next
/// write would take it past `limit`, `path.{keep-1}` → `path.{keep}` (the oldest is deleted) …
/// `path` → `path.1`, and a new `path` is started. A write that fails (a full disk) is dropped and
/// logged once until a write succeeds again: the service never blocks and init goes on.
#[derive(Debug)]
pub struct FileSink {
    path: std::path::PathBuf,
    fd: Option<std::os::fd::OwnedFd>,
    size: u64,
    limit: u64,
    keep: u32,
    /// Set after a failed write or open, so the failure is logged once.
    failing: bool,
}

impl FileSink {
    pub fn new(path: std::path::PathBuf, limit: u64, keep: u32) -> FileSink {
        FileSink { path, fd: None, size: 0, limit, keep, failing: false }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends `data`, rotating whenever the current file would pass the limit: no file ever
    /// holds more than `limit` bytes, and a cut falls after a newline when one fits.
    pub fn write(&mut self, name: &str, mut data: &[u8]) {
        while !data.is_empty() {
            self.open(name);
            let room = if self.limit == 0 { u64::MAX } else { self.limit.saturating_sub(self.size) };
            if room < data.len() as u64 && self.size > 0 && self.limit > 0 {
                // Fill this file up to the last newline that fits, then rotate.
                let fit = data.get(..room as usize).and_then(|d| d.iter().rposition(|&b| b == b'\n'));
                if let Some(i) = fit {
                    let (head, tail) = data.split_at(i + 1);
                    if !self.write_now(name, head) {
                        return;
                    }
                    data = tail;
                }
                self.rotate(name);
                continue;
            }
            let n = (room.min(data.len() as u64)) as usize;
            let (head, tail) = data.split_at(n);
            if !self.write_now(name, head) {
                return;
            }
            data = tail;
        }
    }

    /// One write to the current file; false (after logging once) when it failed.
    fn write_now(&mut self, name: &str, data: &[u8]) -> bool {
        let Some(fd) = self.fd.as_ref() else { return false };
        let mut rest = data;
        while !rest.is_empty() {
            match rustix::io::write(fd, rest) {
                Ok(0) => break,
                Ok(n) => {
                    self.size += n as u64;
                    rest = rest.get(n..).unwrap_or(&[]);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    let msg =
                        format!("cannot write {}: {e}; {} bytes dropped", self.path.display(), rest.len());
                    self.fail(name, &msg);
                    return false;
                }
            }
        }
        if self.failing {
            self.failing = false;
            log::info!("{name}: writing {} again", self.path.display());
        }
        true
    }

    fn open(&mut self, name: &str) {
        if self.fd.is_some() {
            return;
        }
        match crate::sys::open_log_file(&self.path) {
            Ok(fd) => {
                self.size = rustix::fs::fstat(&fd).map_or(0, |st| st.st_size.max(0) as u64);
                self.fd = Some(fd);
            }
            Err(e) => self.fail(name, &format!("cannot open {}: {e}", self.path.display())),
        }
    }

    fn fail(&mut self, name: &str, msg: &str) {
        if !self.failing {
            self.failing = true;
            log::error!("{name}: {msg}");
        }
    }

    fn rotate(&mut self, name: &str) {
        self.fd = None;
        let numbered = |k: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{k}"));
            std::path::PathBuf::from(p)
        };
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for k in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(k), numbered(k + 1));
            }
            if let Err(e) = std::fs::rename(&self.path, numbered(1)) {
                log::warn!("{name}: cannot rotate {}: {e}", self.path.display());
            }
        }
        self.size = 0;
    }
}

#[cfg(test)]
mod sink_tests {
    use super::*;

    #[test]
    fn file_rotates_at_the_limit_and_keeps_n_files() {
        let dir = std::env::temp_dir().join(format!("ankh-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.log");
        let mut s = FileSink::new(path.clone(), 10, 2);
        for chunk in ["aaaaaa\n", "bbbbbb\n", "cccccc\n", "dddddd\n"] {
            s.write("t", chunk.as_bytes());
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path), "dddddd\n");
        assert_eq!(read(&dir.join("out.log.1")), "cccccc\n");
        assert_eq!(read(&dir.join("out.log.2")), "bbbbbb\n");
        assert!(!dir.join("out.log.3").exists(), "only `keep` rotated files");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_big_write_is_split_across_files_at_newlines() {
        // Regression: a 64 KiB read from the pipe went whole into one file past the limit.
        let dir = std::env::temp_dir().join(format!("ankh-sink4-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.log");
        let mut s = FileSink::new(path.clone(), 10, 3);
        s.write("t", b"aaaa\nbbbb\ncccc\ndddd\n");
        for p in [path.clone(), dir.join("out.log.1")] {
            let len = std::fs::metadata(&p).unwrap().len();
            assert!(len <= 10, "{}: {len}", p.display());
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "cccc\ndddd\n");
        assert_eq!(std::fs::read_to_string(dir.join("out.log.1")).unwrap(), "aaaa\nbbbb\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appends_to_an_existing_file_and_counts_its_size() {
        let dir = std::env::temp_dir().join(format!("ankh-sink2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.log");
        std::fs::write(&path, "0123456789").unwrap();
        let mut s = FileSink::new(path.clone(), 12, 1);
        s.write("t", b"abc");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc");
        assert_eq!(std::fs::read_to_string(dir.join("out.log.1")).unwrap(), "0123456789");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_target_is_refused() {
        let dir = std::env::temp_dir().join(format!("ankh-sink3-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("out.log")).unwrap();
        let mut s = FileSink::new(dir.join("out.log"), 0, 1);
        s.write("t", b"evil");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
