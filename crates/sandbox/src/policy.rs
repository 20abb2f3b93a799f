//! The confinement of one script, sent to its worker with `Boot`: what it may
//! read (its project folder, granted paths), write (its scratch folder, the mail
//! outbox, granted paths) and reach, and what no rule may cover (the data dir,
//! the configuration file).

use std::io;
use std::path::{Path, PathBuf};

use vwed_base::fsio::{Dir, FsError};
use vwed_ipc::SandboxPolicy;

use crate::settings::{ProjectGrant, SandboxSettings};

/// Why a script's confinement could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The data dir itself: its real path, opening it.
    #[error(transparent)]
    DataDir(#[from] io::Error),
    /// A folder below it (the scratch folder, the outbox): missing and not
    /// makeable, or a link.
    #[error(transparent)]
    Folder(#[from] FsError),
}

impl From<PolicyError> for io::Error {
    fn from(e: PolicyError) -> io::Error {
        match e {
            PolicyError::DataDir(e) => e,
            PolicyError::Folder(e) => io::Error::other(e),
        }
    }
}

/// Where a script's folders are: the data dir and the name of the shared outbox
/// of `VWED.mail.send_with_attachment` in it.
#[derive(Debug, Clone, Copy)]
pub struct Folders<'a> {
    pub data_dir: &'a Path,
    pub attachments: &'a str,
}

/// The confinement of a script of `project`; makes its scratch folder and the
/// outbox (through `fsio::Dir`, so a link below the data dir is refused).
pub fn policy(
    settings: &SandboxSettings,
    folders: Folders<'_>,
    project: &str,
) -> Result<SandboxPolicy, PolicyError> {
    let data = std::fs::canonicalize(folders.data_dir)?;
    let root = Dir::open(&data)?;
    root.walk(["scratch", project], true)?;
    root.child(folders.attachments, true)?;
    let scratch = scratch_dir(&data, project);
    let grant = settings.projects.get(project);
    let paths = |f: fn(&ProjectGrant) -> &Vec<PathBuf>| {
        grant
            .map(|g| f(g).iter().map(|p| text(p)).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut read = vec![text(&data.join("projects").join(project))];
    read.extend(paths(|g| &g.read));
    // Opened without following links above, so this is its real path.
    let mut write = vec![text(&data.join(folders.attachments))];
    write.extend(paths(|g| &g.write));
    let mut protect = vec![text(&data)];
    protect.extend(settings.config_file.as_deref().map(text));
    Ok(SandboxPolicy {
        enabled: settings.enabled,
        required: settings.required,
        scratch_dir: text(&scratch),
        read,
        write,
        protect,
        network: settings.network(project),
    })
}

/// `<data-dir>/scratch/<project>`: the one folder a project's scripts may write.
pub fn scratch_dir(data_dir: &Path, project: &str) -> PathBuf {
    data_dir.join("scratch").join(project)
}

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vwed-policy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::canonicalize(&dir).expect("real path")
    }

    #[test]
    fn the_folders_are_made_and_the_data_dir_is_protected() {
        let data = temp("made");
        let folders = Folders {
            data_dir: &data,
            attachments: "attachments",
        };
        let p = policy(&SandboxSettings::default(), folders, "line1").expect("policy");
        assert!(data.join("scratch/line1").is_dir());
        assert!(data.join("attachments").is_dir());
        assert_eq!(p.scratch_dir, text(&data.join("scratch/line1")));
        assert_eq!(p.read, vec![text(&data.join("projects/line1"))]);
        assert_eq!(p.write, vec![text(&data.join("attachments"))]);
        assert_eq!(p.protect, vec![text(&data)]);
        assert!(p.enabled && !p.required);
        let _ = std::fs::remove_dir_all(&data);
    }

    #[test]
    fn a_link_in_place_of_the_scratch_folder_is_refused() {
        let data = temp("link");
        let elsewhere = temp("elsewhere");
        std::fs::create_dir_all(data.join("scratch")).expect("scratch");
        std::os::unix::fs::symlink(&elsewhere, data.join("scratch/line1")).expect("link");
        let folders = Folders {
            data_dir: &data,
            attachments: "attachments",
        };
        let e = policy(&SandboxSettings::default(), folders, "line1").expect_err("refused");
        assert!(matches!(e, PolicyError::Folder(FsError::Link(_))), "{e:?}");
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_dir_all(&elsewhere);
    }
}
