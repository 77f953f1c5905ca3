//! The git webhook, `POST /hooks/git`: a forge says a branch was pushed, quorate fetches.
//!
//! [`verify`] is pure: headers, body and secret in; the pushed branch or a typed
//! [`Refusal`] out. It checks the signature before it reads the body:
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
//! - Gitea (and Forgejo): `X-Gitea-Signature: <hex HMAC-SHA256 of the body>`;
//! - GitLab: `X-Gitlab-Token: <the secret itself>`.
//!
//! Comparisons take the same time wherever the inputs differ: HMACs through
//! [`Mac::verify_slice`], the GitLab token by comparing SHA-256 digests with `subtle`, so
//! neither its bytes nor its length leak. The secret is read from its file at each request
//! (so it can be rotated without a restart) and never logged (design invariant 7).
//! A webhook only makes quorate fetch sooner: what is applied is still what the fetch
//! finds and validation accepts, so a forged request can do no more than cause a fetch.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::watch::FetchHandle;
use crate::secret::{Secret, SecretRef};

/// The forge that sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub (or anything signing like it).
    GitHub,
    /// Gitea or Forgejo.
    Gitea,
    /// GitLab.
    GitLab,
}

impl Provider {
    /// Lower-case name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::GitLab => "gitlab",
        }
    }
}

/// A delivery whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Who sent it.
    pub provider: Provider,
    /// What it says.
    pub event: Event,
}

/// What a verified delivery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A branch was pushed (created, moved or deleted).
    Push {
        /// The branch name (`main` for `refs/heads/main`).
        branch: String,
        /// The new head, when the payload gives it.
        after: Option<String>,
    },
    /// Anything else (a ping, a tag push, an issue event), by its event name.
    Other(String),
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No signature or token header at all.
    #[error(
        "the request carries no signature (X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token)"
    )]
    Unsigned,
    /// The signature header is not of the expected form.
    #[error("the {0} signature header is malformed")]
    Malformed(&'static str),
    /// The signature or token does not match the secret.
    #[error("the {0} signature does not match")]
    Mismatch(&'static str),
    /// Signed, but the body is not the push payload it claims to be.
    #[error("the payload is not a valid push event: {0}")]
    BadPayload(String),
}

/// Verifies a delivery from `headers` and `body` with `secret`, then reads what it says.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &Secret) -> Result<Delivery, Refusal> {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let provider = if let Some(token) = header("x-gitlab-token") {
        let same: bool = Sha256::digest(token)
            .ct_eq(&Sha256::digest(secret.expose()))
            .into();
        if !same {
            return Err(Refusal::Mismatch("X-Gitlab-Token"));
        }
        Provider::GitLab
    } else if let Some(sig) = header("x-gitea-signature") {
        check_hmac(sig, body, secret, "X-Gitea-Signature")?;
        Provider::Gitea
    } else if let Some(sig) = header("x-hub-signature-256") {
        let hex = sig
            .strip_prefix(b"sha256=")
            .ok_or(Refusal::Malformed("X-Hub-Signature-256"))?;
        check_hmac(hex, body, secret, "X-Hub-Signature-256")?;
        Provider::GitHub
    } else {
        return Err(Refusal::Unsigned);
    };
    let event_header = match provider {
        Provider::GitHub => "x-github-event",
        Provider::Gitea => "x-gitea-event",
        Provider::GitLab => "x-gitlab-event",
    };
    let name = headers
        .get(event_header)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("push")
        .to_owned();
    let is_push = matches!(name.as_str(), "push" | "Push Hook");
    let event = if is_push {
        push_event(body)?
    } else {
        Event::Other(name)
    };
    Ok(Delivery { provider, event })
}

fn check_hmac(
    hex: &[u8],
    body: &[u8],
    secret: &Secret,
    header: &'static str,
) -> Result<(), Refusal> {
    let given = decode_hex(hex).ok_or(Refusal::Malformed(header))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose()).map_err(|_| Refusal::Mismatch(header))?;
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| Refusal::Mismatch(header))
}

/// Decodes 64 hex digits (a SHA-256 output); anything else is `None`.
fn decode_hex(digits: &[u8]) -> Option<Vec<u8>> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out.to_vec())
}

