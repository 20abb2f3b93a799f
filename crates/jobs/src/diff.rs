//! What changed between two versions of a job: the fields that differ, and a
//! line diff of the content in unified form.

use serde_json::{Value, json};

use super::model::JobSpec;

/// Lines compared one by one at most; beyond that the changed middle is shown
/// as removed and added whole.
const MAX_CELLS: usize = 4_000_000;

pub fn diff(a: &JobSpec, b: &JobSpec) -> Value {
    let (va, vb) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    let mut fields = Vec::new();
    if let (Value::Object(ma), Value::Object(mb)) = (&va, &vb) {
        for (k, x) in ma {
            if k != "content" && mb.get(k) != Some(x) {
                fields.push(json!({"field": k, "from": x, "to": mb.get(k)}));
            }
        }
    }
    json!({
        "changed_fields": fields,
        "content_changed": a.content != b.content,
        "content_diff": unified(&a.content, &b.content),
    })
}

/// `-` removed, `+` added, ` ` kept lines; kept lines more than three away from
/// a change are left out, and `@@` marks where.
pub fn unified(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    let mut out = String::new();
    let changed: Vec<bool> = ops.iter().map(|o| !matches!(o, Op::Keep(_))).collect();
    let near = |k: usize| {
        let lo = k.saturating_sub(3);
        let hi = (k + 4).min(changed.len());
        changed[lo..hi].iter().any(|c| *c)
    };
    let mut gap = false;
    for (k, op) in ops.iter().enumerate() {
        if !near(k) {
            gap = true;
            continue;
        }
        if gap {
            out.push_str("@@\n");
            gap = false;
        }
        match op {
            Op::Keep(i) => out.push_str(&format!(" {}\n", a[*i])),
            Op::Remove(i) => out.push_str(&format!("-{}\n", a[*i])),
            Op::Add(j) => out.push_str(&format!("+{}\n", b[*j])),
        }
    }
    out
}

enum Op {
    Keep(usize),
    Remove(usize),
    Add(usize),
}

/// Common prefix and suffix, then a longest-common-subsequence table over the
/// middle when it is small enough.
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops: Vec<Op> = (0..pre).map(Op::Keep).collect();
    if ma.len().saturating_mul(mb.len()) <= MAX_CELLS {
        lcs_ops(ma, mb, pre, &mut ops);
    } else {
        ops.extend((0..ma.len()).map(|i| Op::Remove(pre + i)));
        ops.extend((0..mb.len()).map(|j| Op::Add(pre + j)));
    }
    ops.extend((0..suf).map(|k| Op::Keep(a.len() - suf + k)));
    ops
}

fn lcs_ops(a: &[&str], b: &[&str], base: usize, ops: &mut Vec<Op>) {
    let (n, m) = (a.len(), b.len());
    // len[i][j]: LCS length of a[i..] and b[j..].
    let mut len = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[at(i, j)] = if a[i] == b[j] {
                len[at(i + 1, j + 1)] + 1
            } else {
                len[at(i + 1, j)].max(len[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Keep(base + i));
            i += 1;
            j += 1;
        } else if i < n && (j == m || len[at(i + 1, j)] >= len[at(i, j + 1)]) {
            ops.push(Op::Remove(base + i));
            i += 1;
        } else {
            ops.push(Op::Add(base + j));
            j += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unified;

    #[test]
    fn a_changed_line_shows_as_removed_and_added_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nb\nc\nd\ne\nF\ng\nh\ni\nj\nk\n";
        let d = unified(old, new);
        assert!(d.contains("-f\n+F\n"), "{d}");
        assert!(d.contains("+k\n"), "{d}");
        assert!(!d.contains(" a\n"), "far context is left out: {d}");
        assert_eq!(unified("x\n", "x\n"), "");
    }
}
