//! Which secret references a spec may use: the operator's [`SecretPolicy`].
//!
//! Whoever can push to the spec repository is not the operator of the reconciler. Without
//! a policy, a pushed `fromFile: /etc/shadow` or `fromEnv: ANY_VAR` would copy any file or
//! variable of the reconciler's host into a container the pusher defines. The operator
//! therefore names one directory that `fromFile` references must stay inside (after
//! symlinks are resolved) and a prefix that `fromEnv` names must start with; quorate's own
//! credential files are refused even inside that directory.
//!
//! [`SecretPolicy::check`] is pure and lexical (validation, where the policy is known);
//! [`SecretPolicy::resolve`] is the check at the moment of use, which also resolves
//! symlinks, and is always applied before a spec's secret is read.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::SecretRef;

/// The secrets directory when the operator names none.
pub const DEFAULT_SECRETS_DIR: &str = "/etc/quorate/secrets";
/// The prefix of environment variables specs may name when the operator names none.
pub const DEFAULT_ENV_PREFIX: &str = "QUORATE_SECRET_";

/// The secret references a spec may use. Holds paths and a prefix, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPolicy {
    /// The directory `fromFile` references must be inside; a relative path is taken
    /// relative to it. `None`: specs may not reference files at all.
    pub dir: Option<PathBuf>,
    /// The prefix every `fromEnv` name must start with (empty: any variable).
    pub env_prefix: String,
    /// Files refused even inside `dir`: quorate's own credentials (as given and resolved).
    denied: Vec<PathBuf>,
    /// For references the operator wrote (flags, the lab's own files): no limit.
    unrestricted: bool,
}

impl Default for SecretPolicy {
    /// Files in [`DEFAULT_SECRETS_DIR`], variables starting with [`DEFAULT_ENV_PREFIX`].
    fn default() -> Self {
        SecretPolicy::new(Some(DEFAULT_SECRETS_DIR.into()), DEFAULT_ENV_PREFIX)
    }
}

/// Why a reference is outside the policy. Names the reference and the policy, never a
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A `fromEnv` name without the allowed prefix.
    #[error(
        "env {name} is outside the secret policy: variables must start with `{prefix}` (--secret-env-prefix)"
    )]
    EnvPrefix {
        /// The variable named.
        name: String,
        /// The prefix allowed.
        prefix: String,
    },
    /// A `fromFile` reference while the policy allows no files.
    #[error(
        "file {path} is outside the secret policy: no secrets directory is configured (--secrets-dir)"
    )]
    NoFiles {
        /// The path named.
        path: PathBuf,
    },
    /// A `fromFile` path that is not inside the secrets directory, by its text
    /// (absolute elsewhere, or with `..`).
    #[error(
        "file {path} is outside the secret policy: secret files must be inside {dir} (--secrets-dir), named without `..`"
    )]
    OutsideDir {
        /// The path named.
        path: PathBuf,
        /// The secrets directory.
        dir: PathBuf,
    },
    /// A `fromFile` path inside the directory by its text whose symlinks lead out of it.
    #[error(
        "file {path} is outside the secret policy: it is a symlink (or under one) that leaves {dir} (--secrets-dir)"
    )]
    LeavesDir {
        /// The path named.
        path: PathBuf,
        /// The secrets directory.
        dir: PathBuf,
    },
    /// One of quorate's own credential files (its token, webhook secret, git credentials).
    #[error("file {path} is outside the secret policy: it holds one of quorate's own credentials")]
    Denied {
        /// The path named.
        path: PathBuf,
    },
    /// The file or the directory could not be resolved (missing, no permission).
    #[error("file {path} cannot be checked against the secret policy: {reason}")]
    Unresolvable {
        /// The path named.
        path: PathBuf,
        /// Why (an I/O error kind, never content).
        reason: String,
    },
}

impl SecretPolicy {
    /// Files inside `dir` (none when `None`), variables starting with `env_prefix`.
    pub fn new(dir: Option<PathBuf>, env_prefix: impl Into<String>) -> Self {
        SecretPolicy {
            dir,
            env_prefix: env_prefix.into(),
            denied: Vec::new(),
            unrestricted: false,
        }
    }

