//! Amanah's use cases. A [`Vault`] combines the current policy, the key ring, a store and a
//! clock, and is the only way the HTTP server and the CLI touch personal data. Each operation:
//! decide (core) -> validate -> encrypt/decrypt (crypto) -> persist with its audit entry (store).
//! Plaintext exists only inside these functions and in the value they return.

mod accountability;
mod audit;
mod authz;
mod checkpoint;
mod clock;
mod consent;
mod console;
mod documents;
mod import;
mod keys;
mod portal;
mod rights;
mod rotation;
mod subjects;
mod tenants;
mod vault;

pub use accountability::*;
pub use audit::*;
pub use authz::{act, recordable_id, Act, Permit, Principal, Target};
pub use checkpoint::*;
pub use clock::{Clock, ManualClock, SystemClock};
pub use consent::*;
pub use console::Statistics;
pub use documents::{ByteRange, ChunkStream, DocumentDownload, DocumentInfo, DocumentUpload};
pub use import::*;
pub use keys::*;
pub use portal::*;
pub use rights::*;
pub use rotation::*;
pub use subjects::*;
pub use tenants::{
    CreatedTenant, Deployment, NewTenant, Placement, Quotas, SingleOrganization, TenantView, Usage,
};
pub use vault::*;

/// Records the vault hands out as they are stored (no personal data in either).
pub use amanah_store::{ApiKeyRecord, PolicyRecord};
