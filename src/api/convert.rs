//! Conversions between domain records and protobuf messages, kept together.

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::{
    identity::{ClientSecretRecord, IdentityRecord, MemberRecord, RoleRecord, policy::RawPolicy},
    pb,
    secrets::{
        EnvironmentRecord, FolderRecord, ImportRecord, ProjectRecord, SecretAddress, SecretInput, SecretRecord,
        VersionRecord,
    },
};

/// A protobuf timestamp for a UTC time.
pub fn timestamp(time: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 })
}

impl From<ProjectRecord> for pb::Project {
    fn from(p: ProjectRecord) -> Self {
        Self { id: p.id, org_id: p.org_id, name: p.name, create_time: timestamp(p.created_at) }
    }
}

impl From<EnvironmentRecord> for pb::Environment {
    fn from(e: EnvironmentRecord) -> Self {
        Self {
            id: e.id,
            project_id: e.project_id,
            slug: e.slug,
            name: e.name,
            position: e.position,
            create_time: timestamp(e.created_at),
        }
    }
}

impl From<SecretRecord> for pb::Secret {
    fn from(s: SecretRecord) -> Self {
        Self {
            id: s.id,
            project_id: s.project_id,
            environment: s.environment,
            secret_path: s.path,
            key: s.key,
            value: s.value.map(|v| v.expose().to_owned()).unwrap_or_default(),
            version: s.version as u32,
            comment: s.comment,
            create_time: timestamp(s.created_at),
            update_time: timestamp(s.updated_at),
            imported_from: s
                .imported_from
                .map(|(environment, secret_path)| pb::SecretImportSource { environment, secret_path }),
        }
    }
}

impl From<VersionRecord> for pb::SecretVersion {
    fn from(v: VersionRecord) -> Self {
        Self {
            version: v.version as u32,
            value: v.value.expose().to_owned(),
            comment: v.comment,
            create_time: timestamp(v.created_at),
        }
    }
}

impl From<FolderRecord> for pb::Folder {
    fn from(f: FolderRecord) -> Self {
        Self {
            name: f.name().to_owned(),
            id: f.id,
            environment: f.environment,
            path: f.path,
            create_time: timestamp(f.created_at),
        }
    }
}

impl From<ImportRecord> for pb::SecretImport {
    fn from(i: ImportRecord) -> Self {
        Self {
            id: i.id,
            environment: i.environment,
            secret_path: i.path,
            import_environment: i.import_environment,
            import_path: i.import_path,
            position: i.position,
            create_time: timestamp(i.created_at),
        }
    }
}

impl From<pb::SecretInput> for SecretInput {
    fn from(s: pb::SecretInput) -> Self {
        Self { key: s.key, value: Zeroizing::new(s.value), comment: s.comment }
    }
}

/// Requests that address one secret.
pub trait AddressesSecret {
    /// The secret's address.
    fn address(&self) -> SecretAddress;
}

macro_rules! addresses_secret {
    ($($msg:ty),* $(,)?) => {$(
        impl AddressesSecret for $msg {
            fn address(&self) -> SecretAddress {
                SecretAddress {
                    project_id: self.project_id.clone(),
                    environment: self.environment.clone(),
                    path: self.secret_path.clone(),
                    key: self.key.clone(),
                }
            }
        }
    )*};
}

addresses_secret!(
    pb::CreateSecretRequest,
    pb::GetSecretRequest,
    pb::UpdateSecretRequest,
    pb::DeleteSecretRequest,
    pb::ListSecretVersionsRequest,
    pb::RollbackSecretRequest,
);

impl From<IdentityRecord> for pb::Identity {
    fn from(i: IdentityRecord) -> Self {
        Self {
            id: i.id,
            org_id: i.org_id,
            name: i.name,
            client_id: i.client_id,
            create_time: timestamp(i.created_at),
            org_role: i.org_role.unwrap_or_default(),
        }
    }
}

impl From<MemberRecord> for pb::ProjectMember {
    fn from(m: MemberRecord) -> Self {
        Self {
            identity_id: m.identity_id,
            identity_name: m.identity_name,
            role_id: m.role_id,
            role_name: m.role_name,
            create_time: timestamp(m.created_at),
        }
    }
}

impl From<ClientSecretRecord> for pb::ClientSecretInfo {
    fn from(s: ClientSecretRecord) -> Self {
        Self {
            id: s.id,
            identity_id: s.identity_id,
            description: s.description,
            prefix: s.prefix,
            create_time: timestamp(s.created_at),
            expire_time: s.expires_at.and_then(timestamp),
            max_uses: s.max_uses,
            uses: s.uses,
        }
    }
}

impl From<pb::Policy> for RawPolicy {
    fn from(p: pb::Policy) -> Self {
        let conditions = p.conditions.unwrap_or_default();
        Self {
            subject: p.subject,
            actions: p.actions,
            environments: conditions.environments,
            secret_path: conditions.secret_path,
            event_types: conditions.event_types,
            inverted: p.inverted,
        }
    }
}

impl From<RawPolicy> for pb::Policy {
    fn from(p: RawPolicy) -> Self {
        Self {
            subject: p.subject,
            actions: p.actions,
            conditions: Some(pb::PolicyConditions {
                environments: p.environments,
                secret_path: p.secret_path,
                event_types: p.event_types,
            }),
            inverted: p.inverted,
        }
    }
}

impl From<RoleRecord> for pb::Role {
    fn from(r: RoleRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            policies: r.policies.iter().map(|p| RawPolicy::from(p).into()).collect(),
            built_in: r.built_in,
        }
    }
}
