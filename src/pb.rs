//! Generated protobuf messages and tonic services for `hush.v1`, included in exactly one place.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// The `hush.v1` package.
pub mod hush {
    pub mod v1 {
        tonic::include_proto!("hush.v1");
    }
}

pub use hush::v1::*;

/// Encoded `FileDescriptorSet` of every hush proto and its imports, for reflection and JSON transcoding.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hush_descriptor");
