//! The Landlock ruleset of a script worker or a shell job: which files it may
//! read, run or write and which TCP ports it may reach, plus the scopes that keep
//! its signals and abstract-socket connections inside its own domain.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope,
    path_beneath_rules,
};
use vwed_ipc::NetworkGrant;

/// The newest ABI whose rights this code was written and tested against; rights a
/// later kernel adds are not handled (so not denied) until they are added here.
const ABI_TESTED: ABI = ABI::V7;

/// What each group of paths may do.
#[derive(Debug, Default)]
pub struct Paths {
    pub read: Vec<PathBuf>,
    /// Read and run programs from (a shell job's system directories).
    pub exec: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    /// Written, and programs run from, FIFOs made in: a shell job's own folder.
    pub workspace: Vec<PathBuf>,
    /// Devices read and written without owning them (`/dev/null`).
    pub devices: Vec<PathBuf>,
}

/// What Landlock put in force.
pub struct Outcome {
    /// The kernel's Landlock ABI, 0 when it has none.
    pub abi: i32,
    /// TCP ports are limited (ABI 4 and later).
    pub tcp: bool,
    /// Signals and abstract sockets are scoped (ABI 6 and later).
    pub scoped: bool,
}

fn read_rights() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir
}

/// Everything a scratch folder needs; no execution, devices, sockets or FIFOs.
fn write_rights() -> BitFlags<AccessFs> {
    read_rights()
        | AccessFs::WriteFile
        | AccessFs::RemoveDir
        | AccessFs::RemoveFile
        | AccessFs::MakeDir
        | AccessFs::MakeReg
        | AccessFs::MakeSym
        | AccessFs::Refer
        | AccessFs::Truncate
}

/// The kernel's Landlock ABI version, 0 without Landlock.
pub fn kernel_abi() -> i32 {
    // SAFETY: with a null attribute and the VERSION flag the call only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// The ruleset for `paths` and `net`, not yet in force.
fn create(paths: &Paths, net: &NetworkGrant) -> Result<RulesetCreated, RulesetError> {
    let mut net_rights = BitFlags::<AccessNet>::EMPTY | AccessNet::BindTcp;
    if !net.any_tcp {
        net_rights |= AccessNet::ConnectTcp;
    }
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_TESTED))?
        .handle_access(net_rights)?
        .scope(Scope::from_all(ABI_TESTED))?
        .create()?
        .add_rules(path_beneath_rules(&paths.read, read_rights()))?
        .add_rules(path_beneath_rules(
            &paths.exec,
            read_rights() | AccessFs::Execute,
        ))?
        .add_rules(path_beneath_rules(&paths.write, write_rights()))?
        .add_rules(path_beneath_rules(
            &paths.workspace,
            write_rights() | AccessFs::Execute | AccessFs::MakeFifo,
        ))?
        .add_rules(path_beneath_rules(
            &paths.devices,
            AccessFs::ReadFile | AccessFs::WriteFile,
        ))?;
    for &port in &net.connect_tcp {
        ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
    }
    for &port in &net.bind_tcp {
        ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::BindTcp))?;
    }
    Ok(ruleset)
}

/// Restricts the calling thread (and what it starts later) to `paths` and `net`.
pub fn restrict(paths: &Paths, net: &NetworkGrant) -> Result<Outcome, RulesetError> {
    let abi = kernel_abi();
    let status = create(paths, net)?.restrict_self()?;
    let effective = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi,
        _ => ABI::Unsupported,
    };
    Ok(Outcome {
        abi,
        tcp: status.ruleset != RulesetStatus::NotEnforced && effective >= ABI::V4,
        scoped: status.ruleset != RulesetStatus::NotEnforced && effective >= ABI::V6,
    })
}

/// A ruleset for a process still to be started: its descriptor (`None` without
/// Landlock), which the child puts in force with [`restrict_self_raw`], and what
/// it will enforce there.
pub fn prepare(
    paths: &Paths,
    net: &NetworkGrant,
) -> Result<(Option<OwnedFd>, Outcome), RulesetError> {
    let abi = kernel_abi();
    let fd: Option<OwnedFd> = create(paths, net)?.into();
    let on = fd.is_some();
    let outcome = Outcome {
        abi: if on { abi } else { 0 },
        tcp: on && abi >= 4,
        scoped: on && abi >= 6,
    };
    Ok((fd, outcome))
}

/// `landlock_restrict_self(2)` on a prepared ruleset: a single system call, safe
/// between fork and exec. no_new_privs must already be set.
pub fn restrict_self_raw(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY: the call reads nothing but its two integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
