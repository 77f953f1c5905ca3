//! The operator's secret policy, when validation knows it (`quorate validate
//! --secrets-dir/--secret-env-prefix`, and every commit `quorate run` considers): each
//! secret reference of the specs must be one the policy allows. The same check runs again
//! at the moment of use ([`SecretPolicy::resolve`]), whether validation knew the policy
//! or not.

use super::Findings;
use crate::diag::Diagnostic;
use crate::secret::{PolicyError, SecretPolicy};
use crate::spec::bundle::EnvValue;
use crate::spec::{Kind, SpecSet};

/// Reports every secret reference outside `policy`, at the reference.
pub(super) fn check(set: &SpecSet, policy: &SecretPolicy, f: &mut Findings) {
    for (name, fence) in &set.fences {
        if let Err(e) = policy.check(&fence.ipmi.password) {
            f.push(
                finding("the BMC password", &e, policy),
                Kind::Fence,
                name.as_str(),
                "spec.ipmi.password",
            );
        }
    }
    for (name, bundle) in &set.bundles {
        for (var, value) in &bundle.env {
            let EnvValue::Secret(reference) = value else {
                continue;
            };
            if let Err(e) = policy.check(reference) {
                f.push(
                    finding(&format!("environment variable `{var}`"), &e, policy),
                    Kind::Bundle,
                    name.as_str(),
                    &format!("spec.env.{var}"),
                );
            }
        }
    }
}

/// The finding for `what`, whose reference `e` refuses. Names the reference and the
/// policy; a reference is never a value (inline values are not references).
fn finding(what: &str, e: &PolicyError, policy: &SecretPolicy) -> Diagnostic {
    let fix = match e {
        PolicyError::EnvPrefix { prefix, .. } => {
            format!("name a variable that starts with `{prefix}`")
        }
        _ => match &policy.dir {
            Some(dir) => format!(
                "put the secret in a file inside {} and reference that file",
                dir.display()
            ),
            None => "reference an environment variable instead".to_owned(),
        },
    };
    Diagnostic::error(
        "quorate::secret::outside-policy",
        format!("{what}: {e}"),
    )
    .with_help(format!(
        "the operator allows {}: {fix}, or ask the operator to change --secrets-dir / --secret-env-prefix",
        policy.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Sources;

    const SPECS: &str = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes: [{name: n1, runtime: 'podman+unix:///run/n1.sock'}]
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f}
spec:
  targets: [n1]
  ipmi: {address: b, username: u, password: {fromFile: /etc/shadow}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: web}
spec:
  image: x
  env:
    OK: {fromEnv: QUORATE_SECRET_OK}
    LEAK: {fromEnv: QUORATE_TOKEN}
";

    #[test]
    fn references_outside_are_located_errors_naming_the_policy() {
        let mut sources = Sources::new();
        sources.add("s.yaml", SPECS.as_bytes().to_vec());
        let policy = SecretPolicy::default();
        let r = crate::validate::validate_with(&sources, Some(&policy));
        let found: Vec<_> = r
            .diagnostics
            .iter()
            .filter(|d| d.code == "quorate::secret::outside-policy")
            .map(|d| {
                let at = d.location.and_then(|l| l.span).map(|s| (s.line, s.column));
                (d.message.clone(), d.help.clone().unwrap_or_default(), at)
            })
            .collect();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].0.contains("the BMC password: file /etc/shadow"),
            "{found:?}"
        );
        assert!(
            found[0].1.contains("files inside /etc/quorate/secrets"),
            "{found:?}"
        );
        assert_eq!(found[0].2, Some((12, 45)));
        assert!(
            found[1].0.contains("`LEAK`: env QUORATE_TOKEN"),
            "{found:?}"
        );
        assert!(
            found[1].1.contains("starts with `QUORATE_SECRET_`"),
            "{found:?}"
        );
        assert_eq!(found[1].2, Some((21, 11)));
        assert!(r.valid_set().is_none());
        // Without the policy the same set is valid: the check at use still refuses them.
        let r = crate::validate::validate(&sources);
        assert!(r.valid_set().is_some(), "{:?}", r.diagnostics);
    }
}
