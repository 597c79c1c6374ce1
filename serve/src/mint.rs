//! Fresh join credentials, minted in the cluster with admin credentials, so a
//! document handed out today never carries a token that expired yesterday.
//!
//! - [`bootstrap_token`]: the `bootstrap-token-<id>` Secret in kube-system, as
//!   `kubeadm token create` writes it (usages authentication and signing, the
//!   kubeadm node group, an expiration); the controller manager's bootstrapsigner
//!   then signs `cluster-info` for it and its tokencleaner deletes it when expired.
//! - [`upload_certs`]: the cluster certificates sealed with a fresh certificate key
//!   into `kube-system/kubeadm-certs`, as `kubeadm init phase upload-certs` does
//!   (AES-256-GCM, nonce prepended, `etcd/ca.crt` → `etcd-ca.crt`), owned by a
//!   short-lived token Secret so the garbage collector removes both at expiry,
//!   plus kubeadm's Role and RoleBinding that let joining nodes read it.
//!
//! Secrets here are `SecretString`s: never logged, never in `Debug`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::Api;
use secrecy::{ExposeSecret, SecretString};

use kubeboot_kube::client::describe;
use kubeboot_kube::replace::uploaded_certs::{self, SECRET as CERTS_SECRET};

const NAMESPACE: &str = "kube-system";
/// kubeadm's group for tokens that join nodes (`kubeadm token create`'s default).
pub const NODE_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// kubeadm's names for the RBAC that lets that group read the uploaded certificates.
const CERTS_ROLE: &str = "kubeadm:kubeadm-certs";
const FIELD_MANAGER: &str = "kubeboot-serve";

/// The files `kubeadm init phase upload-certs` uploads, by kubeadm file name.
/// The etcd CA is only there with stacked etcd; the external etcd's CA and
/// client pair (kubeadm's names for them in the Secret) only with external etcd.
pub const UPLOADED_FILES: [&str; 11] = [
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "sa.key",
    "sa.pub",
    "etcd/ca.crt",
    "etcd/ca.key",
    "external-etcd-ca.crt",
    "external-etcd.crt",
    "external-etcd.key",
];

/// Whether an uploaded file belongs to one etcd topology only (and may be absent).
pub fn topology_specific(name: &str) -> bool {
    name.starts_with("etcd/") || name.starts_with("external-etcd")
}

/// A bootstrap token made for one request.
pub struct MintedToken {
    pub id: String,
    /// `<id>.<secret>`.
    pub token: SecretString,
    pub expires: DateTime<Utc>,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("id", &self.id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// What a token may do, as the Secret's `usage-bootstrap-*` keys say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Usage {
    /// Authenticate joins and sign cluster-info: what a node's token needs.
    Join,
    /// Nothing: only an owner whose expiry removes what it owns.
    ExpiryOnly,
}

/// Create a bootstrap token Secret valid for `ttl`.
pub async fn bootstrap_token(
    admin: &kube::Client,
    ttl: Duration,
    usage: Usage,
    description: &str,
) -> Result<(MintedToken, Secret), String> {
    let token = SecretString::from(crate::bundle::secrets::new_bootstrap_token());
    let (id, secret) = token
        .expose_secret()
        .split_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or("internal error: a generated token has no '.'")?;
    let expires =
        Utc::now() + chrono::Duration::from_std(ttl).map_err(|e| format!("token TTL: {e}"))?;
    let mut data = BTreeMap::from([
        ("token-id".to_string(), id.clone()),
        ("token-secret".to_string(), secret),
        (
            "expiration".to_string(),
            expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        ("description".to_string(), description.to_string()),
    ]);
    if usage == Usage::Join {
        data.insert("usage-bootstrap-authentication".into(), "true".into());
        data.insert("usage-bootstrap-signing".into(), "true".into());
        data.insert("auth-extra-groups".into(), NODE_GROUP.into());
    }
    let object = Secret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        string_data: Some(data),
        ..Secret::default()
    };
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NAMESPACE);
    let created = secrets
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| {
            format!(
                "create bootstrap token {id} in {NAMESPACE}: {}",
                describe(&e)
            )
        })?;
    Ok((MintedToken { id, token, expires }, created))
}

/// Delete bootstrap token `id`'s Secret; one already gone is fine.
pub async fn delete_bootstrap_token(admin: &kube::Client, id: &str) -> Result<(), String> {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NAMESPACE);
    let name = format!("bootstrap-token-{id}");
    match secrets
        .delete(&name, &kube::api::DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(format!("delete {NAMESPACE}/{name}: {}", describe(&e))),
    }
}

/// A certificate key just uploaded, and until when the upload lives.
#[derive(Clone)]
pub struct UploadedKey {
    pub key: SecretString,
    pub expires: DateTime<Utc>,
}

