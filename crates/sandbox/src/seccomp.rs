//! The seccomp filters of a script worker and of a shell job. Landlock decides
//! which files and TCP ports a process reaches; this filter decides what kind of
//! thing it may do at all, and holds for C extensions and raw `syscall()` as much
//! as for Python or a shell:
//!
//! - a worker starts no processes (`fork`, `vfork`, `clone` without
//!   `CLONE_THREAD`, `execve`); a shell job starts processes and runs programs,
//!   but makes no namespaces; threads stay allowed; `clone3` says ENOSYS so that
//!   libc falls back to `clone`, whose flags a filter can see;
//! - a worker signals only itself (`kill`, `tgkill`, `rt_*sigqueueinfo` with its
//!   own pid); a shell job's signals are scoped to its own processes by Landlock,
//!   and never reach the supervisor (by pid, by its process group or as `-1`)
//!   even on a kernel without that scope; `tkill` and pidfd signals not at all;
//!   no `ptrace` or other process' memory;
//! - sockets: `socketpair(AF_UNIX)` (asyncio's self-pipe) always; `socket()` only
//!   for TCP/UDP over IPv4/IPv6 when the project is granted it;
//! - nothing that administers the machine (mounts, namespaces, modules, keys,
//!   clocks, BPF, io_uring, which would bypass this filter for its operations).
//!
//! Refusals return EPERM (ENOSYS where libc should fall back), so a script sees a
//! `PermissionError`, never a crash. A syscall of a foreign ABI (32-bit, x32) kills
//! the process: nothing legitimate in a worker makes one.

use libc::{c_long, sock_filter};
use vwed_ipc::NetworkGrant;

use crate::bpf::{Asm, AsmError, Label};

#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// x32 system calls carry this bit and the x86_64 audit arch: checked separately.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

/// What a worker may not do and a shell job must: start programs and processes
/// (`clone` is judged by its flags).
const NEW_PROGRAMS: &[c_long] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_fork,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_vfork,
];

