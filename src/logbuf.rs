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

/// The last lines of one service's output, at most `cap` bytes (newlines included).
#[derive(Debug, Default)]
pub struct Ring {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    cap: usize,
    /// Lines pushed out to keep within `cap`.
    pub dropped: u64,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring { lines: VecDeque::new(), bytes: 0, cap, dropped: 0 }
    }

    pub fn push(&mut self, line: &[u8]) {
        let line = line.get(..line.len().min(self.cap)).unwrap_or(&[]);
        self.bytes += line.len() + 1;
        self.lines.push_back(line.to_vec());
        while self.bytes > self.cap {
            match self.lines.pop_front() {
                Some(old) => {
                    self.bytes -= old.len() + 1;
                    self.dropped += 1;
                }
                None => break,
            }
        }
    }

    pub fn lines(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.lines.iter().map(Vec::as_slice)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
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
        assert_eq!(r.lines().collect::<Vec<_>>(), vec![&b"bbbb"[..], b"cccc"]);
        assert_eq!(r.dropped, 1);
    }
}
