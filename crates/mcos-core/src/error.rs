//! Errors of the contract: a policy table, topology or descriptor that does not hold together.

use thiserror::Error;

/// Why a topology, policy table or intent was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ContractError {
    /// The topology is inconsistent or exceeds a limit.
    #[error("invalid topology: {0}")]
    Topology(String),
    /// The policy table failed validation; nothing was installed.
    #[error("invalid policy table (class {class}): {reason}")]
    PolicyClass {
        /// Class whose entry is wrong.
        class: u8,
        /// What is wrong with it.
        reason: String,
    },
    /// A table-wide field of the policy table is wrong; nothing was installed.
    #[error("invalid policy table: {0}")]
    Policy(String),
    /// A packed word did not decode (unknown enum value).
    #[error("cannot decode {what}: {value} is not a valid value")]
    Decode {
        /// Which field.
        what: &'static str,
        /// The raw value found.
        value: u64,
    },
}
