//! Writing files only the owner can read (root key, bootstrap credentials, CLI token).

use std::{io, io::Write, path::Path};

/// Creates (or truncates) `path` with mode 0600 and writes `contents`; parent folders are created.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // The mode above applies only when the file is new; make an existing file private too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        return file.write_all(contents);
    }
    #[cfg(not(unix))]
    options.open(path)?.write_all(contents)
}

/// Creates `dir` (and parents) if missing; a folder created here is readable by its owner only (0700),
/// because it holds the database, the root key and the bootstrap credentials.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes every file and folder this process creates from now on private to its owner (umask 077), so a file
/// written by a library (SQLite's database, WAL and shared-memory files) is never readable by others, whatever
/// umask the process was started with.
pub fn private_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Restricts `path` to its owner (0600) if it exists: files created by an earlier version, or before the umask
/// was set, keep the mode they were created with otherwise.
pub fn restrict_existing(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
    }
    Ok(())
}

/// The permission bits of `dir` if its group or other users may access it (mode & 077 set), for a warning.
pub fn shared_mode(dir: &Path) -> io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        return Ok((mode & 0o077 != 0).then_some(mode));
    }
    #[cfg(not(unix))]
    Ok(None)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn shared_folders_are_reported_and_private_ones_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(shared_mode(dir.path()).unwrap(), Some(0o755));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(shared_mode(dir.path()).unwrap(), None);
    }
}
