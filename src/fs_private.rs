//! Writing files only the owner can read (root key, bootstrap credentials, CLI token).

use std::{io, io::Write, path::Path};

/// Creates (or truncates) `path` with mode 0600 and writes `contents`; parent folders are created.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    open_private(path, false)?.write_all(contents)
}

/// Like [`write_private`], and the contents are on disk when it returns (for key files, which must survive a
/// crash right after they are written).
pub fn write_private_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = open_private(path, false)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Like [`write_private_synced`], but fails with `AlreadyExists` instead of replacing an existing file.
pub fn create_private_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = open_private(path, true)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Opens `path` for writing with mode 0600: a new file only when `new`, else created or truncated.
fn open_private(path: &Path, new: bool) -> io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // A symlink planted at the path would send the secret elsewhere (and chmod that file): refused.
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        let file = options.open(path)?;
        // The mode above applies only when the file is new; make an existing file private too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// Renames `from` over `to` (atomically: a reader sees the old or the new file, never a mix) and makes the
/// rename durable.
pub fn replace_synced(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_parent(to)
}

/// Makes the directory entry of `path` (a new name, a rename) durable by syncing its folder.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
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
        Ok((mode & 0o077 != 0).then_some(mode))
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
