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