/// The `ref` and `after` of a push payload (the same fields at all three forges).
fn push_event(body: &[u8]) -> Result<Event, Refusal> {
    #[derive(serde::Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        reference: String,
        after: Option<String>,
    }
    let push: Push =
        serde_json::from_slice(body).map_err(|e| Refusal::BadPayload(e.to_string()))?;
    Ok(match push.reference.strip_prefix("refs/heads/") {
        Some(branch) => Event::Push {
            branch: branch.to_owned(),
            after: push.after,
        },
        None => Event::Other(format!("push of {}", push.reference)),
    })
}

/// What the webhook handler needs.
#[derive(Debug, Clone)]
pub struct HookState {
    /// The shared secret (a file reference; read at each request).
    pub secret: SecretRef,
    /// The branch quorate follows; pushes to others are acknowledged and ignored.
    pub branch: String,
    /// Asks the source to fetch.
    pub fetch: FetchHandle,
}

/// A router serving `POST /hooks/git`; merge it into the server's router.
pub fn router(state: HookState) -> Router {
    Router::new()
        .route("/hooks/git", post(handle))
        .with_state(state)
}

/// The handler of `POST /hooks/git`: 202 when a fetch was asked for, 200 for deliveries
/// that need none, 401 for a bad signature, 400 for a bad payload.
pub async fn handle(State(st): State<HookState>, headers: HeaderMap, body: Bytes) -> Response {
    let reference = st.secret.clone();
    let secret = match tokio::task::spawn_blocking(move || reference.read()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the webhook secret cannot be read");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the webhook secret cannot be read\n",
            )
                .into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let delivery = match verify(&headers, &body, &secret) {
        Ok(d) => d,
        Err(refusal) => {
            tracing::warn!(%refusal, "webhook refused");
            let status = match refusal {
                Refusal::BadPayload(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            };
            return (status, format!("{refusal}\n")).into_response();
        }
    };
    drop(secret);
    match delivery.event {
        Event::Push { branch, after } if branch == st.branch => {
            tracing::info!(provider = delivery.provider.as_str(), %branch, after = after.as_deref().unwrap_or(""), "webhook: push");
            if st.fetch.fetch_now() {
                (StatusCode::ACCEPTED, "fetching\n").into_response()
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the git source has stopped\n",
                )
                    .into_response()
            }
        }
        Event::Push { branch, .. } => (
            StatusCode::OK,
            format!("ignored: quorate follows {}, not {branch}\n", st.branch),
        )
            .into_response(),
        Event::Other(name) => (StatusCode::OK, format!("ignored: {name}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn github_documented_example_signature() {
        // The example from GitHub's "Validating webhook deliveries".
        let secret = Secret::new(b"It's a Secret to Everybody".to_vec());
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let h = headers(&[("x-hub-signature-256", sig), ("x-github-event", "ping")]);
        let d = verify(&h, b"Hello, World!", &secret).unwrap();
        assert_eq!(d.provider, Provider::GitHub);
        assert_eq!(d.event, Event::Other("ping".into()));
        let e = verify(&h, b"Hello, World?", &secret).unwrap_err();
        assert_eq!(e, Refusal::Mismatch("X-Hub-Signature-256"));
    }

    #[test]
    fn malformed_and_missing_signatures_are_refused() {
        let secret = Secret::new(b"s".to_vec());
        let e = verify(
            &headers(&[("x-hub-signature-256", "sha1=00")]),
            b"{}",
            &secret,
        );
        assert_eq!(e, Err(Refusal::Malformed("X-Hub-Signature-256")));
        let e = verify(&headers(&[("x-gitea-signature", "zz")]), b"{}", &secret);
        assert_eq!(e, Err(Refusal::Malformed("X-Gitea-Signature")));
        let e = verify(&headers(&[("x-github-event", "push")]), b"{}", &secret);
        assert_eq!(e, Err(Refusal::Unsigned));
    }

    #[test]
    fn hex_decoding_is_strict() {
        assert_eq!(decode_hex(&[b'a'; 64]).map(|v| v.len()), Some(32));
        assert!(decode_hex(&[b'a'; 63]).is_none());
        assert!(decode_hex(&[b'g'; 64]).is_none());
    }
}