    /// No limit: only for references the operator wrote (command-line flags, the lab's own
    /// password file, tests), never for references taken from specs.
    pub fn unrestricted() -> Self {
        SecretPolicy {
            unrestricted: true,
            ..SecretPolicy::new(None, "")
        }
    }

    /// Whether this is the no-limit policy of operator references.
    pub fn is_unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// Refuses `path` even inside the directory: one of quorate's own credential files.
    /// Kept as given and, when it exists, resolved.
    pub fn deny(mut self, path: &Path) -> Self {
        self.denied.push(path.to_path_buf());
        if let Ok(real) = std::fs::canonicalize(path) {
            self.denied.push(real);
        }
        self
    }

    /// The policy in words, for help lines: `files in DIR, variables starting with P`.
    pub fn describe(&self) -> String {
        if self.unrestricted {
            return "no limit (operator references)".into();
        }
        let files = match &self.dir {
            Some(d) => format!("files inside {}", d.display()),
            None => "no files".into(),
        };
        let vars = if self.env_prefix.is_empty() {
            "any environment variable".to_owned()
        } else {
            format!("environment variables starting with `{}`", self.env_prefix)
        };
        format!("{files}, {vars}")
    }

    /// Whether `reference` is allowed by its text alone (pure: validation uses it).
    /// An inline value is not a reference and is left to its own check.
    pub fn check(&self, reference: &SecretRef) -> Result<(), PolicyError> {
        if self.unrestricted {
            return Ok(());
        }
        match reference {
            SecretRef::Inline => Ok(()),
            SecretRef::FromEnv(name) if name.starts_with(&self.env_prefix) => Ok(()),
            SecretRef::FromEnv(name) => Err(PolicyError::EnvPrefix {
                name: name.clone(),
                prefix: self.env_prefix.clone(),
            }),
            SecretRef::FromFile(path) => self.lexical_path(path).map(|_| ()),
        }
    }

    /// The reference to read now: `reference` checked ([`SecretPolicy::check`]) and, for a
    /// file, resolved against the directory with every symlink followed, refused if that
    /// leaves the directory or is one of quorate's own credential files. Does I/O (it
    /// resolves paths): call it just before reading, off the async threads.
    pub fn resolve(&self, reference: &SecretRef) -> Result<SecretRef, PolicyError> {
        self.check(reference)?;
        let SecretRef::FromFile(path) = reference else {
            return Ok(reference.clone());
        };
        if self.unrestricted {
            return Ok(reference.clone());
        }
        let (full, dir) = self.lexical_path(path)?;
        let unresolvable = |e: std::io::Error| PolicyError::Unresolvable {
            path: path.clone(),
            reason: e.kind().to_string(),
        };
        let real_dir = std::fs::canonicalize(dir).map_err(unresolvable)?;
        let real = std::fs::canonicalize(&full).map_err(unresolvable)?;
        if real == real_dir || !real.starts_with(&real_dir) {
            return Err(PolicyError::LeavesDir {
                path: path.clone(),
                dir: dir.to_path_buf(),
            });
        }
        if self.denied.iter().any(|d| *d == real || *d == full) {
            return Err(PolicyError::Denied { path: path.clone() });
        }
        Ok(SecretRef::FromFile(real))
    }

    /// `path` inside the directory by its text: relative (joined to the directory) or
    /// absolute under it, and without `..`. Returns the full path and the directory.
    fn lexical_path<'a>(&'a self, path: &Path) -> Result<(PathBuf, &'a Path), PolicyError> {
        let Some(dir) = self.dir.as_deref() else {
            return Err(PolicyError::NoFiles {
                path: path.to_path_buf(),
            });
        };
        let outside = || PolicyError::OutsideDir {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        };
        if path.as_os_str().is_empty()
            || path.components().any(|c| c == Component::ParentDir)
            || dir.components().any(|c| c == Component::ParentDir)
        {
            return Err(outside());
        }
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.join(path)
        };
        if !full.starts_with(dir) || full.components().count() <= dir.components().count() {
            return Err(outside());
        }
        Ok((full, dir))
    }
}

