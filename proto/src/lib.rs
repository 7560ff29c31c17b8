//! Wire formats of catalogue.
//!
//! Three protobuf schemas live in `proto/`: `catalogue.proto` (the client and
//! peer protocol, one `Frame` envelope per message), `xlreg.proto` (the
//! xlReg cluster registry, kept field for field as in the original schema,
//! whose copy is `tests/data/xlreg-protobuf-spec.txt`) and
//! `xlreg_ext.proto` (catalogue's extension fields, numbered where the
//! original has none, sent after an `XLRegMsg` in the same plaintext;
//! docs/XLREG.md §14). All are
//! compiled at build time with prost and protox. This crate also holds the
//! length-prefixed frame codec used on every client and peer connection (with
//! the node-wide budget of buffered input it charges) and a
//! few helpers around the envelope; it performs no I/O of its own.
//!
//! The bytes on the wire are described in `docs/PROTOCOL.md`.

pub mod codec;
pub mod envelope;
pub mod version;

/// Types generated from `proto/catalogue.proto` (package `catalogue.v1`).
#[allow(clippy::all, missing_docs)]
pub mod catalogue {
    include!(concat!(env!("OUT_DIR"), "/catalogue.v1.rs"));
}

/// Types generated from `proto/xlreg.proto` (package `reg`).
#[allow(clippy::all, missing_docs)]
pub mod reg {
    include!(concat!(env!("OUT_DIR"), "/reg.rs"));
}

/// Types generated from `proto/xlreg_ext.proto` (package `regext`): fields
/// catalogue adds to xlReg messages, outside the original schema
/// (docs/XLREG.md §14).
#[allow(clippy::all, missing_docs)]
pub mod regext {
    include!(concat!(env!("OUT_DIR"), "/regext.rs"));
}

pub use catalogue::{Frame, frame::Body};
pub use codec::{
    BudgetExceeded, CodecError, DEFAULT_MAX_FRAME_LEN, EventFields, FrameCodec, InputBudget,
    InputCharge, LENGTH_PREFIX_LEN, ProstCodec, READ_STEP, encode_event_frame,
};
pub use envelope::{NOID, NodeId};
pub use version::{PROTOCOL_MAJOR, PROTOCOL_MINOR};

/// The encoded `google.protobuf.FileDescriptorSet` of every schema, as
/// compiled into this crate.
pub fn file_descriptor_set_bytes() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"))
}
