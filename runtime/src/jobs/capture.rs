//! An execution's output, bounded in bytes: the first quarter of the budget keeps
//! how the run began, the rest its latest lines; what falls between is counted and
//! the cut is marked where it happened.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::io::{AsyncRead, AsyncReadExt};

const CUT_NOTE: &str = "…… [输出过长";

/// Longest line kept; the rest of a longer one is replaced by a note.
pub const MAX_LINE: usize = 16 * 1024;

pub struct Capture {
    inner: Mutex<Inner>,
}

struct Inner {
    head: String,
    head_cap: usize,
    head_full: bool,
    tail: VecDeque<String>,
    tail_bytes: usize,
    tail_cap: usize,
    cut: u64,
}

impl Capture {
    /// A capture of at most `cap` bytes (plus the cut note), continuing `before`
    /// (the output of earlier attempts, which had `cut` bytes left out).
    pub fn new(cap: usize, before: &str, cut: u64) -> Capture {
        let cap = cap.max(1024);
        let c = Capture {
            inner: Mutex::new(Inner {
                head: String::new(),
                head_cap: cap / 4,
                head_full: cut > 0,
                tail: VecDeque::new(),
                tail_bytes: 0,
                tail_cap: cap - cap / 4,
                cut,
            }),
        };
        for line in before.lines().filter(|l| !l.starts_with(CUT_NOTE)) {
            c.push(line);
        }
        c
    }

    pub fn push(&self, line: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // At most half the tail: the line and its cut note always fit.
        let line = truncate(line, g.tail_cap / 2);
        let cost = line.len() + 1;
        if !g.head_full && g.head.len() + cost <= g.head_cap {
            g.head.push_str(&line);
            g.head.push('\n');
            return;
        }
        g.head_full = true;
        g.tail_bytes += cost;
        g.tail.push_back(line);
        while g.tail_bytes > g.tail_cap {
            let Some(old) = g.tail.pop_front() else { break };
            g.tail_bytes -= old.len() + 1;
            g.cut += old.len() as u64 + 1;
        }
    }

    /// The kept output, and how many bytes were left out.
    pub fn snapshot(&self) -> (String, u64) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = g.head.clone();
        if g.cut > 0 {
            out.push_str(&format!("{CUT_NOTE}, 此处省略 {} 字节] ……\n", g.cut));
        }
        for l in &g.tail {
            out.push_str(l);
            out.push('\n');
        }
        (out, g.cut)
    }
}

fn truncate(line: &str, cap: usize) -> String {
    if line.len() <= cap {
        return line.to_string();
    }
    let mut end = cap;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} …[本行过长, 已截断]", &line[..end])
}

/// Reads `r` to its end as lines of at most [`MAX_LINE`] bytes (invalid UTF-8
/// replaced), handing each to `on_line`. Memory stays bounded whatever the
/// program writes, with or without newlines.
pub async fn read_lines(mut r: impl AsyncRead + Unpin, mut on_line: impl FnMut(String)) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 8192];
    // Within an over-long line: drop until its end.
    let mut skipping = false;
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &chunk[..n] {
            if b == b'\n' {
                if !skipping {
                    on_line(String::from_utf8_lossy(&buf).into_owned());
                }
                buf.clear();
                skipping = false;
                continue;
            }
            if skipping {
                continue;
            }
            buf.push(b);
            if buf.len() >= MAX_LINE {
                let mut line = String::from_utf8_lossy(&buf).into_owned();
                line.push_str(" …[本行过长, 已截断]");
                on_line(line);
                buf.clear();
                skipping = true;
            }
        }
    }
    if !buf.is_empty() && !skipping {
        on_line(String::from_utf8_lossy(&buf).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_output_keeps_its_start_and_end_and_says_what_was_cut() {
        let c = Capture::new(1024, "", 0);
        for i in 0..1000 {
            c.push(&format!("line {i:04}"));
        }
        let (text, cut) = c.snapshot();
        assert!(text.starts_with("line 0000\n"), "{text}");
        assert!(text.ends_with("line 0999\n"));
        assert!(cut > 0);
        assert!(text.contains(&format!("省略 {cut} 字节")));
        assert!(text.len() < 1200, "{}", text.len());
        // A retry continues the same bounded output.
        let again = Capture::new(1024, &text, cut);
        again.push("attempt 2");
        let (t2, cut2) = again.snapshot();
        assert!(t2.ends_with("attempt 2\n") && cut2 >= cut);
    }

    #[tokio::test]
    async fn lines_without_end_stay_bounded() {
        let mut data = vec![b'x'; MAX_LINE * 3];
        data.extend_from_slice(b"\nshort\ntail");
        let mut got = Vec::new();
        read_lines(&data[..], |l| got.push(l)).await;
        assert_eq!(
            got.len(),
            3,
            "{:?}",
            got.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert!(got[0].len() < MAX_LINE + 64);
        assert_eq!(got[1], "short");
        assert_eq!(got[2], "tail");
    }
}