impl fmt::Display for SecretPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn env(name: &str) -> SecretRef {
        SecretRef::FromEnv(name.into())
    }

    fn file(path: impl Into<PathBuf>) -> SecretRef {
        SecretRef::FromFile(path.into())
    }

    #[test]
    fn the_defaults_are_a_directory_and_a_prefix() {
        let p = SecretPolicy::default();
        assert_eq!(p.dir.as_deref(), Some(Path::new("/etc/quorate/secrets")));
        assert_eq!(p.env_prefix, "QUORATE_SECRET_");
        assert_eq!(p.check(&env("QUORATE_SECRET_DB")), Ok(()));
        assert_eq!(p.check(&file("/etc/quorate/secrets/bmc")), Ok(()));
        assert_eq!(p.check(&file("bmc")), Ok(()), "relative to the directory");
        assert_eq!(p.check(&SecretRef::Inline), Ok(()), "checked elsewhere");
    }

    #[test]
    fn references_outside_are_refused_by_their_text() {
        let p = SecretPolicy::default();
        for (r, want) in [
            (env("PATH"), "variables must start with `QUORATE_SECRET_`"),
            (env("quorate_secret_x"), "QUORATE_SECRET_"),
            (file("/etc/shadow"), "must be inside /etc/quorate/secrets"),
            (file("/etc/quorate/secrets/../token"), "without `..`"),
            (file("../token"), "without `..`"),
            (file("/etc/quorate/secrets"), "must be inside"),
            (file("/etc/quorate/secretsX/a"), "must be inside"),
            (file(""), "must be inside"),
        ] {
            let e = p.check(&r).expect_err(&format!("{r:?}"));
            assert!(e.to_string().contains(want), "{r:?}: {e}");
            assert!(e.to_string().contains("secret policy"), "{e}");
        }
        let none = SecretPolicy::new(None, "");
        assert_eq!(none.check(&env("ANY")), Ok(()));
        assert!(matches!(
            none.check(&file("/etc/quorate/secrets/x")),
            Err(PolicyError::NoFiles { .. })
        ));
        assert_eq!(
            SecretPolicy::unrestricted().check(&file("/etc/shadow")),
            Ok(())
        );
    }

    #[test]
    fn resolution_follows_symlinks_and_refuses_those_that_leave() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("secrets");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("pw"), "a").unwrap();
        std::fs::write(root.path().join("token"), "t").unwrap();
        symlink(dir.join("pw"), dir.join("alias")).unwrap();
        symlink(root.path().join("token"), dir.join("escape")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        symlink(root.path(), dir.join("sub/up")).unwrap();
        let p = SecretPolicy::new(Some(dir.clone()), "QUORATE_SECRET_");
        let real_pw = std::fs::canonicalize(dir.join("pw")).unwrap();
        assert_eq!(p.resolve(&file("pw")), Ok(file(&real_pw)));
        assert_eq!(p.resolve(&file(dir.join("alias"))), Ok(file(&real_pw)));
        for r in [file("escape"), file("sub/up/token")] {
            assert!(
                matches!(p.resolve(&r), Err(PolicyError::LeavesDir { .. })),
                "{r:?}"
            );
        }
        assert!(matches!(
            p.resolve(&file("missing")),
            Err(PolicyError::Unresolvable { .. })
        ));
        assert_eq!(
            p.resolve(&env("QUORATE_SECRET_A")),
            Ok(env("QUORATE_SECRET_A"))
        );
        assert!(p.resolve(&env("HOME")).is_err());
    }

    #[test]
    fn quorate_s_own_credentials_are_refused_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t").unwrap();
        std::fs::write(dir.path().join("bmc"), "b").unwrap();
        symlink(dir.path().join("token"), dir.path().join("alias")).unwrap();
        let p = SecretPolicy::new(Some(dir.path().into()), "").deny(&dir.path().join("token"));
        for name in ["token", "alias"] {
            assert_eq!(
                p.resolve(&file(name)),
                Err(PolicyError::Denied { path: name.into() }),
                "{name}"
            );
        }
        assert!(p.resolve(&file("bmc")).is_ok());
    }
}
