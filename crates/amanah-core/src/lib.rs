//! Amanah's domain core. No I/O: everything here is a pure function of its inputs (time is a
//! parameter), so every rule can be unit-tested.

pub mod access;
pub mod audit;
pub mod authz;
pub mod breach;
pub mod checkpoint;
pub mod consent;
pub mod csv_cell;
pub mod disclosure;
pub mod documents;
pub mod error;
pub mod fields;
pub mod policy;
pub mod retention;
pub mod rights;
pub mod ropa;
pub mod timestamp;

pub use error::{Conflict, Error, Result};
pub use timestamp::Timestamp;

/// The test kit's policies (`crates/amanah-testkit/policies`), read by the unit tests from the
/// same files every other suite uses (the kit itself depends on this crate, so they are
/// included by path).
#[cfg(test)]
pub(crate) mod test_policies {
    /// A university with every legal basis, a role for each duty and recipients of each kind.
    pub const TEST: &str = include_str!("../../amanah-testkit/policies/test.toml");
    /// Health data for the nurse only, the NIK masked for the officer.
    pub const CLINIC: &str = include_str!("../../amanah-testkit/policies/clinic.toml");
}
