//! Dangerous-command detection for Bash jobs (seed 002 §安全特性): a guard against
//! mistakes, not a security boundary (the sandbox is that). A finding blocks
//! activation until an engineer acknowledges it.
//!
//! The content is read as the shell reads it: quotes, escapes, comments, line
//! continuations, command substitutions, pipelines, redirections and here-documents.
//! Rules look at commands, not at text, so `echo "mkfs"` or `# rm -rf /` are not
//! findings while `bash -c "rm -rf /"`, `$(rm -rf /)` and a here-document fed to
//! `sh` are.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// 1-based line of the command.
    pub line: usize,
    pub rule: &'static str,
    pub message: &'static str,
    /// The line as written (trimmed, at most 200 characters).
    pub text: String,
}

/// How deep code inside code (`bash -c`, `$(...)`, here-documents) is followed.
const MAX_DEPTH: usize = 4;

pub fn check(content: &str) -> Vec<Finding> {
    let mut found = Vec::new();
    scan(content, 1, 0, &mut found);
    let lines: Vec<&str> = content.lines().collect();
    let mut out: Vec<Finding> = Vec::new();
    for (line, rule, message) in found {
        if out.iter().any(|f| f.line == line && f.rule == rule) {
            continue;
        }
        let text = lines
            .get(line.saturating_sub(1))
            .map(|l| l.trim().chars().take(200).collect())
            .unwrap_or_default();
        out.push(Finding {
            line,
            rule,
            message,
            text,
        });
    }
    out.sort_by_key(|f| f.line);
    out
}

type Found = Vec<(usize, &'static str, &'static str)>;

fn scan(code: &str, first_line: usize, depth: usize, out: &mut Found) {
    if depth > MAX_DEPTH {
        return;
    }
    let lexed = Lexer::new(code, first_line).run();
    fork_bombs(&lexed.tokens, out);
    let cmds = commands(&lexed.tokens);
    for c in &cmds {
        for (sub, line) in &c.subs {
            scan(sub, *line, depth + 1, out);
        }
        rules(c, depth, out);
    }
    pipes_to_shell(&cmds, out);
    for h in &lexed.heredocs {
        let fed_to_shell = cmds
            .iter()
            .filter(|c| c.line_end_token == h.after_token)
            .any(|c| is_shell(c.name()));
        if fed_to_shell {
            scan(&h.body, h.first_line, depth + 1, out);
        }
    }
}

// ------------------------------------------------------------------- lexing

#[derive(Debug, Clone, Default)]
struct Word {
    /// The value with quotes and escapes removed; substitutions kept as written.
    text: String,
    line: usize,
    /// Code inside `$(...)`, backticks and `<(...)`, with its line.
    subs: Vec<(String, usize)>,
}

#[derive(Debug, Clone)]
enum Tok {
    Word(Word),
    Op(&'static str),
    Newline,
}

struct Heredoc {
    body: String,
    first_line: usize,
    /// Index of the newline token that ends the line holding `<<`.
    after_token: usize,
}

struct Lexed {
    tokens: Vec<Tok>,
    heredocs: Vec<Heredoc>,
}

const OPS: [&str; 21] = [
    "&>>", "<<-", "<<<", "&&", "||", ";;", "|&", "<<", "<>", ">>", ">|", ">&", "<&", "&>", ";",
    "&", "|", "(", ")", "<", ">",
];

struct Lexer {
    s: Vec<char>,
    i: usize,
    line: usize,
    tokens: Vec<Tok>,
    heredocs: Vec<Heredoc>,
    /// (delimiter, strip leading tabs) of here-documents whose body follows.
    pending: Vec<(String, bool)>,
}

impl Lexer {
    fn new(code: &str, first_line: usize) -> Lexer {
        Lexer {
            s: code.chars().collect(),
            i: 0,
            line: first_line,
            tokens: Vec::new(),
            heredocs: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn peek(&self, k: usize) -> Option<char> {
        self.s.get(self.i + k).copied()
    }

    fn starts(&self, t: &str) -> bool {
        t.chars().enumerate().all(|(k, c)| self.peek(k) == Some(c))
    }

    fn run(mut self) -> Lexed {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' => self.i += 1,
                '\\' if self.peek(1) == Some('\n') => {
                    self.i += 2;
                    self.line += 1;
                }
                '#' => self.skip_comment(),
                '\n' => self.newline(),
                _ if (c == '<' || c == '>') && self.peek(1) == Some('(') => self.word(),
                _ => match OPS.iter().find(|op| self.starts(op)) {
                    Some(op) => self.op(op),
                    None => self.word(),
                },
            }
        }
        self.newline();
        Lexed {
            tokens: self.tokens,
            heredocs: self.heredocs,
        }
    }

