//! Credentials for fetching from ssh and https remotes.
//!
//! ssh: a private key file, or else the ssh agent (`SSH_AUTH_SOCK`). The server's host key
//! must be known: by default libgit2 checks `~/.ssh/known_hosts` of the user quorate runs
//! as; [`Credentials::ssh_known_hosts`] pins the keys from another file instead.
//! https: an access token read from a file (or variable) at each fetch, sent as the
//! password of [`Credentials::https_user`]. Nothing here is logged, and the token is
//! wiped from quorate's memory after use (design invariant 7).

use std::path::{Path, PathBuf};

use base64::Engine;
use git2::cert::Cert;
use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

use crate::secret::SecretRef;

/// How quorate authenticates to a remote repository. The default sends nothing, which is
/// right for local paths, `file://`, `git://` and public https remotes.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Private key for ssh remotes (unencrypted, readable by quorate only). Without it the
    /// ssh agent is asked.
    pub ssh_key: Option<PathBuf>,
    /// A known_hosts file (OpenSSH format, plain host names) whose keys are the only ones
    /// accepted for ssh remotes. Without it, libgit2 checks `~/.ssh/known_hosts`.
    pub ssh_known_hosts: Option<PathBuf>,
    /// The access token for https remotes (`fromFile: /etc/quorate/git-token`).
    pub https_token: Option<SecretRef>,
    /// The user name sent with the token: the one in the URL when absent, else `git`.
    /// (GitHub and Gitea accept any name with a token; GitLab wants `oauth2` for OAuth
    /// tokens and any name for personal or deploy tokens.)
    pub https_user: Option<String>,
}

/// libgit2 asks again after every refusal; give up after this many answers.
const MAX_TRIES: u32 = 3;

impl Credentials {
    /// Callbacks answering libgit2's requests for credentials and host key checks.
    /// `ssh_host` is the remote's name as known_hosts writes it (`name`, or `[name]:port`
    /// for another port than 22), for ssh remotes.
    pub(super) fn callbacks(&self, ssh_host: Option<String>) -> RemoteCallbacks<'_> {
        let mut cb = RemoteCallbacks::new();
        let mut tries = 0u32;
        cb.credentials(move |_url, user_from_url, allowed| {
            tries += 1;
            if tries > MAX_TRIES {
                return Err(git2::Error::from_str(
                    "authentication failed (the remote refused the credentials)",
                ));
            }
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(user_from_url.unwrap_or("git"));
            }
            if allowed.contains(CredentialType::SSH_KEY) {
                let user = user_from_url.unwrap_or("git");
                return match &self.ssh_key {
                    Some(key) => Cred::ssh_key(user, None, key, None),
                    None => Cred::ssh_key_from_agent(user),
                };
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                let Some(token) = &self.https_token else {
                    return Err(git2::Error::from_str(
                        "the remote asks for credentials; give quorate an https token file",
                    ));
                };
                let secret = token
                    .read()
                    .map_err(|e| git2::Error::from_str(&e.to_string()))?;
                let Some(password) = secret.expose_str() else {
                    return Err(git2::Error::from_str("the https token is not UTF-8"));
                };
                let user = self
                    .https_user
                    .as_deref()
                    .or(user_from_url)
                    .unwrap_or("git");
                return Cred::userpass_plaintext(user, password);
            }
            Err(git2::Error::from_str(
                "the remote asks for a kind of credential quorate does not have",
            ))
        });
        if let (Some(file), Some(host)) = (self.ssh_known_hosts.clone(), ssh_host) {
            cb.certificate_check(move |cert, _| check_host_key(&file, cert, &host));
        }
        cb
    }
}

/// With a pinned known_hosts file, an ssh host key is accepted only when that file lists
/// exactly that key for `host`, and refused otherwise (whatever `~/.ssh/known_hosts`
/// says: pinning never widens what is trusted). TLS certificates are left to libgit2.
fn check_host_key(
    known_hosts: &Path,
    cert: &Cert<'_>,
    host: &str,
) -> Result<CertificateCheckStatus, git2::Error> {
    let Some(key) = cert.as_hostkey().and_then(|k| k.hostkey()) else {
        return Ok(CertificateCheckStatus::CertificatePassthrough);
    };
    let text = std::fs::read_to_string(known_hosts).map_err(|e| {
        git2::Error::from_str(&format!(
            "cannot read the ssh known_hosts file {}: {}",
            known_hosts.display(),
            e.kind()
        ))
    })?;
    if known_keys(&text, host).iter().any(|k| k.as_slice() == key) {
        Ok(CertificateCheckStatus::CertificateOk)
    } else {
        // libgit2 replaces this message with its own ("invalid or unknown remote ssh
        // hostkey"), so say which file was consulted here.
        tracing::warn!(host, file = %known_hosts.display(), "ssh host key not in the pinned known_hosts file");
        Err(git2::Error::from_str(&format!(
            "the ssh host key of {host} is not in {}",
            known_hosts.display()
        )))
    }
}

/// The keys `text` (OpenSSH known_hosts) lists for `host` (`name` or `[name]:port`).
/// Hashed host names and markers (`@revoked`, `@cert-authority`) are not matched.
pub(crate) fn known_keys(text: &str, host: &str) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(_kind), Some(key)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if hosts.split(',').any(|h| h == host)
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(key)
        {
            keys.push(bytes);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_match_plain_and_bracketed_hosts_only() {
        let text = "# comment\n\
                    [127.0.0.1]:2222 ssh-ed25519 AAEC\n\
                    git.example,10.0.0.1 ssh-ed25519 AAED\n\
                    @revoked git.example ssh-ed25519 AAEE\n\
                    |1|hashed= ssh-ed25519 AAEF\n";
        assert_eq!(known_keys(text, "[127.0.0.1]:2222"), vec![vec![0, 1, 2]]);
        assert_eq!(known_keys(text, "git.example"), vec![vec![0, 1, 3]]);
        assert_eq!(known_keys(text, "10.0.0.1"), vec![vec![0, 1, 3]]);
        assert!(known_keys(text, "127.0.0.1").is_empty());
        assert!(known_keys(text, "other").is_empty());
    }
}