impl std::fmt::Debug for UploadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadedKey")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Seal `files` (kubeadm file name → PEM) under a fresh key and write them to
/// `kube-system/kubeadm-certs`, replacing what was there, for `ttl`.
pub async fn upload_certs(
    admin: &kube::Client,
    files: &BTreeMap<String, SecretString>,
    ttl: Duration,
) -> Result<UploadedKey, String> {
    let (owner, owner_secret) = bootstrap_token(
        admin,
        ttl,
        Usage::ExpiryOnly,
        "Proxy for managing TTL for the kubeadm-certs secret (kubeboot serve)",
    )
    .await?;
    match seal_and_upload(admin, files, &owner, owner_secret).await {
        Ok(key_hex) => Ok(UploadedKey {
            key: SecretString::from(key_hex),
            expires: owner.expires,
        }),
        Err(e) => {
            // The owner token was made for this upload only: it goes with it.
            let deleted = tokio::time::timeout(
                std::time::Duration::from_secs(15),
                delete_bootstrap_token(admin, &owner.id),
            )
            .await;
            if !matches!(deleted, Ok(Ok(()))) {
                tracing::warn!(
                    "the upload's owner token {} is left until it expires ({})",
                    owner.id,
                    owner
                        .expires
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            Err(e)
        }
    }
}

/// The sealed certificates in kubeadm-certs, owned by `owner`, and the RBAC to
/// read them: the certificate key (hex).
async fn seal_and_upload(
    admin: &kube::Client,
    files: &BTreeMap<String, SecretString>,
    owner: &MintedToken,
    owner_secret: Secret,
) -> Result<String, String> {
    let key_hex = crate::bundle::secrets::new_certificate_key();
    let data: BTreeMap<String, ByteString> =
        uploaded_certs::seal_files(files, &SecretString::from(key_hex.clone()))?
            .into_iter()
            .map(|(name, sealed)| (name, ByteString(sealed)))
            .collect();
    let uid = owner_secret
        .metadata
        .uid
        .ok_or("the API server returned the owner token Secret without a uid")?;
    let object = Secret {
        metadata: ObjectMeta {
            name: Some(CERTS_SECRET.into()),
            namespace: Some(NAMESPACE.into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Secret".into(),
                name: format!("bootstrap-token-{}", owner.id),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    };
    apply(
        &Api::namespaced(admin.clone(), NAMESPACE),
        CERTS_SECRET,
        &object,
    )
    .await?;
    certs_rbac(admin).await?;
    Ok(key_hex)
}

/// The Role and RoleBinding kubeadm makes so joining nodes may GET kubeadm-certs.
async fn certs_rbac(admin: &kube::Client) -> Result<(), String> {
    let role = Role {
        metadata: ObjectMeta {
            name: Some(CERTS_ROLE.into()),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            resource_names: Some(vec![CERTS_SECRET.into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        }]),
    };
    apply(
        &Api::namespaced(admin.clone(), NAMESPACE),
        CERTS_ROLE,
        &role,
    )
    .await?;
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(CERTS_ROLE.into()),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: CERTS_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            name: NODE_GROUP.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    };
    apply(
        &Api::namespaced(admin.clone(), NAMESPACE),
        CERTS_ROLE,
        &binding,
    )
    .await
}

/// Create, or replace what is there whole (a merge would keep kubeadm's owner
/// reference beside ours, and the API server allows only one controller owner).
async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let failed = |e: kube::Error| format!("write {NAMESPACE}/{name}: {}", describe(&e));
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.get_opt(name).await.map_err(failed)? {
        None => api
            .create(&params, object)
            .await
            .map(|_| ())
            .map_err(failed),
        Some(existing) => {
            let mut object = object.clone();
            object.meta_mut().resource_version = existing.meta().resource_version.clone();
            api.replace(name, &params, &object)
                .await
                .map(|_| ())
                .map_err(failed)
        }
    }
}

/// The files to upload, read from a bundle's (or kubeadm's) `pki/` directory.
/// The etcd files are optional (one topology's or the other's); everything else must be there.
pub fn read_pki(pki: &std::path::Path) -> Result<BTreeMap<String, SecretString>, String> {
    let mut files = BTreeMap::new();
    for name in UPLOADED_FILES {
        let path = pki.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                files.insert(name.to_string(), SecretString::from(text));
            }
            Err(_) if topology_specific(name) => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secrets() {
        let t = MintedToken {
            id: "abcdef".into(),
            token: SecretString::from("abcdef.0123456789abcdef"),
            expires: Utc::now(),
        };
        let k = UploadedKey {
            key: SecretString::from("f".repeat(64)),
            expires: Utc::now(),
        };
        let shown = format!("{t:?} {k:?}");
        assert!(
            !shown.contains("0123456789abcdef") && !shown.contains("ffff"),
            "{shown}"
        );
        assert!(shown.contains("abcdef"));
    }
}
