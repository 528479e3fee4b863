//! The file a backup or a restore writes: created under a temporary name beside its
//! destination, owner-only (it holds hashed secrets and license data), and renamed into place
//! only once complete, so a reader never sees half a file and a failure leaves nothing.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A new, empty file beside `target` that becomes `target` on [`Staged::place`] and is
/// removed when dropped unplaced.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    placed: bool,
}

impl Staged {
    /// Creates `.NAME.tmp-RANDOM` beside `target` (mode 0600, never an existing file).
    pub(crate) fn beside(target: &Path) -> io::Result<(Self, File)> {
        let dir = parent_of(target);
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{} names no file", target.display())))?;
        let mut nonce = [0u8; 6];
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut nonce)
            .map_err(io::Error::other)?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            hex::encode(nonce)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&tmp)?;
        Ok((
            Self {
                tmp,
                target: target.to_owned(),
                placed: false,
            },
            file,
        ))
    }

    /// Renames the (complete, closed) file to its target, replacing what was there, and
    /// syncs the directory so the rename survives a crash.
    pub(crate) fn place(mut self) -> io::Result<()> {
        std::fs::rename(&self.tmp, &self.target)?;
        self.placed = true;
        sync_dir(parent_of(&self.target))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes the directory entries of `dir` (a rename) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_staged_file_is_private_and_vanishes_unless_placed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("backup.redb");
        let (staged, _file) = Staged::beside(&target).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let tmp = std::fs::read_dir(dir.path())
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
            assert_eq!(tmp.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let (staged, _file) = Staged::beside(&target).unwrap();
        staged.place().unwrap();
        assert!(target.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
