//! The Landlock ruleset of a script worker: which files it may read or write and
//! which TCP ports it may reach, plus the scopes that keep its signals and
//! abstract-socket connections inside its own domain.

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope,
    path_beneath_rules,
};
use vwed_ipc::NetworkGrant;

/// The newest ABI whose rights this code was written and tested against; rights a
/// later kernel adds are not handled (so not denied) until they are added here.
const ABI_TESTED: ABI = ABI::V7;

/// What each group of paths may do.
pub struct Paths {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
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

/// Restricts the calling thread (and what it starts later) to `paths` and `net`.
pub fn restrict(paths: &Paths, net: &NetworkGrant) -> Result<Outcome, RulesetError> {
    let abi = kernel_abi();
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
        .add_rules(path_beneath_rules(&paths.write, write_rights()))?
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
    let status = ruleset.restrict_self()?;
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
