//! Output a child process writes to a pipe (a worker's fd 1/2, a Bash job), read
//! as lines of at most `max_line_bytes`. Memory stays bounded whatever the
//! program writes, with or without newlines: what does not fit in a line is
//! counted as it comes, never held, and the cut line says how much it lost.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use vwed_ipc::lines;

/// Reads `r` to its end (or its first error), handing each line (invalid UTF-8
/// replaced, cut to `limit` bytes with the marker) to `on_line`.
pub async fn read_lines(r: impl AsyncRead + Unpin, limit: usize, mut on_line: impl FnMut(String)) {
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    let mut dropped = 0usize;
    loop {
        let (taken, complete) = match r.fill_buf().await {
            Ok(buf) if !buf.is_empty() => {
                let end = buf.iter().position(|&b| b == b'\n');
                let part = &buf[..end.unwrap_or(buf.len())];
                let room = limit.saturating_sub(line.len());
                line.extend_from_slice(&part[..part.len().min(room)]);
                dropped += part.len().saturating_sub(room);
                (end.map_or(buf.len(), |e| e + 1), end.is_some())
            }
            _ => (0, true),
        };
        r.consume(taken);
        if complete && (taken > 0 || !line.is_empty()) {
            on_line(finish(&line, dropped, limit));
            line.clear();
            dropped = 0;
        }
        if taken == 0 {
            return;
        }
    }
}

/// The kept bytes of a line as text within `limit` (replacing invalid UTF-8 may
/// lengthen it), marked when anything was dropped.
fn finish(kept: &[u8], dropped: usize, limit: usize) -> String {
    let text = String::from_utf8_lossy(kept);
    if dropped == 0 {
        return lines::cut(&text, limit).into_owned();
    }
    let mut text = text.into_owned();
    lines::mark(&mut text, dropped as u64, limit);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(data: &[u8], limit: usize) -> Vec<String> {
        let mut got = Vec::new();
        read_lines(data, limit, |l| got.push(l)).await;
        got
    }

    #[tokio::test]
    async fn lines_without_end_stay_within_the_limit_and_say_what_was_cut() {
        let limit = 1024;
        let mut data = vec![b'x'; limit * 3];
        data.extend_from_slice("\nshort\n界界\ntail".as_bytes());
        let got = read(&data, limit).await;
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].len() <= limit, "{}", got[0].len());
        let kept = got[0].bytes().take_while(|b| *b == b'x').count();
        assert!(got[0].ends_with(&lines::marker((limit * 3 - kept) as u64)));
        assert_eq!(&got[1..], ["short", "界界", "tail"]);
    }

    #[tokio::test]
    async fn invalid_utf8_that_grows_when_replaced_is_cut_too() {
        let limit = 300;
        let got = read(&vec![0xffu8; limit], limit).await;
        assert_eq!(got.len(), 1);
        assert!(got[0].len() <= limit, "{}", got[0].len());
        assert!(got[0].contains("已截断"), "{}", got[0]);
    }
}