/// Refused outright with EPERM.
const DENIED: &[c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_pidfd_send_signal,
    libc::SYS_process_madvise,
    libc::SYS_tkill,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_fanotify_init,
    libc::SYS_vhangup,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// Refused with ENOSYS: callers fall back to something the filter can judge.
const UNSUPPORTED: &[c_long] = &[
    libc::SYS_clone3,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// Signals whose first argument is the target process (or thread group).
const SIGNALS: &[c_long] = &[
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
];

/// `clone` flags that make new namespaces.
const NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

/// `clone` flags that make something other than a thread of this process.
const NOT_A_THREAD: u32 = libc::CLONE_THREAD as u32 | NAMESPACES;

/// Whom a filter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A script worker whose pid is `pid`: threads only, signals only to itself.
    Worker { pid: u32 },
    /// A shell job: processes and programs, no namespaces; no signal to the
    /// supervisor's pid or process group, nor to every process at once (`-1`).
    Shell {
        supervisor: u32,
        supervisor_group: u32,
    },
}

/// The filter for `profile`, whose project (or jobs) have `net`.
pub fn filter(profile: Profile, net: &NetworkGrant) -> Result<Vec<sock_filter>, AsmError> {
    let mut a = Asm::default();
    let (allow, eperm, enosys, kill) = (a.label(), a.label(), a.label(), a.label());
    let (signal, clone, socket, pair) = (a.label(), a.label(), a.label(), a.label());

    a.load_arch();
    a.jeq(NATIVE_ARCH, Label::NEXT, kill);
    a.load_nr();
    #[cfg(target_arch = "x86_64")]
    a.jge(X32_SYSCALL_BIT, kill, Label::NEXT);
    for &nr in DENIED {
        a.jeq(nr as u32, eperm, Label::NEXT);
    }
    if let Profile::Worker { .. } = profile {
        for &nr in NEW_PROGRAMS {
            a.jeq(nr as u32, eperm, Label::NEXT);
        }
    }
    for &nr in UNSUPPORTED {
        a.jeq(nr as u32, enosys, Label::NEXT);
    }
    for &nr in SIGNALS {
        a.jeq(nr as u32, signal, Label::NEXT);
    }
    a.jeq(libc::SYS_clone as u32, clone, Label::NEXT);
    a.jeq(libc::SYS_socket as u32, socket, Label::NEXT);
    a.jeq(libc::SYS_socketpair as u32, pair, Label::NEXT);
    a.ret(RET_ALLOW);

    a.place(signal);
    a.load_arg_low(0);
    match profile {
        Profile::Worker { pid } => a.jeq(pid, allow, eperm),
        Profile::Shell {
            supervisor,
            supervisor_group,
        } => {
            // A pid is an int: -n is its two's complement in the low 32 bits.
            a.jeq(supervisor, eperm, Label::NEXT);
            // (0 would be the job's own group: never refused.)
            if supervisor_group != 0 {
                a.jeq(supervisor_group.wrapping_neg(), eperm, Label::NEXT);
            }
            a.jeq(u32::MAX, eperm, allow);
        }
    }

    a.place(clone);
    a.load_arg_low(0);
    match profile {
        Profile::Worker { .. } => {
            a.and(NOT_A_THREAD);
            a.jeq(libc::CLONE_THREAD as u32, allow, eperm);
        }
        Profile::Shell { .. } => {
            a.and(NAMESPACES);
            a.jeq(0, allow, eperm);
        }
    }

    a.place(pair);
    a.load_arg_low(0);
    a.jeq(libc::AF_UNIX as u32, allow, eperm);

    a.place(socket);
    sockets(&mut a, net, allow, eperm);

    a.place(allow);
    a.ret(RET_ALLOW);
    a.place(eperm);
    a.ret(errno(libc::EPERM));
    a.place(enosys);
    a.ret(errno(libc::ENOSYS));
    a.place(kill);
    a.ret(RET_KILL);
    a.finish()
}

/// `socket(domain, type, protocol)`: IPv4/IPv6 TCP or UDP as granted, nothing else
/// (no raw, packet, netlink or AF_UNIX sockets, which could reach local services).
fn sockets(a: &mut Asm, net: &NetworkGrant, allow: Label, deny: Label) {
    let (inet, tcp, udp) = (a.label(), a.label(), a.label());
    a.load_arg_low(0);
    a.jeq(libc::AF_INET as u32, inet, Label::NEXT);
    a.jeq(libc::AF_INET6 as u32, inet, deny);
    a.place(inet);
    a.load_arg_low(1);
    // The low bits are the type; SOCK_NONBLOCK and SOCK_CLOEXEC sit above them.
    a.and(0xf);
    if net.tcp() {
        a.jeq(libc::SOCK_STREAM as u32, tcp, Label::NEXT);
    }
    if net.udp {
        a.jeq(libc::SOCK_DGRAM as u32, udp, Label::NEXT);
    }
    a.jump(deny);
    for (label, proto) in [(tcp, libc::IPPROTO_TCP), (udp, libc::IPPROTO_UDP)] {
        a.place(label);
        a.load_arg_low(2);
        a.jeq(0, allow, Label::NEXT);
        a.jeq(proto as u32, allow, deny);
    }
}

/// Puts `prog` in force for every thread of the process (no_new_privs must be set).
pub fn install(prog: &[sock_filter]) -> std::io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| std::io::Error::other("filter too long"))?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel copies the program; `fprog` points into `prog`, alive here.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    match r {
        0 => Ok(()),
        r if r > 0 => Err(std::io::Error::other(format!(
            "thread {r} could not take the filter"
        ))),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Whether the kernel runs seccomp filters that return an errno.
pub fn available() -> bool {
    let action = libc::SECCOMP_RET_ERRNO;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL only reads the u32 it is given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `probe` in a forked child under a worker's filter for `net`; returns
    /// its exit code.
    fn in_filtered_child(net: &NetworkGrant, probe: fn() -> i32) -> i32 {
        // SAFETY: getpid in the child.
        in_child_under(
            net,
            || Profile::Worker {
                pid: unsafe { libc::getpid() } as u32,
            },
            probe,
        )
    }

    /// Runs `probe` in a forked child under the filter `profile` gives there. The
    /// test harness is multi-threaded: the child builds the filter (glibc keeps
    /// malloc usable after fork) and otherwise makes raw syscalls only.
    fn in_child_under(net: &NetworkGrant, profile: fn() -> Profile, probe: fn() -> i32) -> i32 {
        // SAFETY: the child makes raw syscalls only and leaves with _exit.
        unsafe {
            let child = libc::fork();
            assert!(child >= 0, "fork");
            if child == 0 {
                let prog = match filter(profile(), net) {
                    Ok(p) => p,
                    Err(_) => libc::_exit(100),
                };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || install(&prog).is_err()
                {
                    libc::_exit(101);
                }
                libc::_exit(probe());
            }
            let mut status = 0;
            libc::waitpid(child, &mut status, 0);
            assert!(libc::WIFEXITED(status), "child ended by a signal: {status}");
            libc::WEXITSTATUS(status)
        }
    }

    fn refused(r: libc::c_long) -> bool {
        r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }

    #[test]
    fn in_force_the_filter_refuses_processes_foreign_signals_and_sockets() {
        let code = in_filtered_child(&NetworkGrant::default(), || {
            // SAFETY: plain syscalls on this (child) process.
            unsafe {
                let own = libc::getpid() as libc::c_long;
                let checks = [
                    refused(libc::syscall(
                        libc::SYS_socket,
                        libc::AF_INET,
                        libc::SOCK_STREAM,
                        0,
                    )),
                    refused(libc::syscall(
                        libc::SYS_socket,
                        libc::AF_UNIX,
                        libc::SOCK_STREAM,
                        0,
                    )),
                    refused(libc::syscall(
                        libc::SYS_socket,
                        libc::AF_NETLINK,
                        libc::SOCK_RAW,
                        0,
                    )),
                    refused(libc::syscall(libc::SYS_kill, libc::getppid(), 0)),
                    refused(libc::syscall(libc::SYS_kill, -1, 0)),
                    refused(libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0)),
                    refused(libc::syscall(libc::SYS_ptrace, 16, libc::getppid(), 0, 0)),
                    libc::syscall(libc::SYS_kill, own, 0) == 0,
                ];
                let mut fds = [0; 2];
                let pair = libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr());
                let failed = checks.iter().position(|ok| !ok).map_or(0, |i| i + 1);
                if pair != 0 { 20 } else { failed as i32 }
            }
        });
        assert_eq!(code, 0, "check {code} failed (20: socketpair refused)");
    }

    #[test]
    fn a_tcp_grant_opens_tcp_sockets_only() {
        let tcp = NetworkGrant {
            connect_tcp: vec![502],
            ..NetworkGrant::default()
        };
        let code = in_filtered_child(&tcp, || {
            // SAFETY: plain syscalls on this (child) process.
            unsafe {
                let stream = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
                let tcp4 = libc::syscall(libc::SYS_socket, libc::AF_INET, stream, 0) >= 0;
                let tcp6 = libc::syscall(libc::SYS_socket, libc::AF_INET6, stream, 6) >= 0;
                let udp = refused(libc::syscall(
                    libc::SYS_socket,
                    libc::AF_INET,
                    libc::SOCK_DGRAM,
                    0,
                ));
                let sctp = refused(libc::syscall(libc::SYS_socket, libc::AF_INET, stream, 132));
                [tcp4, tcp6, udp, sctp]
                    .iter()
                    .position(|ok| !ok)
                    .map_or(0, |i| i as i32 + 1)
            }
        });
        assert_eq!(code, 0, "check {code} failed");
    }

    #[test]
    fn the_filter_assembles_with_and_without_network() {
        let worker = Profile::Worker { pid: 1234 };
        let none = filter(worker, &NetworkGrant::default()).expect("no network");
        let all = NetworkGrant {
            any_tcp: true,
            udp: true,
            ..NetworkGrant::default()
        };
        let some = filter(worker, &all).expect("tcp and udp");
        let shell = Profile::Shell {
            supervisor: 1,
            supervisor_group: 1,
        };
        let shell = filter(shell, &NetworkGrant::default()).expect("shell");
        assert!(shell.len() < none.len(), "a shell may start programs");
        assert!(some.len() > none.len());
        assert!(none.len() < 4096);
        assert_eq!(none.last().map(|i| i.k), Some(RET_KILL));
    }

    /// Exit code of a grandchild that ran `/bin/true`, or what failed.
    fn run_true() -> i32 {
        // SAFETY: raw syscalls in the (forked, filtered) child; the grandchild
        // execs or leaves with _exit.
        unsafe {
            let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
            if pid < 0 {
                return 30;
            }
            if pid == 0 {
                let path = c"/bin/true";
                let argv = [path.as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null::<libc::c_char>()];
                libc::syscall(
                    libc::SYS_execve,
                    path.as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                );
                libc::_exit(31);
            }
            let mut status = 0;
            libc::waitpid(pid as libc::pid_t, &mut status, 0);
            if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                32
            }
        }
    }

    #[test]
    fn a_shell_starts_programs_but_no_namespaces_and_never_signals_the_supervisor() {
        fn shell() -> Profile {
            // SAFETY: getppid/getpgid in the child.
            let (parent, group) = unsafe { (libc::getppid(), libc::getpgid(libc::getppid())) };
            Profile::Shell {
                supervisor: parent as u32,
                supervisor_group: group as u32,
            }
        }
        let code = in_child_under(&NetworkGrant::default(), shell, || {
            // SAFETY: plain syscalls on this (child) process; signal 0 only probes.
            unsafe {
                let parent = libc::getppid() as libc::c_long;
                let group = libc::getpgid(libc::getppid()) as libc::c_long;
                let checks = [
                    run_true() == 0,
                    refused(libc::syscall(libc::SYS_kill, parent, 0)),
                    refused(libc::syscall(libc::SYS_kill, -group, 0)),
                    refused(libc::syscall(libc::SYS_kill, -1, 0)),
                    refused(libc::syscall(libc::SYS_tgkill, parent, parent, 0)),
                    libc::syscall(libc::SYS_kill, libc::getpid() as libc::c_long, 0) == 0,
                    refused(libc::syscall(
                        libc::SYS_clone,
                        libc::SIGCHLD | libc::CLONE_NEWUSER,
                        0,
                        0,
                        0,
                        0,
                    )),
                    refused(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS)),
                    refused(libc::syscall(libc::SYS_ptrace, 16, parent, 0, 0)),
                    refused(libc::syscall(
                        libc::SYS_socket,
                        libc::AF_INET,
                        libc::SOCK_STREAM,
                        0,
                    )),
                ];
                checks.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 1)
            }
        });
        assert_eq!(code, 0, "check {code} failed");
    }
}
