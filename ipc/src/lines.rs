//! Lines of script output have a longest length, in bytes of UTF-8 (the
//! supervisor's `max_line_bytes`, told to the worker in [`crate::Boot`]). A longer
//! line is cut at a character boundary and ends with a marker that says how many
//! bytes were dropped; with the marker it is still within the limit. Both sides
//! cut: the worker before a line crosses the socket, the supervisor again for
//! whatever arrives (a line the worker cut passes unchanged).

use std::borrow::Cow;

/// The longest line when the supervisor has not said otherwise.
pub const DEFAULT_LINE_BYTES: usize = 64 * 1024;

/// Bytes a marker takes at most: a cut line keeps this much room for it.
pub const MARKER_MAX_BYTES: usize = 64;

/// What ends a cut line.
pub fn marker(dropped: u64) -> String {
    format!(" …[本行过长, 已截断 {dropped} 字节]")
}

/// The longest prefix of `text` of at most `limit` bytes that ends on a
/// character boundary.
pub fn prefix(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Ends `head`, the kept start of a line of which `dropped` more bytes were not
/// kept, with the marker: `head` is shortened to leave room for it.
pub fn mark(head: &mut String, dropped: u64, limit: usize) {
    if dropped == 0 {
        return;
    }
    let keep = prefix(head, limit.saturating_sub(MARKER_MAX_BYTES)).len();
    let dropped = dropped + (head.len() - keep) as u64;
    head.truncate(keep);
    head.push_str(&marker(dropped));
}

/// `text` as it may travel: unchanged within `limit` bytes, else cut with a marker.
pub fn cut(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    let mut head = String::with_capacity(limit);
    head.push_str(prefix(text, limit));
    let dropped = (text.len() - head.len()) as u64;
    mark(&mut head, dropped, limit);
    Cow::Owned(head)
}

/// Assembles text written in pieces (print, `sys.stdout.write`) into lines of at
/// most `limit` bytes plus a marker. What does not fit is counted, never kept, so
/// a line of any length needs only `limit` bytes here.
#[derive(Debug, Default)]
pub struct Lines {
    partial: String,
    dropped: u64,
}

impl Lines {
    pub const fn new() -> Lines {
        Lines {
            partial: String::new(),
            dropped: 0,
        }
    }

    /// Takes `text`; every line it completes is appended to `done`, each
    /// followed by `\n`.
    pub fn feed(&mut self, text: &str, limit: usize, done: &mut String) {
        let mut rest = text;
        loop {
            let (piece, next) = match rest.split_once('\n') {
                Some((piece, next)) => (piece, Some(next)),
                None => (rest, None),
            };
            self.take(piece, limit);
            match next {
                Some(next) => {
                    self.end_line(limit, done);
                    rest = next;
                }
                None => return,
            }
        }
    }

    /// Counts `n` bytes as dropped from the current line.
    pub fn drop_bytes(&mut self, n: u64) {
        self.dropped += n;
    }

    /// Room left in the current line.
    pub fn room(&self, limit: usize) -> usize {
        if self.dropped > 0 {
            0
        } else {
            limit.saturating_sub(self.partial.len())
        }
    }

    fn take(&mut self, piece: &str, limit: usize) {
        let head = prefix(piece, self.room(limit));
        self.partial.push_str(head);
        self.dropped += (piece.len() - head.len()) as u64;
    }

    fn end_line(&mut self, limit: usize, done: &mut String) {
        mark(&mut self.partial, self.dropped, limit);
        done.push_str(&self.partial);
        done.push('\n');
        self.partial.clear();
        self.dropped = 0;
    }

    /// Ends the current line if it holds anything (a flush of unfinished output).
    pub fn finish(&mut self, limit: usize, done: &mut String) {
        if !self.partial.is_empty() || self.dropped > 0 {
            self.end_line(limit, done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_marks_long_text_within_the_limit() {
        let limit = 100;
        let room = limit - MARKER_MAX_BYTES;
        assert_eq!(cut("abc", 3), "abc");
        let long = "a".repeat(150);
        let c = cut(&long, limit);
        assert_eq!(
            c,
            format!("{}{}", "a".repeat(room), marker(150 - room as u64))
        );
        assert!(c.len() <= limit);
        assert_eq!(
            cut(&c, limit),
            c,
            "a cut line passes a second cut unchanged"
        );
        // Never inside a character: "温" is three bytes.
        let wide = "温".repeat(50);
        let c = cut(&wide, limit);
        assert!(
            c.starts_with(&"温".repeat(room / 3)) && c.len() <= limit,
            "{c}"
        );
        assert!(marker(u64::MAX).len() <= MARKER_MAX_BYTES);
    }

    #[test]
    fn lines_written_in_pieces_are_bounded_and_marked() {
        let limit = MARKER_MAX_BYTES + 4;
        let mut l = Lines::default();
        let mut done = String::new();
        l.feed("ab", limit, &mut done);
        l.feed(&"c".repeat(100), limit, &mut done);
        l.feed("gh\nok\nx", limit, &mut done);
        assert_eq!(done, format!("abcc{}\nok\n", marker(104 - 4)));
        done.clear();
        l.drop_bytes(10);
        assert_eq!(l.room(limit), 0);
        l.finish(limit, &mut done);
        assert_eq!(done, format!("x{}\n", marker(10)));
        done.clear();
        l.finish(limit, &mut done);
        assert_eq!(done, "", "nothing pending, nothing ended");
    }
}
