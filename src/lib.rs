//! hush: a gRPC-first secrets service. See `README.md` for use and `docs/ARCHITECTURE.md` for the architecture.

pub mod api;
mod around;
pub mod audit;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod events;
mod fs_private;
pub mod gateway;
pub mod identity;
pub mod keys;
pub mod limits;
mod log_output;
mod near_names;
mod paging;
pub mod pb;
pub mod secrets;
pub mod server;
pub mod store;
pub mod streams;
pub mod time_spec;
pub mod tls;
