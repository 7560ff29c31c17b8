//! Writing certificate and key files so that a private key is never
//! readable by anyone but its owner, not even for a moment, and so that an
//! existing pair is only replaced when the caller asked for it.
//!
//! Each file is created with `O_CREAT|O_EXCL` and its final mode (keys
//! 0600, certificates 0644 less the umask), so there is no window in which a
//! key exists with looser permissions. A key's mode is then set to exactly
//! 0600 on the open file, in case the umask took the owner's bits away.
//! Refusing to overwrite checks every target before writing any, and
//! removes what it wrote if a later file fails, so a CA or node never ends
//! up with a certificate from one run and a key from another. Replacing
//! writes each file under a temporary name beside the target and renames it
//! over the target (atomic on POSIX file systems).

use std::{
    fs::{self, DirBuilder, File, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use openssl::error::ErrorStack;
use thiserror::Error;

use super::pem::{self, PemError};

/// Mode of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files (public), before the umask.
pub(crate) const CERT_MODE: u32 = 0o644;
/// Mode of directories this module creates: they hold private keys.
const DIR_MODE: u32 = 0o700;

/// What went wrong making, loading or writing certificates.
#[derive(Debug, Error)]
pub enum CertError {
    /// A node name that cannot be a certificate's DNS name or a file name.
    #[error("invalid node name {name:?}: {problem}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A CA name that cannot be a common name.
    #[error("invalid CA name {name:?}: {problem}")]
    InvalidCaName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A validity period that is zero, too long, or not representable.
    #[error("invalid validity: {0}")]
    InvalidValidity(String),
    /// A certificate or key file that cannot be used.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// OpenSSL failed (out of memory, or a bug here).
    #[error("OpenSSL could not {action}: {}", pem::describe(source))]
    OpenSsl {
        /// What was being done.
        action: &'static str,
        /// OpenSSL's errors.
        #[source]
        source: ErrorStack,
    },
    /// A file to write is already there and overwriting was not asked for.
    #[error("{}: already exists; not overwriting it", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Whether writing may replace existing files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Fail with [`CertError::AlreadyExists`] if any target exists; write
    /// nothing then.
    Refuse,
    /// Replace existing files (each atomically, by rename).
    Replace,
}

/// One file to write.
pub(crate) struct NewFile<'a> {
    /// Where.
    pub path: PathBuf,
    /// What.
    pub contents: &'a [u8],
    /// True for private keys: mode exactly [`KEY_MODE`], whatever the umask.
    pub secret: bool,
}

/// Creates `dir` (and its parents) with mode 0700 if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), CertError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| CertError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes every file, all or nothing as far as the file system allows.
pub(crate) fn write_files(files: &[NewFile<'_>], overwrite: Overwrite) -> Result<(), CertError> {
    match overwrite {
        Overwrite::Refuse => write_new_files(files)?,
        Overwrite::Replace => replace_files(files)?,
    }
    // Make the new directory entries durable too; failing that is not worth
    // failing the command for.
    let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.path.parent()).collect();
    dirs.dedup();
    for dir in dirs {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn write_new_files(files: &[NewFile<'_>]) -> Result<(), CertError> {
    for f in files {
        if fs::symlink_metadata(&f.path).is_ok() {
            return Err(CertError::AlreadyExists {
                path: f.path.clone(),
            });
        }
    }
    let mut written: Vec<&Path> = Vec::with_capacity(files.len());
    for f in files {
        if let Err(e) = create_and_write(&f.path, f.contents, f.secret) {
            for path in written {
                let _ = fs::remove_file(path);
            }
            return Err(e);
        }
        written.push(&f.path);
    }
    Ok(())
}

fn replace_files(files: &[NewFile<'_>]) -> Result<(), CertError> {
    let mut temps: Vec<PathBuf> = Vec::with_capacity(files.len());
    let cleanup = |temps: &[PathBuf]| {
        for t in temps {
            let _ = fs::remove_file(t);
        }
    };
    for f in files {
        let temp = temp_path(&f.path);
        if let Err(e) = create_and_write(&temp, f.contents, f.secret) {
            cleanup(&temps);
            return Err(e);
        }
        temps.push(temp);
    }
    for (i, (temp, f)) in temps.iter().zip(files).enumerate() {
        if let Err(source) = fs::rename(temp, &f.path) {
            cleanup(&temps[i..]);
            return Err(CertError::Write {
                path: f.path.clone(),
                source,
            });
        }
    }
    Ok(())
}

/// Creates `path`, which must not exist, with its final mode, and writes
/// `contents` durably. Removes the file again if writing fails.
fn create_and_write(path: &Path, contents: &[u8], secret: bool) -> Result<(), CertError> {
    let write_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            CertError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            CertError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mode = if secret { KEY_MODE } else { CERT_MODE };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write_error)?;
    let result = (|| {
        if secret {
            // The umask can only have removed bits; make it exactly 0600.
            file.set_permissions(Permissions::from_mode(KEY_MODE))?;
        }
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(source) = result {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(write_error(source));
    }
    Ok(())
}

/// A fresh name beside `path`, hidden, that nothing else will pick.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = format!(
        ".{name}.tmp.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    path.with_file_name(unique)
}