    fn skip_comment(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.i += 1;
        }
    }

    fn op(&mut self, op: &'static str) {
        self.i += op.chars().count();
        self.tokens.push(Tok::Op(op));
        if op == "<<" || op == "<<-" {
            while matches!(self.peek(0), Some(' ' | '\t')) {
                self.i += 1;
            }
            let mut w = Word::default();
            self.read_word(&mut w);
            self.pending.push((w.text, op == "<<-"));
        }
    }

    /// Ends a line; here-document bodies announced on it follow.
    fn newline(&mut self) {
        let at = self.tokens.len();
        self.tokens.push(Tok::Newline);
        if self.peek(0) == Some('\n') {
            self.i += 1;
            self.line += 1;
        }
        for (delim, strip) in std::mem::take(&mut self.pending) {
            let first_line = self.line;
            let mut body = String::new();
            while self.i < self.s.len() {
                let start = self.i;
                while self.peek(0).is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
                let text: String = self.s[start..self.i].iter().collect();
                self.i += usize::from(self.peek(0).is_some());
                self.line += 1;
                let cmp = if strip {
                    text.trim_start_matches('\t')
                } else {
                    &text
                };
                if cmp == delim {
                    break;
                }
                body.push_str(&text);
                body.push('\n');
            }
            self.heredocs.push(Heredoc {
                body,
                first_line,
                after_token: at,
            });
        }
    }

    fn word(&mut self) {
        let mut w = Word {
            line: self.line,
            ..Word::default()
        };
        self.read_word(&mut w);
        // `2>file`: the digits are the descriptor of the redirection that follows.
        let is_fd = !w.text.is_empty()
            && w.text.chars().all(|c| c.is_ascii_digit())
            && matches!(self.peek(0), Some('<' | '>'));
        if !is_fd {
            self.tokens.push(Tok::Word(w));
        }
    }

