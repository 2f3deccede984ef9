//! The table, as pure functions of the model: which columns ([`columns`]), where a row's node
//! columns come from ([`node_columns`]), the rows ([`projection`]), their bytes ([`render`],
//! [`incremental`] for `run`'s rendering of what changed, and [`streamed`] for a base written
//! as it is made), whether Vector can load them
//! ([`validate`], the one owner of [`validate::ValidTable`]), and how two tables differ
//! ([`diff`]). No I/O here.

pub mod columns;
pub mod diff;
pub mod format;
pub mod incremental;
pub mod node_columns;
pub mod projection;
pub mod render;
pub mod streamed;
pub mod validate;

pub use node_columns::{NodeInfo, Nodes};
pub use projection::{Projection, Table, allocation_rows, project};
