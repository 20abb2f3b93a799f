//! A small classic-BPF assembler for seccomp filters: straight-line code whose
//! jumps go forward to named labels, resolved to the 8-bit offsets BPF wants.

use libc::sock_filter;

/// A jump target; `Label::NEXT` is the following instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(u16);

impl Label {
    pub const NEXT: Label = Label(u16::MAX);
}

#[derive(Debug, Clone, Copy)]
enum Item {
    /// An instruction without jumps (load, ALU, return).
    Plain {
        code: u16,
        k: u32,
    },
    /// A conditional jump on the accumulator against `k`.
    Cond {
        code: u16,
        k: u32,
        then: Label,
        other: Label,
    },
    /// An unconditional jump.
    Always(Label),
    Mark(Label),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AsmError {
    #[error("label {0} is used but never placed")]
    Unplaced(u16),
    #[error("jump to label {0} goes backwards or too far")]
    TooFar(u16),
}

/// Offsets into `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

#[derive(Default)]
pub struct Asm {
    items: Vec<Item>,
    labels: u16,
}

impl Asm {
    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    pub fn place(&mut self, l: Label) {
        self.items.push(Item::Mark(l));
    }

    fn plain(&mut self, code: u32, k: u32) {
        // BPF opcodes fit in 16 bits by definition.
        self.items.push(Item::Plain {
            code: code as u16,
            k,
        });
    }

    pub fn load_nr(&mut self) {
        self.plain(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR);
    }

    pub fn load_arch(&mut self) {
        self.plain(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARCH);
    }

    /// The low 32 bits of argument `i`: all an `int` argument (pid, domain, flags
    /// word) is made of, since the kernel truncates it.
    pub fn load_arg_low(&mut self, i: u32) {
        let low = if cfg!(target_endian = "little") { 0 } else { 4 };
        self.plain(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            ARGS + 8 * i + low,
        );
    }

    pub fn and(&mut self, mask: u32) {
        self.plain(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, mask);
    }

    pub fn ret(&mut self, action: u32) {
        self.plain(libc::BPF_RET | libc::BPF_K, action);
    }

    pub fn jeq(&mut self, k: u32, then: Label, other: Label) {
        self.items.push(Item::Cond {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            k,
            then,
            other,
        });
    }

    /// Only x86_64 needs it (to refuse x32 syscall numbers).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn jge(&mut self, k: u32, then: Label, other: Label) {
        self.items.push(Item::Cond {
            code: (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16,
            k,
            then,
            other,
        });
    }

    pub fn jump(&mut self, to: Label) {
        self.items.push(Item::Always(to));
    }

    /// The program, with every label turned into a relative offset.
    pub fn finish(self) -> Result<Vec<sock_filter>, AsmError> {
        let mut at = vec![None; usize::from(self.labels)];
        let mut n = 0u32;
        for item in &self.items {
            match item {
                Item::Mark(l) => at[usize::from(l.0)] = Some(n),
                _ => n += 1,
            }
        }
        let offset = |from: u32, l: Label| -> Result<u32, AsmError> {
            if l == Label::NEXT {
                return Ok(0);
            }
            let target = at
                .get(usize::from(l.0))
                .copied()
                .flatten()
                .ok_or(AsmError::Unplaced(l.0))?;
            target.checked_sub(from + 1).ok_or(AsmError::TooFar(l.0))
        };
        let short = |from: u32, l: Label| -> Result<u8, AsmError> {
            u8::try_from(offset(from, l)?).map_err(|_| AsmError::TooFar(l.0))
        };
        let mut out = Vec::with_capacity(n as usize);
        for item in self.items {
            let i = out.len() as u32;
            let ins = match item {
                Item::Mark(_) => continue,
                Item::Plain { code, k } => sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                },
                Item::Cond {
                    code,
                    k,
                    then,
                    other,
                } => sock_filter {
                    code,
                    jt: short(i, then)?,
                    jf: short(i, other)?,
                    k,
                },
                Item::Always(to) => sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JA) as u16,
                    jt: 0,
                    jf: 0,
                    k: offset(i, to)?,
                },
            };
            out.push(ins);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_forward_offsets() {
        let mut a = Asm::default();
        let yes = a.label();
        let no = a.label();
        a.load_nr();
        a.jeq(7, yes, Label::NEXT);
        a.jump(no);
        a.place(yes);
        a.ret(1);
        a.place(no);
        a.ret(2);
        let p = a.finish().expect("assembles");
        assert_eq!(p.len(), 5);
        assert_eq!((p[1].jt, p[1].jf), (1, 0));
        assert_eq!(p[2].k, 1);
    }

    #[test]
    fn a_backward_or_unplaced_label_is_refused() {
        let mut a = Asm::default();
        let back = a.label();
        a.place(back);
        a.load_nr();
        a.jump(back);
        assert_eq!(a.finish().expect_err("refused"), AsmError::TooFar(0));
        let mut a = Asm::default();
        let nowhere = a.label();
        a.jump(nowhere);
        assert_eq!(a.finish().expect_err("refused"), AsmError::Unplaced(0));
    }
}