    fn read_word(&mut self, w: &mut Word) {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | ')' => return,
                '<' | '>' if self.peek(1) != Some('(') => return,
                '<' | '>' | '$' if self.peek(1) == Some('(') => {
                    self.i += 2;
                    let sub = self.until_close_paren();
                    w.text.push_str(&format!("{c}({sub})"));
                    w.subs.push((sub, self.line));
                }
                '(' => return,
                '`' => {
                    self.i += 1;
                    let sub = self.until_backtick();
                    w.text.push_str(&format!("`{sub}`"));
                    w.subs.push((sub, self.line));
                }
                '\'' => {
                    self.i += 1;
                    while let Some(q) = self.peek(0) {
                        self.i += 1;
                        if q == '\'' {
                            break;
                        }
                        self.count_line(q);
                        w.text.push(q);
                    }
                }
                '"' => {
                    self.i += 1;
                    self.double_quoted(w);
                }
                '\\' => {
                    if let Some(n) = self.peek(1) {
                        if n == '\n' {
                            self.line += 1;
                        } else {
                            w.text.push(n);
                        }
                    }
                    self.i += 2;
                }
                '$' if self.peek(1) == Some('{') => {
                    let start = self.i;
                    while self.peek(0).is_some_and(|c| c != '}') {
                        self.i += 1;
                    }
                    self.i += 1;
                    w.text
                        .extend(self.s[start..self.i.min(self.s.len())].iter());
                }
                _ => {
                    w.text.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn double_quoted(&mut self, w: &mut Word) {
        while let Some(c) = self.peek(0) {
            match c {
                '"' => {
                    self.i += 1;
                    return;
                }
                '\\' if matches!(self.peek(1), Some('"' | '\\' | '$' | '`')) => {
                    if let Some(n) = self.peek(1) {
                        w.text.push(n);
                    }
                    self.i += 2;
                }
                '\\' if self.peek(1) == Some('\n') => {
                    self.i += 2;
                    self.line += 1;
                }
                '$' if self.peek(1) == Some('(') => {
                    self.i += 2;
                    let sub = self.until_close_paren();
                    w.text.push_str(&format!("$({sub})"));
                    w.subs.push((sub, self.line));
                }
                '`' => {
                    self.i += 1;
                    let sub = self.until_backtick();
                    w.text.push_str(&format!("`{sub}`"));
                    w.subs.push((sub, self.line));
                }
                _ => {
                    self.count_line(c);
                    w.text.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn count_line(&mut self, c: char) {
        if c == '\n' {
            self.line += 1;
        }
    }

    /// The text up to the `)` that closes an opened `(`, quotes respected.
    fn until_close_paren(&mut self) -> String {
        let mut depth = 1;
        let mut out = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek(0) {
            self.i += 1;
            self.count_line(c);
            match (quote, c) {
                (Some(q), _) if c == q => quote = None,
                (Some('"'), '\\') => {
                    out.push(c);
                    if let Some(n) = self.peek(0) {
                        self.i += 1;
                        out.push(n);
                    }
                    continue;
                }
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '(') => depth += 1,
                (None, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        return out;
                    }
                }
                _ => {}
            }
            out.push(c);
        }
        out
    }

    fn until_backtick(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek(0) {
            self.i += 1;
            self.count_line(c);
            if c == '`' {
                break;
            }
            if c == '\\' && self.peek(0) == Some('`') {
                self.i += 1;
                out.push('`');
                continue;
            }
            out.push(c);
        }
        out
    }
}

// ------------------------------------------------------------------ commands

#[derive(Debug, Default)]
struct Cmd {
    words: Vec<Word>,
    /// (operator, target) of each redirection.
    redirs: Vec<(&'static str, Word)>,
    /// Code in substitutions anywhere in the command (assignments included).
    subs: Vec<(String, usize)>,
    line: usize,
    pipeline: usize,
    /// Index of the newline token that ends the command's line.
    line_end_token: usize,
}

impl Cmd {
    fn name(&self) -> &str {
        self.words.first().map_or("", |w| basename(&w.text))
    }

    fn args(&self) -> &[Word] {
        self.words.get(1..).unwrap_or(&[])
    }
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

const RESERVED: [&str; 14] = [
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac",
    "function",
];

/// Simple commands with their redirections, grouped into pipelines.
fn commands(tokens: &[Tok]) -> Vec<Cmd> {
    let mut out = Vec::new();
    let mut cur = Cmd::default();
    let mut pipeline = 0;
    let mut k = 0;
    while k < tokens.len() {
        match &tokens[k] {
            Tok::Word(w) if cur.words.is_empty() && RESERVED.contains(&w.text.as_str()) => {}
            Tok::Word(w) => {
                if cur.words.is_empty() {
                    cur.line = w.line;
                }
                cur.words.push(w.clone());
            }
            Tok::Op(op @ (">" | ">>" | ">|" | "&>" | "&>>" | "<>" | "<" | ">&" | "<&" | "<<<")) => {
                if let Some(Tok::Word(t)) = tokens.get(k + 1) {
                    cur.redirs.push((op, t.clone()));
                    k += 1;
                }
            }
            Tok::Op("<<" | "<<-") => {}
            Tok::Op("|" | "|&") => {
                finish(&mut cur, pipeline, tokens, k, &mut out);
            }
            Tok::Op(_) | Tok::Newline => {
                finish(&mut cur, pipeline, tokens, k, &mut out);
                pipeline += 1;
            }
        }
        k += 1;
    }
    finish(&mut cur, pipeline, tokens, k, &mut out);
    out
}

fn finish(cur: &mut Cmd, pipeline: usize, tokens: &[Tok], at: usize, out: &mut Vec<Cmd>) {
    let mut c = std::mem::take(cur);
    if c.words.is_empty() && c.redirs.is_empty() {
        return;
    }
    c.pipeline = pipeline;
    c.subs = c
        .words
        .iter()
        .chain(c.redirs.iter().map(|(_, w)| w))
        .flat_map(|w| w.subs.iter().cloned())
        .collect();
    c.line_end_token = (at..tokens.len())
        .find(|k| matches!(tokens[*k], Tok::Newline))
        .unwrap_or(tokens.len());
    unwrap_command(&mut c.words);
    out.push(c);
}

/// Drops leading assignments and the programs that only run another (`sudo rm`),
/// so that the first word is the command that does the work.
fn unwrap_command(words: &mut Vec<Word>) {
    loop {
        let Some(first) = words.first() else { return };
        let t = first.text.as_str();
        let is_assignment = t.split_once('=').is_some_and(|(n, _)| {
            !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
        let skip = if is_assignment {
            1
        } else {
            match basename(t) {
                "sudo" | "doas" | "env" | "nohup" | "time" | "exec" | "command" | "builtin"
                | "nice" | "ionice" | "stdbuf" | "busybox" | "setsid" => {
                    1 + options_of(&words[1..], basename(t))
                }
                "timeout" => {
                    let opts = options_of(&words[1..], "timeout");
                    2 + opts
                }
                _ => return,
            }
        };
        words.drain(..skip.min(words.len()));
    }
}

/// How many words after a wrapper are its own options (and their values).
fn options_of(rest: &[Word], wrapper: &str) -> usize {
    let takes_value = |o: &str| match wrapper {
        "sudo" | "doas" => matches!(o, "-u" | "-g" | "-C" | "-D" | "-h" | "-p" | "-r" | "-t"),
        "env" => matches!(o, "-u" | "-C" | "-S"),
        "nice" => o == "-n",
        "ionice" => matches!(o, "-c" | "-n" | "-p"),
        "timeout" => matches!(o, "-s" | "-k"),
        _ => false,
    };
    let mut n = 0;
    while let Some(w) = rest.get(n) {
        let t = w.text.as_str();
        let assignment = wrapper == "env" && t.contains('=') && !t.starts_with('-');
        if !(t.starts_with('-') || assignment) || t == "-" {
            break;
        }
        n += 1 + usize::from(takes_value(t));
    }
    n
}

// --------------------------------------------------------------------- rules

const SHELLS: [&str; 9] = [
    "sh", "bash", "dash", "zsh", "ksh", "ash", "python", "python3", "perl",
];
const FETCHERS: [&str; 4] = ["curl", "wget", "fetch", "busybox-wget"];

fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name)
}

const DEVICE_WRITE: (&str, &str) = ("device_write", "写入磁盘设备 (/dev/sd*, /dev/mmcblk* ...)");
const SHUTDOWN: (&str, &str) = ("shutdown", "关机或重启控制器");

fn rules(c: &Cmd, depth: usize, out: &mut Found) {
    let (name, args) = (c.name(), c.args());
    if let Some((rule, message)) = command_rule(name, args) {
        out.push((c.line, rule, message));
    }
    let writes_device = c.redirs.iter().any(|(op, t)| {
        matches!(*op, ">" | ">>" | ">|" | "&>" | "&>>" | "<>") && block_device(&t.text)
    });
    if writes_device {
        out.push((c.line, DEVICE_WRITE.0, DEVICE_WRITE.1));
    }
    // Code handed to a shell as text is read as code too.
    if name == "eval" {
        let code: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
        scan(&code.join(" "), c.line, depth + 1, out);
    } else if is_shell(name) || name == "su" {
        let code = args
            .iter()
            .position(|a| a.text == "-c")
            .and_then(|k| args.get(k + 1));
        if let Some(code) = code {
            scan(&code.text, code.line, depth + 1, out);
        }
    }
}

/// The rule a command breaks by its name and arguments, if any.
fn command_rule(name: &str, args: &[Word]) -> Option<(&'static str, &'static str)> {
    let any = |f: &dyn Fn(&str) -> bool| args.iter().any(|a| f(&a.text));
    let recursive = || has_flag(args, 'r', "--recursive") || has_flag(args, 'R', "--recursive");
    match name {
        "rm" if recursive() && any(&|t| t == "--no-preserve-root" || critical(t)) => {
            Some(("rm_root", "递归删除根目录、系统目录或主目录 (rm -r)"))
        }
        _ if name.starts_with("mkfs") || matches!(name, "mke2fs" | "wipefs" | "mkswap") => {
            Some(("mkfs", "格式化文件系统或擦除磁盘签名 (mkfs)"))
        }
        "dd" if any(&|t| t.strip_prefix("of=").is_some_and(device_target)) => {
            Some(("dd_device", "dd 写入设备文件 (dd of=/dev/...)"))
        }
        "shutdown" | "reboot" | "poweroff" | "halt" => Some(SHUTDOWN),
        "init" | "telinit" if any(&|t| matches!(t, "0" | "6")) => Some(SHUTDOWN),
        "systemctl"
            if any(&|t| {
                matches!(
                    t,
                    "poweroff" | "reboot" | "halt" | "kexec" | "emergency" | "rescue"
                )
            }) =>
        {
            Some(SHUTDOWN)
        }
        "chmod" | "chown" | "chgrp"
            if (has_flag(args, 'R', "--recursive") && any(&|t| critical(t)))
                || any(&|t| t == "/") =>
        {
            Some((
                "chmod_root",
                "修改根目录或系统目录的权限/属主 (chmod -R ... /)",
            ))
        }
        "tee" | "shred" if any(&block_device) => Some(DEVICE_WRITE),
        "cp" | "mv" | "install" if args.last().is_some_and(|a| block_device(&a.text)) => {
            Some(DEVICE_WRITE)
        }
        _ => None,
    }
}

/// `-r`, `-rf`, `-fR`, `--recursive`: short flags may be combined.
fn has_flag(args: &[Word], short: char, long: &str) -> bool {
    args.iter().any(|a| {
        let t = a.text.as_str();
        t == long || (t.starts_with('-') && !t.starts_with("--") && t[1..].contains(short))
    })
}

const SYSTEM_DIRS: [&str; 19] = [
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "media", "mnt", "opt", "proc",
    "root", "run", "sbin", "srv", "sys", "usr", "var",
];

/// `/`, `/*`, a top-level system directory, the home directory, or a path that
/// becomes `/` when its variable is empty (`"$DIR/"*`, unless `${DIR:?}`).
fn critical(path: &str) -> bool {
    let p = path.trim_end_matches('*');
    let p = if p.len() > 1 {
        p.trim_end_matches('/')
    } else {
        p
    };
    if matches!(p, "/" | "/." | "~" | "$HOME" | "${HOME}") || p.is_empty() && path == "*" {
        return path != "*";
    }
    if let Some(top) = p.strip_prefix('/') {
        let top = top.trim_start_matches('/');
        return top.is_empty() || SYSTEM_DIRS.contains(&top);
    }
    empty_variable_prefix(path)
}

fn empty_variable_prefix(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('$') else {
        return false;
    };
    let (var, after) = match rest.strip_prefix('{') {
        Some(r) => match r.split_once('}') {
            Some((v, a)) => (v, a),
            None => return false,
        },
        None => {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        }
    };
    !var.contains(":?") && matches!(after, "/" | "/*")
}

/// A disk or memory device: writing to it destroys a file system or the kernel.
fn block_device(path: &str) -> bool {
    const PREFIXES: [&str; 13] = [
        "/dev/sd",
        "/dev/hd",
        "/dev/vd",
        "/dev/xvd",
        "/dev/nvme",
        "/dev/mmcblk",
        "/dev/md",
        "/dev/dm-",
        "/dev/mapper/",
        "/dev/disk/",
        "/dev/mtd",
        "/dev/loop",
        "/dev/ubi",
    ];
    PREFIXES.iter().any(|p| path.starts_with(p))
        || matches!(path, "/dev/mem" | "/dev/kmem" | "/dev/port")
}

/// `dd of=` a device other than the harmless ones (null, terminals, descriptors).
fn device_target(path: &str) -> bool {
    const HARMLESS: [&str; 9] = [
        "/dev/null",
        "/dev/zero",
        "/dev/stdout",
        "/dev/stderr",
        "/dev/tty",
        "/dev/fd/",
        "/dev/pts/",
        "/dev/shm/",
        "/dev/ttyS",
    ];
    path.starts_with("/dev/") && !HARMLESS.iter().any(|h| path.starts_with(h))
}

/// `curl ... | sh`, `wget -O- ... | bash`, `bash <(curl ...)`, `sh -c "$(curl ...)"`.
fn pipes_to_shell(cmds: &[Cmd], out: &mut Found) {
    for (k, c) in cmds.iter().enumerate() {
        let name = c.name();
        if !(is_shell(name) || name == "source" || name == ".") {
            continue;
        }
        let piped = cmds[..k]
            .iter()
            .any(|p| p.pipeline == c.pipeline && FETCHERS.contains(&p.name()));
        let substituted = c.subs.iter().any(|(sub, _)| {
            let cmds = commands(&Lexer::new(sub, 1).run().tokens);
            cmds.iter().any(|s| FETCHERS.contains(&s.name()))
        });
        if piped || substituted {
            out.push((
                c.line,
                "pipe_to_shell",
                "下载的内容直接交给解释器执行 (curl ... | sh)",
            ));
        }
    }
}

/// `name(){ name|name& }`, e.g. `:(){ :|:& };:`: a function that starts two
/// copies of itself in the background.
fn fork_bombs(tokens: &[Tok], out: &mut Found) {
    let word = |k: usize| match tokens.get(k) {
        Some(Tok::Word(w)) => Some(w),
        _ => None,
    };
    let op = |k: usize, o: &str| matches!(tokens.get(k), Some(Tok::Op(x)) if *x == o);
    for k in 0..tokens.len() {
        let Some(name) = word(k) else { continue };
        if !(op(k + 1, "(") && op(k + 2, ")")) {
            continue;
        }
        let n = name.text.as_str();
        let mut j = k + 3;
        while let Some(t) = tokens.get(j) {
            if let Tok::Word(w) = t {
                let w1 = w.text.trim_start_matches('{');
                let calls_itself_twice = w1 == n
                    && op(j + 1, "|")
                    && word(j + 2).is_some_and(|w2| w2.text == n)
                    && op(j + 3, "&");
                if calls_itself_twice {
                    out.push((name.line, "fork_bomb", "fork 炸弹: 函数无限复制自身"));
                    break;
                }
                if w.text.ends_with('}') {
                    break;
                }
            }
            j += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(code: &str) -> Vec<(usize, &'static str)> {
        check(code).into_iter().map(|f| (f.line, f.rule)).collect()
    }

    #[test]
    fn each_pattern_is_found_with_its_line() {
        let cases = [
            ("rm -rf /", "rm_root"),
            ("sudo rm -fr /*", "rm_root"),
            ("rm -r --no-preserve-root /", "rm_root"),
            ("rm -Rf /etc", "rm_root"),
            ("rm -rf \"$TARGET/\"*", "rm_root"),
            ("rm -rf ~", "rm_root"),
            ("mkfs.ext4 /dev/sda1", "mkfs"),
            ("/sbin/mkfs -t vfat /dev/mmcblk0p1", "mkfs"),
            ("dd if=/dev/zero of=/dev/sda bs=1M", "dd_device"),
            ("dd if=image.img of=/dev/mmcblk0", "dd_device"),
            (":(){ :|:& };:", "fork_bomb"),
            ("bomb() { bomb | bomb & }; bomb", "fork_bomb"),
            ("curl -fsSL http://x/install.sh | sh", "pipe_to_shell"),
            ("wget -qO- http://x | sudo bash -s", "pipe_to_shell"),
            ("bash <(curl -s http://x)", "pipe_to_shell"),
            ("sh -c \"$(curl -fsSL http://x)\"", "pipe_to_shell"),
            ("shutdown -h now", "shutdown"),
            ("systemctl reboot", "shutdown"),
            ("init 0", "shutdown"),
            ("chmod -R 777 /", "chmod_root"),
            ("chown -R nobody /usr", "chmod_root"),
            ("echo x > /dev/sda", "device_write"),
            ("cat image > /dev/mmcblk0", "device_write"),
            ("echo 1 | tee /dev/sdb", "device_write"),
            ("cp disk.img /dev/nvme0n1", "device_write"),
        ];
        for (code, rule) in cases {
            let text = format!("echo start\n{code}\necho end\n");
            assert_eq!(rules_of(&text), vec![(2, rule)], "{code}");
        }
    }

    #[test]
    fn look_alikes_are_harmless() {
        let harmless = [
            "rm -rf ./build",
            "rm -rf build/ /tmp/job-cache",
            "rm -f /var/log/app/old.log",
            "rm -rf \"${WORK:?}/\"*",
            "echo \"mkfs\"",
            "echo 'rm -rf /'",
            "# rm -rf /",
            "echo done # shutdown later",
            "grep shutdown /var/log/syslog",
            "dd if=/dev/zero of=./disk.img bs=1M count=1",
            "dd if=/dev/sda of=/dev/null",
            "cat /dev/sda | md5sum",
            "cp /dev/sda backup.img",
            "curl -o install.sh http://x/install.sh",
            "chmod -R 755 ./dist",
            "systemctl status nginx",
            "shutdown_pump() { echo off; }",
            "echo > /dev/null",
            "printf '%s\\n' \":(){ :|:& };:\" > notes.txt",
            "cat <<EOF\nrm -rf /\nEOF",
        ];
        for code in harmless {
            let found = rules_of(code);
            assert!(found.is_empty(), "{code}: {found:?}");
        }
    }

    #[test]
    fn code_inside_code_is_read_too() {
        assert_eq!(rules_of("bash -c \"rm -rf /\""), vec![(1, "rm_root")]);
        assert_eq!(rules_of("echo \"$(rm -rf /)\""), vec![(1, "rm_root")]);
        assert_eq!(rules_of("x=`mkfs /dev/sdb`"), vec![(1, "mkfs")]);
        assert_eq!(rules_of("eval \"shutdown now\""), vec![(1, "shutdown")]);
        assert_eq!(
            rules_of("echo a\nbash <<'EOF'\necho b\nrm -rf /\nEOF\necho c"),
            vec![(4, "rm_root")]
        );
        assert_eq!(
            rules_of("rm -rf \\\n  /"),
            vec![(1, "rm_root")],
            "a continued line is one command"
        );
    }
}
