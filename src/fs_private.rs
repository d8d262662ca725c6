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
