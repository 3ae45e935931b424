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
pub mod error;
pub mod fields;
pub mod policy;
pub mod retention;
pub mod rights;
pub mod ropa;

pub use error::{Conflict, Error, Result};
