//! Generated contracts for every TimeTravelers gRPC package.
//!
//! Each package is a module (`identity::v1`) holding the prost messages, the tonic client and
//! server code, and `FILE_DESCRIPTOR_SET`: the encoded descriptors the server registers with
//! reflection so grpcurl can list and describe it.

#![allow(clippy::all, missing_docs)]

pub mod common {
    pub mod v1 {
        tonic::include_proto!("timetravelers.common.v1");

        /// Encoded `FileDescriptorSet` of this package and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/timetravelers.common.v1.descriptor.bin"));
    }
}

pub mod profiles {
    pub mod v1 {
        tonic::include_proto!("timetravelers.profiles.v1");

        /// Encoded `FileDescriptorSet` of this package and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/timetravelers.profiles.v1.descriptor.bin"));
    }
}

pub mod matching {
    pub mod v1 {
        tonic::include_proto!("timetravelers.matching.v1");

        /// Encoded `FileDescriptorSet` of this package and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/timetravelers.matching.v1.descriptor.bin"));
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("timetravelers.identity.v1");

        /// Encoded `FileDescriptorSet` of this package and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/timetravelers.identity.v1.descriptor.bin"));
    }
}

pub mod analytics {
    pub mod v1 {
        tonic::include_proto!("timetravelers.analytics.v1");

        /// Encoded `FileDescriptorSet` of this package and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/timetravelers.analytics.v1.descriptor.bin"));
    }
}

/// A generated gRPC server whose message-size limits can be set (implemented for every server
/// of every package; the platform applies its configured limit when it mounts one).
pub trait MessageLimits: Sized {
    /// The largest request it decodes and the largest response it encodes, in bytes.
    fn with_message_limits(self, max: usize) -> Self;
}

include!(concat!(env!("OUT_DIR"), "/generated.rs"));
