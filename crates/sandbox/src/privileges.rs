//! Privileges a worker gives up before the script runs: new privileges through
//! exec, and every capability (a worker of a runtime running as root is root too,
//! and root's capabilities would let it renice itself, trace, mount or bypass
//! file permissions).

use std::io;

/// `PR_SET_NO_NEW_PRIVS`: required by seccomp and Landlock for an unprivileged
/// caller, and it keeps anything the process might exec from gaining privileges.
pub fn no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS only sets a flag on this thread.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;
/// Capability numbers are below 64 for a long time to come; the kernel says EINVAL
/// for the ones it does not know, which ends the loop early.
const CAP_NUMBERS: libc::c_ulong = 64;

/// Empties the bounding, ambient, inheritable, permitted and effective sets.
/// Without CAP_SETPCAP (a non-root runtime) the bounding set is left as it is,
/// which is fine: such a process has no capabilities to lose. System calls only,
/// nothing allocated: safe between fork and exec.
pub fn drop_capabilities() -> io::Result<()> {
    drop_bounding_set();
    // SAFETY: prctl(PR_CAP_AMBIENT) on this thread only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads one header and two data structs (version 3 layout).
    let r = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if has_capabilities()? {
        // Capabilities still present after capset; no message, as that would allocate.
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}

/// Empties the bounding set (what exec could ever grant), which takes
/// CAP_SETPCAP: before a change of user, which loses it.
pub fn drop_bounding_set() {
    for cap in 0..CAP_NUMBERS {
        // SAFETY: prctl(PR_CAPBSET_DROP) on this thread only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            break;
        }
    }
}

fn has_capabilities() -> io::Result<bool> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two data structs (version 3 layout) into `data`.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data.iter().any(|d| d.effective != 0 || d.permitted != 0))
}

/// Threads of this process. Landlock and capabilities apply per thread, so they are
/// complete only when the worker is still single-threaded (it is, before `boot()`,
/// unless something started a thread early).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count)
}

/// Makes this process `uid`/`gid` for good (real, effective and saved ids), with
/// no supplementary groups. Called as root, after [`drop_bounding_set`]; what
/// capabilities the change leaves are dropped by [`drop_capabilities`] afterwards. Raw system calls, so that
/// it is safe between fork and exec (libc's wrappers synchronise threads).
pub fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    let check = |r: libc::c_long| {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: credential system calls on this process, integer arguments only.
    unsafe {
        check(libc::syscall(
            libc::SYS_setgroups,
            0,
            std::ptr::null::<libc::gid_t>(),
        ))?;
        check(libc::syscall(libc::SYS_setresgid, gid, gid, gid))?;
        check(libc::syscall(libc::SYS_setresuid, uid, uid, uid))?;
    }
    Ok(())
}
