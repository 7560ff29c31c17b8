//! Compiles `proto/*.proto` into Rust with prost, using protox (a protobuf
//! compiler written in Rust) so that no system `protoc` is needed. The
//! encoded descriptor set is also written to `OUT_DIR/descriptors.bin` so the
//! schema can be inspected at run time and checked by tests.

use std::{env, error::Error, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/catalogue.proto",
    "proto/xlreg.proto",
    "proto/xlreg_ext.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("descriptors.bin"), descriptors.encode_to_vec())?;

    prost_build::Config::new()
        // Deterministic encoding of attribute maps.
        .btree_map(["."])
        .type_attribute(
            ".",
            "#[cfg_attr(any(test, feature = \"arbitrary\"), derive(arbitrary::Arbitrary))]",
        )
        .compile_fds(descriptors)?;
    Ok(())
}
